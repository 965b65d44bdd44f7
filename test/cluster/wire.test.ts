/**
 * The bytes a message travels between nodes as (lib/cluster/wire.ts): the
 * fixed-offset writer and reader give exactly what mqtt-packet gives, for
 * every QoS, empty and long payloads and topics (the remaining length in 1
 * to 3 bytes), and messages with properties (handed to mqtt-packet); bytes
 * that are not a whole PUBLISH are refused.
 */
import t from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import { decodeBuffer, encode } from '../../lib/protocol/codec.js'
import { decodeRouted, encodeRouted } from '../../lib/cluster/wire.js'
import { frameOf, readPublishHeader } from '../../lib/protocol/frame.js'
import { publishPacket } from '../../lib/protocol/decode.js'

const cases: Array<[string, IPublishPacket]> = [
  ['QoS 0, short', { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }],
  ['QoS 1, empty payload', { cmd: 'publish', topic: 'a', payload: Buffer.alloc(0), qos: 1, messageId: 1, retain: false, dup: false }],
  ['QoS 2, packet id 65535', { cmd: 'publish', topic: 'x/y/z', payload: Buffer.from('two'), qos: 2, messageId: 65535, retain: false, dup: false }],
  ['QoS 1, remaining length of 2 bytes', { cmd: 'publish', topic: 't', payload: Buffer.alloc(200, 7), qos: 1, messageId: 1, retain: false, dup: false }],
  ['QoS 1, remaining length of 3 bytes, UTF-8 topic', { cmd: 'publish', topic: 'ü/€/𝄞', payload: Buffer.alloc(20000, 1), qos: 1, messageId: 1, retain: false, dup: false }],
  ['QoS 1, a string payload', { cmd: 'publish', topic: 's', payload: 'text', qos: 1, messageId: 1, retain: false, dup: false }],
  ['QoS 1 with properties', { cmd: 'publish', topic: 'p', payload: Buffer.from('p'), qos: 1, messageId: 1, retain: false, dup: false, properties: { messageExpiryInterval: 60, contentType: 'text/plain', userProperties: { k: 'v' } } }]
]

t.test('the same bytes as mqtt-packet, read back as the same packet', async (t) => {
  for (const [name, packet] of cases) {
    const bytes = encodeRouted(packet)
    t.same(bytes, encode(packet, 5), `${name}: bytes`)
    const expected = decodeBuffer(bytes, 5) as IPublishPacket
    const got = decodeRouted(bytes)
    if (got instanceof Error) {
      t.fail(`${name}: ${got.message}`)
      continue
    }
    t.equal(got.topic, expected.topic, `${name}: topic`)
    t.equal(got.qos, expected.qos, `${name}: QoS`)
    t.equal(got.messageId, expected.messageId, `${name}: packet id`)
    t.same(Buffer.from(got.payload), Buffer.from(expected.payload), `${name}: payload`)
    t.same(got.properties, expected.properties, `${name}: properties`)
    if (packet.properties !== undefined) continue
    // the shape the gateway gives aedes for a client's PUBLISH: aedes' publish path sees one kind of object
    const frame = frameOf(bytes)
    const fromGateway = publishPacket(frame, readPublishHeader(frame)!, 5)
    t.same(Object.keys(got), Object.keys(fromGateway!), `${name}: the gateway's packet shape`)
    t.same(got, fromGateway, `${name}: the gateway's packet`)
  }
})

t.test('bytes that are not one whole PUBLISH are refused', async (t) => {
  const whole = encodeRouted(cases[1]![1])
  t.ok(decodeRouted(whole.subarray(0, whole.length - 1)) instanceof Error, 'truncated')
  t.ok(decodeRouted(encode({ cmd: 'pingreq' }, 5)) instanceof Error, 'another packet')
  t.ok(decodeRouted(Buffer.alloc(0)) instanceof Error, 'nothing')
  const longTopic = Buffer.from(whole)
  longTopic.writeUInt16BE(200, 2)
  t.ok(decodeRouted(longTopic) instanceof Error, 'a topic longer than the packet')
})
