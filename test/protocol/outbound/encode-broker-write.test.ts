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

/** culex encodes `packet` itself, with the bytes and the result mqtt-packet's writeToStream gives */
function encodedAsMqttPacket (packet: BrokerPacket, v: 3 | 4 | 5): boolean {
  const own = encodeBrokerWrite(packet, v)
  if (own === undefined) return false
  const reference = written(packet, v)
  return reference.result && own.equals(reference.bytes)
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
  fc.assert(fc.property(packets, version, encodedAsMqttPacket), { numRuns: 400 })
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

const connackProperties = fc.record({
  sessionExpiryInterval: fc.integer({ min: 0, max: 0xffffffff }),
  receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
  maximumQoS: fc.constantFrom(0, 1),
  retainAvailable: fc.boolean(),
  maximumPacketSize: fc.integer({ min: 1, max: 0xffffffff }),
  // long enough to need a two-byte Remaining Length
  assignedClientIdentifier: fc.string({ unit: 'grapheme', maxLength: 200 }),
  topicAliasMaximum: fc.integer({ min: 0, max: 0xffff }),
  reasonString: fc.string({ maxLength: 40 }),
  wildcardSubscriptionAvailable: fc.boolean(),
  subscriptionIdentifiersAvailable: fc.boolean(),
  sharedSubscriptionAvailable: fc.boolean(),
  serverKeepAlive: fc.integer({ min: 0, max: 0xffff }),
  responseInformation: fc.string({ maxLength: 40 }),
  serverReference: fc.string({ maxLength: 40 }),
  authenticationMethod: fc.string({ maxLength: 20 })
}, { requiredKeys: [] })

t.test('[MQTT-3.2.2-1] [MQTT-3.2.2-6] a CONNACK: the bytes mqtt-packet writes, with Session Present, any code and the CONNACK properties in any order', async (t) => {
  const connacks = fc.record({
    cmd: fc.constant('connack'),
    sessionPresent: fc.boolean(),
    code: fc.integer({ min: 0, max: 0xff }),
    properties: fc.option(connackProperties.chain((props) => fc.shuffledSubarray(Object.keys(props), { minLength: Object.keys(props).length }).map((keys) => Object.fromEntries(keys.map((k) => [k, (props as Record<string, unknown>)[k]])))), { nil: undefined })
  })
  fc.assert(fc.property(connacks, version, ({ code, ...rest }, v) => {
    return encodedAsMqttPacket(v === 5 ? { ...rest, reasonCode: code } : { ...rest, returnCode: code }, v)
  }), { numRuns: 400 })
  t.pass('400 random CONNACK packets encoded identically')
  const aedes = { cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: { sharedSubscriptionAvailable: false, topicAliasMaximum: 10, maximumPacketSize: 1048576, receiveMaximum: 100 } }
  t.same(encodeBrokerWrite(aedes, 5), Buffer.from([0x20, 16, 0, 0, 13, 0x2a, 0, 0x22, 0, 10, 0x27, 0, 0x10, 0, 0, 0x21, 0, 100]), 'the CONNACK aedes writes under culex\'s defaults')
  t.same(written(aedes, 5).bytes, encodeBrokerWrite(aedes, 5), 'as mqtt-packet writes it')
  t.same(encodeBrokerWrite({ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 4), Buffer.from([0x20, 2, 1, 0]), 'a 3.1.1 CONNACK with Session Present')
  t.same(encodeBrokerWrite({ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { undefinedOne: undefined } }, 5), written({ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { undefinedOne: undefined } }, 5).bytes, 'a property left undefined is skipped, as mqtt-packet skips it')
})

t.test('a CONNACK left to mqtt-packet: User Properties, Authentication Data, values it refuses or writes oddly', async (t) => {
  const base = { cmd: 'connack', sessionPresent: false, reasonCode: 0 }
  t.equal(encodeBrokerWrite({ ...base, properties: { userProperties: { k: 'v' } } }, 5), undefined, 'User Properties')
  t.equal(encodeBrokerWrite({ ...base, properties: { authenticationData: Buffer.from('x') } }, 5), undefined, 'Authentication Data')
  t.equal(encodeBrokerWrite({ ...base, properties: { topicAlias: 3 } }, 5), undefined, 'a property a CONNACK does not carry')
  t.equal(encodeBrokerWrite({ ...base, properties: { receiveMaximum: 70000 } }, 5), undefined, 'a two-byte value out of range')
  t.equal(encodeBrokerWrite({ ...base, properties: { maximumQoS: 1.5 } }, 5), undefined, 'a byte value that is not an integer')
  t.equal(encodeBrokerWrite({ ...base, properties: { retainAvailable: 1 } }, 5), undefined, 'a boolean property given as a number')
  t.equal(encodeBrokerWrite({ ...base, properties: { reasonString: null } }, 5), undefined, 'a null value')
  t.equal(encodeBrokerWrite({ ...base, properties: { reasonString: 'x'.repeat(70000) } }, 5), undefined, 'a string longer than a two-byte length')
  t.equal(encodeBrokerWrite({ ...base, properties: [] }, 5), undefined, 'properties that are not a plain object')
  t.equal(encodeBrokerWrite({ ...base, reasonCode: 256 }, 5), undefined, 'a code that is not a byte')
  t.equal(encodeBrokerWrite({ ...base, reasonCode: undefined, returnCode: 0 }, 5), undefined, 'an MQTT 5 CONNACK without a Reason Code')
  t.equal(encodeBrokerWrite({ cmd: 'connack', sessionPresent: 1, returnCode: 0 }, 4), undefined, 'Session Present that is not a boolean')
})
