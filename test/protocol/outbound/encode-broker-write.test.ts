// aedes' PUBLISH and acknowledgements encoded by culex (lib/protocol/outbound/encode-broker-write.ts):
// the bytes mqtt-packet's writeToStream writes for the same packet, or left to it.
import t from 'tap'
import fc from 'fast-check'
import mqtt from 'mqtt-packet'
import { encodeBrokerWrite, type BrokerPacket } from '../../../lib/protocol/outbound/encode-broker-write.js'

/** What mqtt-packet's writeToStream writes for `packet`, joined, and its result (a stream that takes every write at once). */
function written (packet: BrokerPacket, version: 3 | 4 | 5): { bytes: Buffer, result: boolean } {
  const chunks: Buffer[] = []
  const sink = { write (chunk: Buffer | string): boolean { chunks.push(Buffer.from(chunk)); return true }, destroy (err: Error): void { throw err } }
  const result = mqtt.writeToStream(packet as mqtt.Packet, sink as never, { protocolVersion: version })
  return { bytes: Buffer.concat(chunks), result }
}

const topic = fc.string({ unit: 'grapheme', minLength: 0, maxLength: 300 })
// sizes across the 1-, 2- and 3-byte Remaining Length boundaries (127, 16383)
const payload = fc.oneof(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), fc.integer({ min: 100, max: 20000 }).map((n) => Buffer.alloc(n, 7)), fc.string({ maxLength: 50 }))
const version = fc.constantFrom(3 as const, 4 as const, 5 as const)

t.test('[MQTT-2.2.1-4] [MQTT-3.3.1-2] a PUBLISH without properties: the bytes mqtt-packet writes, for every QoS, DUP, retain, packet id and version', async (t) => {
  const packets = fc.record({
    cmd: fc.constant('publish'),
    topic,
    payload,
    qos: fc.constantFrom(0, 1, 2),
    dup: fc.boolean(),
    retain: fc.boolean(),
    messageId: fc.integer({ min: 1, max: 65535 })
  }).map((p) => p.qos === 0 ? { ...p, dup: false, messageId: undefined } : p)
  fc.assert(fc.property(packets, version, (packet, v) => {
    const own = encodeBrokerWrite(packet, v)
    if (own === undefined) return false
    const reference = written(packet, v)
    return reference.result && own.equals(reference.bytes)
  }), { numRuns: 400 })
  t.pass('400 random PUBLISH packets encoded identically')
})

t.test('acknowledgements: the bytes mqtt-packet writes, with and without a Reason Code, in 3.1, 3.1.1 and 5', async (t) => {
  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp']) {
    for (const v of [3, 4, 5] as const) {
      for (const reasonCode of [undefined, 0, 0x10, 0x80, 0x92]) {
        for (const messageId of [1, 255, 256, 65535]) {
          const packet = { cmd, messageId, reasonCode }
          t.same(encodeBrokerWrite(packet, v), written(packet, v).bytes, `${cmd} v${v} id ${messageId} code ${String(reasonCode)}`)
        }
      }
    }
  }
  t.same(encodeBrokerWrite({ cmd: 'puback', messageId: 7 }, 5), Buffer.from([0x40, 4, 0, 7, 0, 0]), 'aedes\' PUBACK (no Reason Code given) has a Reason Code and a Property Length in MQTT 5, as mqtt-packet writes it')
  t.same(encodeBrokerWrite({ cmd: 'pubrel', messageId: 7 }, 4), Buffer.from([0x62, 2, 0, 7]), '[MQTT-3.6.1-1] PUBREL\'s flags are 0010')
})

t.test('left to mqtt-packet: MQTT 5 properties (Subscription Identifiers, User Properties, a topic alias), odd payloads and values', async (t) => {
  const publish = { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, dup: false, retain: false, messageId: 3 }
  t.equal(encodeBrokerWrite({ ...publish, properties: { subscriptionIdentifier: 4 } }, 5), undefined, 'a Subscription Identifier')
  t.equal(encodeBrokerWrite({ ...publish, properties: { userProperties: { k: 'v' } } }, 5), undefined, 'User Properties')
  t.equal(encodeBrokerWrite({ ...publish, properties: { topicAlias: undefined } }, 5), undefined, 'an inbound alias aedes cleared (the property is still there)')
  const v4 = encodeBrokerWrite({ ...publish, properties: { userProperties: { k: 'v' } } }, 4)
  t.same(v4, written({ ...publish, properties: { userProperties: { k: 'v' } } }, 4).bytes, '3.1.1 carries no properties: encoded here')
  t.same(encodeBrokerWrite({ ...publish, properties: {} }, 5), written({ ...publish, properties: {} }, 5).bytes, 'an empty properties object is a Property Length of 0')
  t.equal(encodeBrokerWrite({ ...publish, payload: undefined }, 4), undefined, 'no payload')
  t.equal(encodeBrokerWrite({ ...publish, payload: new Uint8Array(2) }, 4), undefined, 'a Uint8Array payload')
  t.equal(encodeBrokerWrite({ ...publish, topic: Buffer.from('a') }, 4), undefined, 'a Buffer topic')
  t.equal(encodeBrokerWrite({ ...publish, messageId: 0 }, 4), undefined, 'QoS 1 with packet id 0')
  t.equal(encodeBrokerWrite({ ...publish, messageId: undefined }, 4), undefined, 'QoS 1 without a packet id')
  t.equal(encodeBrokerWrite({ ...publish, qos: 3 }, 4), undefined, 'QoS 3')
  t.equal(encodeBrokerWrite({ ...publish, qos: 0, dup: true, messageId: undefined }, 4), undefined, 'QoS 0 with DUP (mqtt-packet writes the flag)')
  t.equal(encodeBrokerWrite({ cmd: 'puback', messageId: 3, reasonCode: 0x80, properties: { reasonString: 'no' } }, 5), undefined, 'an acknowledgement with properties')
  t.equal(encodeBrokerWrite({ cmd: 'pubrel', messageId: 3, dup: true }, 4), undefined, 'a PUBREL with DUP')
  t.equal(encodeBrokerWrite({ cmd: 'puback', messageId: 70000 }, 4), undefined, 'a packet id out of range')
  t.equal(encodeBrokerWrite({ cmd: 'puback', messageId: 3, reasonCode: 'x' }, 5), undefined, 'a Reason Code that is not a byte')
  t.equal(encodeBrokerWrite({ cmd: 'suback', messageId: 3 }, 4), undefined, 'another packet type')
})
