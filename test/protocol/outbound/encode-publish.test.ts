// The QoS 1/2 PUBLISH culex encodes itself for a resumed session's queue
// (lib/protocol/outbound/encode-publish.ts) against mqtt-packet: the same
// bytes for any topic, payload, packet id, DUP, retain and protocol version
// (spec 2.1, 2.2.1, 3.3).
import t from 'tap'
import fc from 'fast-check'
import mqtt from 'mqtt-packet'
import { encodePublish } from '../../../lib/protocol/outbound/encode-publish.js'

const topic = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }).filter((s) => !s.includes('+') && !s.includes('#'))
// sizes across the 1-, 2- and 3-byte Remaining Length boundaries (127, 16383)
const payload = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 100, max: 20000 }).map((n) => new Uint8Array(n).fill(7)))

t.test('[MQTT-2.2.1-5] [MQTT-3.3.1-1] QoS 1 and 2 without properties: the same bytes as mqtt-packet, 3.1.1 and 5', async (t) => {
  fc.assert(fc.property(topic, payload, fc.constantFrom(1 as const, 2 as const), fc.integer({ min: 1, max: 65535 }), fc.boolean(), fc.boolean(), fc.constantFrom(4 as const, 5 as const),
    (name, body, qos, messageId, dup, retain, version) => {
      const packet: mqtt.IPublishPacket = { cmd: 'publish', topic: name, payload: Buffer.from(body), qos, messageId, dup, retain }
      return encodePublish(packet, version).equals(mqtt.generate(packet, { protocolVersion: version }))
    }), { numRuns: 300 })
  t.pass('300 random packets')
})

t.test('a string payload, and QoS 0 (no packet id, DUP 0 [MQTT-3.3.1-2])', async (t) => {
  for (const version of [4, 5] as const) {
    const text: mqtt.IPublishPacket = { cmd: 'publish', topic: 'a/b', payload: 'héllo', qos: 1, messageId: 7, dup: false, retain: false }
    t.same(encodePublish(text, version), mqtt.generate(text, { protocolVersion: version }), `string payload, v${version}`)
    const qos0: mqtt.IPublishPacket = { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, messageId: 7, dup: false, retain: true }
    t.same(encodePublish(qos0, version), mqtt.generate({ ...qos0, messageId: undefined }, { protocolVersion: version }), `QoS 0 downgraded, v${version}`)
    t.equal(encodePublish({ ...qos0, dup: true }, version)[0]! & 0x08, 0, 'no DUP on QoS 0')
  }
})

t.test('MQTT 5 properties: mqtt-packet encodes them', async (t) => {
  const packet: mqtt.IPublishPacket = {
    cmd: 'publish', topic: 'p/q', payload: Buffer.from('x'), qos: 1, messageId: 300, dup: true, retain: false,
    properties: { messageExpiryInterval: 60, userProperties: { a: 'b' }, subscriptionIdentifier: [1, 2] }
  }
  t.same(encodePublish(packet, 5), mqtt.generate(packet, { protocolVersion: 5 }))
  t.same(encodePublish(packet, 4), mqtt.generate(packet, { protocolVersion: 4 }), '3.1.1 has none to write')
})
