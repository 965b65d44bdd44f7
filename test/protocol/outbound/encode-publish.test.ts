// The PUBLISH culex encodes itself for QoS 1 and 2 (lib/protocol/outbound/encode-publish.ts),
// against mqtt-packet: the same bytes for any topic, payload, packet id, DUP and retain flag
// and protocol version (spec 2.1, 2.2.1, 3.3).
import t from 'tap'
import fc from 'fast-check'
import mqtt from 'mqtt-packet'
import { encodePublish, type OutboundPublish } from '../../../lib/protocol/outbound/encode-publish.js'

function reference (p: OutboundPublish, version: 4 | 5): Buffer {
  const wire = { cmd: 'publish', topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, dup: p.dup, messageId: p.messageId } as mqtt.IPublishPacket
  if (version === 5 && p.properties) wire.properties = p.properties as mqtt.IPublishPacket['properties']
  return mqtt.generate(wire, { protocolVersion: version })
}

const topic = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }).filter((s) => !s.includes('+') && !s.includes('#'))
// sizes across the 1-, 2- and 3-byte Remaining Length boundaries (127, 16383)
const payload = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 100, max: 20000 }).map((n) => new Uint8Array(n).fill(7)))

t.test('[MQTT-2.2.1-4] QoS 1 and 2 without properties: the same bytes as mqtt-packet, packet id after the topic, DUP and retain as given', async (t) => {
  fc.assert(fc.property(topic, payload, fc.constantFrom(1 as const, 2 as const), fc.integer({ min: 1, max: 65535 }), fc.boolean(), fc.boolean(), fc.constantFrom(4 as const, 5 as const),
    (name, body, qos, id, dup, retain, version) => {
      const p: OutboundPublish = { topic: name, payload: Buffer.from(body), qos, retain, dup, messageId: id }
      return encodePublish(p, version).equals(reference(p, version))
    }), { numRuns: 400 })
  t.pass('400 random packets encoded identically')
})

t.test('with MQTT 5 properties it encodes what mqtt-packet encodes; 3.1.1 carries none', async (t) => {
  const p: OutboundPublish = { topic: 'a/b', payload: 'hello', qos: 1, retain: false, dup: false, messageId: 9, properties: { subscriptionIdentifier: 3, messageExpiryInterval: 30, userProperties: { k: 'v' } } }
  t.same(encodePublish(p, 5), reference(p, 5))
  t.same(encodePublish(p, 4), reference(p, 4))
})

t.test('[MQTT-2.2.1-4] a QoS 1 PUBLISH without a valid packet id is refused, not encoded', async (t) => {
  for (const messageId of [undefined, 0, 65536]) {
    t.throws(() => encodePublish({ topic: 'a', payload: Buffer.alloc(1), qos: 1, retain: false, dup: false, messageId }, 5), RangeError, `packet id ${String(messageId)}`)
  }
})

t.test('[MQTT-3.3.1-2] a queued QoS 1 message downgraded to QoS 0: no packet id, DUP 0; a string payload is UTF-8', async (t) => {
  for (const version of [4, 5] as const) {
    const text: OutboundPublish = { topic: 'a/b', payload: 'héllo', qos: 1, messageId: 7, dup: false, retain: false }
    t.same(encodePublish(text, version), reference(text, version), `string payload, v${version}`)
    const qos0: OutboundPublish = { topic: 'a/b', payload: Buffer.from('x'), qos: 0, messageId: 7, dup: true, retain: true }
    t.same(encodePublish(qos0, version), reference({ ...qos0, messageId: undefined, dup: false }, version), `QoS 0, v${version}`)
    t.equal((encodePublish(qos0, version)[0] as number) & 0x08, 0, 'no DUP on QoS 0')
  }
})
