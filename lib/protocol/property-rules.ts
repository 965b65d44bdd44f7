/**
 * MQTT 5 properties (spec 2.2.2.2, table 2-4): which packet may carry which
 * property, its data type, and which ones may appear more than once. A
 * property block is checked here on its raw bytes, before any decoder sees
 * it: mqtt-packet turns a repeated property into an array (and silently keeps
 * the last of two when the first is 0), and an array reaching aedes becomes
 * `NaN` in its timers.
 */
import { ReasonCode } from './reason-codes.js'
import { readVarInt } from './frame.js'
import { isWellFormedString } from './utf8.js'

/** Where a property block sits: a packet type, or the Will Properties of a CONNECT. */
export type PropertyContext =
  | 'connect' | 'will' | 'connack' | 'publish' | 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'
  | 'subscribe' | 'suback' | 'unsubscribe' | 'unsuback' | 'disconnect' | 'auth'

/** Data types of spec 1.5 as properties use them. */
export type PropertyType = 'byte' | 'two' | 'four' | 'varint' | 'string' | 'binary' | 'pair'

export interface PropertyRule {
  readonly id: number
  readonly name: string
  readonly type: PropertyType
  readonly contexts: readonly PropertyContext[]
}

const ACKS: readonly PropertyContext[] = ['puback', 'pubrec', 'pubrel', 'pubcomp']

const RULES: readonly PropertyRule[] = [
  { id: 0x01, name: 'Payload Format Indicator', type: 'byte', contexts: ['publish', 'will'] },
  { id: 0x02, name: 'Message Expiry Interval', type: 'four', contexts: ['publish', 'will'] },
  { id: 0x03, name: 'Content Type', type: 'string', contexts: ['publish', 'will'] },
  { id: 0x08, name: 'Response Topic', type: 'string', contexts: ['publish', 'will'] },
  { id: 0x09, name: 'Correlation Data', type: 'binary', contexts: ['publish', 'will'] },
  { id: 0x0b, name: 'Subscription Identifier', type: 'varint', contexts: ['publish', 'subscribe'] },
  { id: 0x11, name: 'Session Expiry Interval', type: 'four', contexts: ['connect', 'connack', 'disconnect'] },
  { id: 0x12, name: 'Assigned Client Identifier', type: 'string', contexts: ['connack'] },
  { id: 0x13, name: 'Server Keep Alive', type: 'two', contexts: ['connack'] },
  { id: 0x15, name: 'Authentication Method', type: 'string', contexts: ['connect', 'connack', 'auth'] },
  { id: 0x16, name: 'Authentication Data', type: 'binary', contexts: ['connect', 'connack', 'auth'] },
  { id: 0x17, name: 'Request Problem Information', type: 'byte', contexts: ['connect'] },
  { id: 0x18, name: 'Will Delay Interval', type: 'four', contexts: ['will'] },
  { id: 0x19, name: 'Request Response Information', type: 'byte', contexts: ['connect'] },
  { id: 0x1a, name: 'Response Information', type: 'string', contexts: ['connack'] },
  { id: 0x1c, name: 'Server Reference', type: 'string', contexts: ['connack', 'disconnect'] },
  { id: 0x1f, name: 'Reason String', type: 'string', contexts: ['connack', ...ACKS, 'suback', 'unsuback', 'disconnect', 'auth'] },
  { id: 0x21, name: 'Receive Maximum', type: 'two', contexts: ['connect', 'connack'] },
  { id: 0x22, name: 'Topic Alias Maximum', type: 'two', contexts: ['connect', 'connack'] },
  { id: 0x23, name: 'Topic Alias', type: 'two', contexts: ['publish'] },
  { id: 0x24, name: 'Maximum QoS', type: 'byte', contexts: ['connack'] },
  { id: 0x25, name: 'Retain Available', type: 'byte', contexts: ['connack'] },
  {
    id: 0x26,
    name: 'User Property',
    type: 'pair',
    contexts: ['connect', 'will', 'connack', 'publish', ...ACKS, 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'disconnect', 'auth']
  },
  { id: 0x27, name: 'Maximum Packet Size', type: 'four', contexts: ['connect', 'connack'] },
  { id: 0x28, name: 'Wildcard Subscription Available', type: 'byte', contexts: ['connack'] },
  { id: 0x29, name: 'Subscription Identifier Available', type: 'byte', contexts: ['connack'] },
  { id: 0x2a, name: 'Shared Subscription Available', type: 'byte', contexts: ['connack'] }
]

export const PROPERTY_RULES: ReadonlyMap<number, PropertyRule> = new Map(RULES.map(r => [r.id, r]))

/**
 * Spec 2.2.2.2 and each property's own section: every property may appear at
 * most once, except User Property (spec 3.1.2.11.8 and the like), and
 * Subscription Identifier in a PUBLISH from the server, one per matching
 * subscription (spec 3.3.2.3.8); in SUBSCRIBE it may appear once, and a
 * client's PUBLISH carries none at all [MQTT-3.3.4-6].
 */
export function mayRepeat (id: number, context: PropertyContext, fromServer: boolean): boolean {
  if (id === 0x26) return true
  return id === 0x0b && context === 'publish' && fromServer
}

/** Properties whose value must be 0 or 1 (a Protocol Error otherwise). */
const FLAG_PROPERTIES = new Set([0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a])
/** Properties for which 0 is a Protocol Error: Receive Maximum (3.1.2.11.3, 3.2.2.3.3), Maximum Packet Size (3.1.2.11.4, 3.2.2.3.6), Subscription Identifier (3.8.2.1.2). */
const NONZERO_PROPERTIES = new Set([0x21, 0x27, 0x0b])

export interface PropertyFault {
  /** 0x81 Malformed Packet or 0x82 Protocol Error */
  readonly reasonCode: typeof ReasonCode.MalformedPacket | typeof ReasonCode.ProtocolError
  readonly reason: string
}

export type PropertyScan =
  /**
   * `numbers`: the value of each numeric property; `spans`: where the bytes
   * of each string or binary value lie, [start, end) (for a repeatable
   * property, its last occurrence)
   */
  | {
    readonly kind: 'ok'
    readonly end: number
    readonly seen: ReadonlySet<number>
    readonly numbers: ReadonlyMap<number, number>
    readonly spans: ReadonlyMap<number, readonly [number, number]>
  }
  | { readonly kind: 'fault', readonly fault: PropertyFault }

const malformed = (reason: string): PropertyScan => ({ kind: 'fault', fault: { reasonCode: ReasonCode.MalformedPacket, reason } })
const protocolError = (reason: string): PropertyScan => ({ kind: 'fault', fault: { reasonCode: ReasonCode.ProtocolError, reason } })

/**
 * Checks the property block (its Property Length included) that starts at
 * `start` and must end by `limit`. Steps:
 * 1. the Property Length is a Variable Byte Integer that fits the packet;
 * 2. each identifier is one valid for `context` (otherwise a Malformed
 *    Packet, spec 2.2.2.2), and its value is whole;
 * 3. UTF-8 strings (and both strings of a pair) are well formed
 *    [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.7-1];
 * 4. a property given twice that may not repeat is a Protocol Error (spec 2.2.2.2);
 * 5. flags other than 0 or 1, and 0 where 0 is forbidden, are Protocol Errors.
 * Returns where the block ends, the identifiers seen, and their values.
 */
export function scanProperties (buf: Buffer, start: number, limit: number, context: PropertyContext, fromServer = false): PropertyScan {
  const length = readVarInt(buf, start)
  if (length === null || start + length.bytes > limit) return malformed('truncated property length')
  let pos = start + length.bytes
  const end = pos + length.value
  if (end > limit) return malformed('property length beyond the end of the packet')
  const seen = new Set<number>()
  const numbers = new Map<number, number>()
  const spans = new Map<number, readonly [number, number]>()
  while (pos < end) {
    const id = buf[pos++] as number
    const rule = PROPERTY_RULES.get(id)
    if (rule === undefined || !rule.contexts.includes(context)) {
      return malformed(`property 0x${id.toString(16)} is not valid in ${context === 'will' ? 'Will Properties' : context.toUpperCase()}`)
    }
    if (seen.has(id) && !mayRepeat(id, context, fromServer)) return protocolError(`${rule.name} more than once`)
    seen.add(id)
    const value = readValue(buf, pos, end, rule.type)
    if (value === undefined) return malformed(`truncated ${rule.name}`)
    if (value === 'ill-formed') return malformed(`${rule.name} is not a well-formed UTF-8 string`)
    if (FLAG_PROPERTIES.has(id) && value.number !== 0 && value.number !== 1) return protocolError(`${rule.name} of ${value.number ?? '?'}`)
    if (NONZERO_PROPERTIES.has(id) && value.number === 0) return protocolError(`${rule.name} of 0`)
    if (value.number !== undefined) numbers.set(id, value.number)
    else if (rule.type !== 'pair') spans.set(id, [pos + 2, value.next])
    pos = value.next
  }
  return { kind: 'ok', end, seen, numbers, spans }
}

type Value = { next: number, number?: number }

/** One property value at `pos`; undefined when it runs past `end`, 'ill-formed' for a bad UTF-8 string. */
function readValue (buf: Buffer, pos: number, end: number, type: PropertyType): Value | 'ill-formed' | undefined {
  switch (type) {
    case 'byte': return pos + 1 <= end ? { next: pos + 1, number: buf[pos] as number } : undefined
    case 'two': return pos + 2 <= end ? { next: pos + 2, number: buf.readUInt16BE(pos) } : undefined
    case 'four': return pos + 4 <= end ? { next: pos + 4, number: buf.readUInt32BE(pos) } : undefined
    case 'varint': {
      const v = readVarInt(buf, pos)
      return v === null || pos + v.bytes > end ? undefined : { next: pos + v.bytes, number: v.value }
    }
    case 'binary': return readField(buf, pos, end, false)
    case 'string': return readField(buf, pos, end, true)
    case 'pair': {
      const key = readField(buf, pos, end, true)
      if (key === undefined || key === 'ill-formed') return key
      return readField(buf, key.next, end, true)
    }
  }
}

function readField (buf: Buffer, pos: number, end: number, utf8: boolean): Value | 'ill-formed' | undefined {
  if (pos + 2 > end) return undefined
  const next = pos + 2 + buf.readUInt16BE(pos)
  if (next > end) return undefined
  if (utf8 && !isWellFormedString(buf, pos + 2, next)) return 'ill-formed'
  return { next }
}
