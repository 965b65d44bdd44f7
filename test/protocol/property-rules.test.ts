/**
 * lib/protocol/property-rules.ts: which properties each packet may carry,
 * which may repeat (spec 2.2.2.2), and the raw-byte scan of a property block.
 */
import t from 'tap'
import { createRequire } from 'node:module'
import fc from 'fast-check'
import mqtt from 'mqtt-packet'
import { PACKET_CONTEXT, PROPERTY_RULES, checkProperties, mayRepeat, scanProperties, type PropertyContext } from '../../lib/protocol/property-rules.js'
import { PacketType } from '../../lib/protocol/frame.js'
import { ReasonCode } from '../../lib/protocol/reason-codes.js'
import { prop, properties } from '../helpers/packet-bytes.js'

const CONTEXTS: readonly PropertyContext[] = ['connect', 'will', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'disconnect', 'auth']

/** One well-formed value of a property, by its type. */
function sample (id: number): Buffer {
  const rule = PROPERTY_RULES.get(id)
  if (!rule) throw new Error(`no rule for ${id}`)
  switch (rule.type) {
    case 'byte': return prop.byte(id, 1)
    case 'two': return prop.two(id, 7)
    case 'four': return prop.four(id, 9)
    case 'varint': return Buffer.from([id, 0x05])
    case 'string': return prop.string(id, 'text')
    case 'binary': return prop.string(id, Buffer.from([0x00, 0xff]))
    case 'pair': return prop.pair(id, 'k', 'v')
  }
}

/** mqtt-packet's own table, a second reading of spec 2.2.2.2 */
const reference = createRequire(import.meta.url)('mqtt-packet/constants.js') as { properties: Record<string, number>, propertiesTypes: Record<string, string> }
const TYPE_NAMES: Record<string, string> = { int32: 'four', int16: 'two', byte: 'byte', int8: 'byte', var: 'varint', string: 'string', binary: 'binary', pair: 'pair' }

t.test('the table holds the 27 properties of spec 2.2.2.2, with the ids and types mqtt-packet has', async (t) => {
  t.equal(PROPERTY_RULES.size, 27)
  for (const [name, id] of Object.entries(reference.properties)) {
    const type = reference.propertiesTypes[name] ?? ''
    t.equal(PROPERTY_RULES.get(id)?.type, TYPE_NAMES[type], `${name} (0x${id.toString(16)})`)
  }
})

t.test('spec 2.2.2.2: only User Property repeats, and Subscription Identifier in a PUBLISH from the server', async (t) => {
  for (const id of PROPERTY_RULES.keys()) {
    for (const context of CONTEXTS) {
      const expected = id === 0x26 || (id === 0x0b && context === 'publish')
      t.equal(mayRepeat(id, context, true), expected, `0x${id.toString(16)} in ${context} from the server`)
      t.equal(mayRepeat(id, context, false), id === 0x26, `0x${id.toString(16)} in ${context} from a client`)
    }
  }
})

t.test('every property allowed in a context: once is fine, twice is a Protocol Error unless it may repeat', async (t) => {
  for (const rule of PROPERTY_RULES.values()) {
    for (const context of rule.contexts) {
      const once = properties(sample(rule.id))
      const scan = scanProperties(once, 0, once.length, context)
      t.equal(scan.kind, 'ok', `${rule.name} once in ${context}`)
      const twice = properties(sample(rule.id), sample(rule.id))
      const again = scanProperties(twice, 0, twice.length, context)
      if (mayRepeat(rule.id, context, false)) t.equal(again.kind, 'ok', `${rule.name} twice in ${context}`)
      else t.same(again.kind === 'fault' ? again.fault.reasonCode : undefined, ReasonCode.ProtocolError, `${rule.name} twice in ${context}: 0x82`)
    }
  }
})

t.test('a property of another packet type is a Malformed Packet', async (t) => {
  for (const rule of PROPERTY_RULES.values()) {
    for (const context of CONTEXTS.filter(c => !rule.contexts.includes(c))) {
      const block = properties(sample(rule.id))
      const scan = scanProperties(block, 0, block.length, context)
      t.equal(scan.kind === 'fault' ? scan.fault.reasonCode : undefined, ReasonCode.MalformedPacket, `${rule.name} in ${context}`)
    }
  }
  const unknown = properties(Buffer.from([0x7f, 0x00]))
  const scan = scanProperties(unknown, 0, unknown.length, 'connect')
  t.equal(scan.kind === 'fault' ? scan.fault.reasonCode : undefined, ReasonCode.MalformedPacket, 'an unknown identifier')
})

t.test('values: flags 0/1 only, no 0 for Receive Maximum, Maximum Packet Size, Subscription Identifier; UTF-8 well formed', async (t) => {
  const fault = (block: Buffer, context: PropertyContext): number | undefined => {
    const scan = scanProperties(block, 0, block.length, context)
    return scan.kind === 'fault' ? scan.fault.reasonCode : undefined
  }
  t.equal(fault(properties(prop.byte(0x17, 2)), 'connect'), ReasonCode.ProtocolError, 'Request Problem Information 2')
  t.equal(fault(properties(prop.byte(0x19, 255)), 'connect'), ReasonCode.ProtocolError, 'Request Response Information 255')
  t.equal(fault(properties(prop.byte(0x01, 2)), 'publish'), ReasonCode.ProtocolError, 'Payload Format Indicator 2')
  t.equal(fault(properties(prop.two(0x21, 0)), 'connect'), ReasonCode.ProtocolError, 'Receive Maximum 0')
  t.equal(fault(properties(prop.four(0x27, 0)), 'connect'), ReasonCode.ProtocolError, 'Maximum Packet Size 0')
  t.equal(fault(properties(Buffer.from([0x0b, 0x00])), 'subscribe'), ReasonCode.ProtocolError, 'Subscription Identifier 0')
  t.equal(fault(properties(prop.string(0x1f, Buffer.from([0x61, 0x00]))), 'disconnect'), ReasonCode.MalformedPacket, '[MQTT-1.5.4-2] U+0000 in a Reason String')
  t.equal(fault(properties(prop.pair(0x26, 'k', Buffer.from([0xed, 0xa0, 0x80]))), 'auth'), ReasonCode.MalformedPacket, '[MQTT-1.5.4-1] [MQTT-1.5.7-1] a surrogate in a User Property value')
  t.equal(fault(properties(prop.string(0x16, Buffer.from([0x00, 0xff]))), 'auth'), undefined, 'binary data may hold any byte')
})

t.test('truncation: a value cut short, or a block longer than the packet, is a Malformed Packet', async (t) => {
  const cut = Buffer.from([0x03, 0x11, 0x00, 0x00])
  t.equal(scanProperties(cut, 0, cut.length, 'connect').kind, 'fault', 'a Session Expiry Interval of two bytes')
  const long = Buffer.from([0x09, 0x21, 0x00, 0x01])
  t.equal(scanProperties(long, 0, long.length, 'connect').kind, 'fault', 'a Property Length beyond the end')
})

t.test('numbers and spans: what the scan reports matches what mqtt-packet decodes', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.string({ maxLength: 20 }), (sei, reason) => {
    const packet = mqtt.generate({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: sei, reasonString: reason } }, { protocolVersion: 5 })
    if (!Buffer.from(reason).every(b => b !== 0)) return true
    const scan = scanProperties(packet, 3, packet.length, 'disconnect')
    if (scan.kind !== 'ok') return false
    const span = scan.spans.get(0x1f)
    return scan.end === packet.length && scan.numbers.get(0x11) === sei && span !== undefined && packet.toString('utf8', span[0], span[1]) === reason
  }), { numRuns: 300 })
  t.pass()
})

t.test('checkProperties (no values collected, the PUBLISH path) and scanProperties give the same end or the same fault on any bytes', async (t) => {
  const block = fc.oneof(
    fc.uint8Array({ maxLength: 24 }).map(b => Buffer.from(b)),
    fc.array(fc.constantFrom(...[...PROPERTY_RULES.keys()].map(sample), Buffer.from([0x0b, 0x00]), prop.byte(0x01, 2), prop.two(0x21, 0)), { maxLength: 4 }).map(ps => properties(...ps))
  )
  fc.assert(fc.property(block, fc.constantFrom(...CONTEXTS), fc.boolean(), (buf, context, fromServer) => {
    const checked = checkProperties(buf, 0, buf.length, context, fromServer)
    const scan = scanProperties(buf, 0, buf.length, context, fromServer)
    return scan.kind === 'ok' ? checked === scan.end : typeof checked !== 'number' && checked.reasonCode === scan.fault.reasonCode
  }), { numRuns: 2000 })
  t.pass()
})

t.test('PACKET_CONTEXT names the context of each packet type that carries properties', async (t) => {
  t.equal(PACKET_CONTEXT[PacketType.PUBLISH], 'publish')
  t.equal(PACKET_CONTEXT[PacketType.PUBACK], 'puback')
  t.equal(PACKET_CONTEXT[PacketType.PUBREC], 'pubrec')
  t.equal(PACKET_CONTEXT[PacketType.PUBREL], 'pubrel')
  t.equal(PACKET_CONTEXT[PacketType.PUBCOMP], 'pubcomp')
  t.equal(PACKET_CONTEXT[PacketType.SUBSCRIBE], 'subscribe')
  t.equal(PACKET_CONTEXT[PacketType.UNSUBSCRIBE], 'unsubscribe')
  t.equal(PACKET_CONTEXT[PacketType.DISCONNECT], 'disconnect')
  t.equal(PACKET_CONTEXT[PacketType.AUTH], 'auth')
  t.equal(PACKET_CONTEXT[PacketType.PINGREQ], undefined, 'PINGREQ carries none')
})
