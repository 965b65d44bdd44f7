/**
 * MQTT 5 properties (spec 2.2.2.2, table 2-4): which packet may carry which
 * property, its data type, which ones may appear more than once, and the
 * rules on their values. A property block is checked here on its raw bytes,
 * before mqtt-packet decodes it: its parser turns a repeated property into an
 * array (and silently keeps the last of two when the first is 0 or false),
 * and decodes ill-formed UTF-8 into U+FFFD. Neither may reach aedes (a
 * repeated number became `NaN` in its timers). One table and one scanner
 * serve every packet: CONNECT and its Will Properties, PUBLISH, the
 * acknowledgements, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and AUTH.
 */
import { ReasonCode } from './reason-codes.js'
import { readVarInt } from './frame.js'
import { isWellFormedString } from './utf8.js'

/** Where a property block sits: a packet type, or the Will Properties of a CONNECT. */
export type PropertyContext =
  | 'connect' | 'will' | 'connack' | 'publish' | 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'
  | 'subscribe' | 'suback' | 'unsubscribe' | 'unsuback' | 'disconnect' | 'auth'

/** The context of each packet type that carries properties, by its number (spec 2.1.2); 'will' has none. */
export const PACKET_CONTEXT: ReadonlyArray<PropertyContext | undefined> = [
  undefined, 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp',
  'subscribe', 'suback', 'unsubscribe', 'unsuback', undefined, undefined, 'disconnect', 'auth'
]

/** One bit per context, so that the scan tests a property's packets with one AND. */
const CONTEXT_BIT: Readonly<Record<PropertyContext, number>> = {
  will: 1 << 0,
  connect: 1 << 1,
  connack: 1 << 2,
  publish: 1 << 3,
  puback: 1 << 4,
  pubrec: 1 << 5,
  pubrel: 1 << 6,
  pubcomp: 1 << 7,
  subscribe: 1 << 8,
  suback: 1 << 9,
  unsubscribe: 1 << 10,
  unsuback: 1 << 11,
  disconnect: 1 << 14,
  auth: 1 << 15
}

/** Data types of spec 1.5 as properties use them. */
export type PropertyType = 'byte' | 'two' | 'four' | 'varint' | 'string' | 'binary' | 'pair'

/**
 * A rule on the value, beyond its type: 'flag', 0 or 1 only (spec 3.1.2.11.6,
 * 3.1.2.11.7, 3.3.2.3.2, 3.2.2.3 for the server's); 'nonzero', 0 forbidden:
 * Receive Maximum (3.1.2.11.3, 3.2.2.3.3), Maximum Packet Size (3.1.2.11.4,
 * 3.2.2.3.6), Subscription Identifier (3.8.2.1.2). Either broken is a
 * Protocol Error.
 */
export type ValueRule = 'flag' | 'nonzero'

export interface PropertyRule {
  readonly id: number
  readonly name: string
  readonly type: PropertyType
  readonly contexts: readonly PropertyContext[]
  readonly value?: ValueRule
}

const ACKS: readonly PropertyContext[] = ['puback', 'pubrec', 'pubrel', 'pubcomp']

const RULES: readonly PropertyRule[] = [
  { id: 0x01, name: 'Payload Format Indicator', type: 'byte', contexts: ['publish', 'will'], value: 'flag' },
  { id: 0x02, name: 'Message Expiry Interval', type: 'four', contexts: ['publish', 'will'] },
  { id: 0x03, name: 'Content Type', type: 'string', contexts: ['publish', 'will'] },
  { id: 0x08, name: 'Response Topic', type: 'string', contexts: ['publish', 'will'] },
  { id: 0x09, name: 'Correlation Data', type: 'binary', contexts: ['publish', 'will'] },
  { id: 0x0b, name: 'Subscription Identifier', type: 'varint', contexts: ['publish', 'subscribe'], value: 'nonzero' },
  { id: 0x11, name: 'Session Expiry Interval', type: 'four', contexts: ['connect', 'connack', 'disconnect'] },
  { id: 0x12, name: 'Assigned Client Identifier', type: 'string', contexts: ['connack'] },
  { id: 0x13, name: 'Server Keep Alive', type: 'two', contexts: ['connack'] },
  { id: 0x15, name: 'Authentication Method', type: 'string', contexts: ['connect', 'connack', 'auth'] },
  { id: 0x16, name: 'Authentication Data', type: 'binary', contexts: ['connect', 'connack', 'auth'] },
  { id: 0x17, name: 'Request Problem Information', type: 'byte', contexts: ['connect'], value: 'flag' },
  { id: 0x18, name: 'Will Delay Interval', type: 'four', contexts: ['will'] },
  { id: 0x19, name: 'Request Response Information', type: 'byte', contexts: ['connect'], value: 'flag' },
  { id: 0x1a, name: 'Response Information', type: 'string', contexts: ['connack'] },
  { id: 0x1c, name: 'Server Reference', type: 'string', contexts: ['connack', 'disconnect'] },
  { id: 0x1f, name: 'Reason String', type: 'string', contexts: ['connack', ...ACKS, 'suback', 'unsuback', 'disconnect', 'auth'] },
  { id: 0x21, name: 'Receive Maximum', type: 'two', contexts: ['connect', 'connack'], value: 'nonzero' },
  { id: 0x22, name: 'Topic Alias Maximum', type: 'two', contexts: ['connect', 'connack'] },
  { id: 0x23, name: 'Topic Alias', type: 'two', contexts: ['publish'] },
  { id: 0x24, name: 'Maximum QoS', type: 'byte', contexts: ['connack'], value: 'flag' },
  { id: 0x25, name: 'Retain Available', type: 'byte', contexts: ['connack'], value: 'flag' },
  {
    id: 0x26,
    name: 'User Property',
    type: 'pair',
    contexts: ['connect', 'will', 'connack', 'publish', ...ACKS, 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'disconnect', 'auth']
  },
  { id: 0x27, name: 'Maximum Packet Size', type: 'four', contexts: ['connect', 'connack'], value: 'nonzero' },
  { id: 0x28, name: 'Wildcard Subscription Available', type: 'byte', contexts: ['connack'], value: 'flag' },
  { id: 0x29, name: 'Subscription Identifier Available', type: 'byte', contexts: ['connack'], value: 'flag' },
  { id: 0x2a, name: 'Shared Subscription Available', type: 'byte', contexts: ['connack'], value: 'flag' }
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


/** Identifiers are below 64: the rule and the context bits of each, by identifier. */
const BY_ID: ReadonlyArray<PropertyRule | undefined> = Array.from({ length: 64 }, (_, id) => PROPERTY_RULES.get(id))
const MASK_BY_ID: readonly number[] = BY_ID.map(rule => rule === undefined ? 0 : rule.contexts.reduce((m, c) => m | CONTEXT_BIT[c], 0))

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

/** What a scan collects for callers that read values (CONNECT, DISCONNECT, AUTH). */
interface Found {
  readonly seen: Set<number>
  readonly numbers: Map<number, number>
  readonly spans: Map<number, readonly [number, number]>
}

const malformed = (reason: string): PropertyFault => ({ reasonCode: ReasonCode.MalformedPacket, reason })
const protocolError = (reason: string): PropertyFault => ({ reasonCode: ReasonCode.ProtocolError, reason })

/**
 * Checks the property block (its Property Length included) that starts at
 * `start` and must end by `limit`, and returns the offset just after it, or
 * the fault. Nothing is allocated unless the block is at fault: this is the
 * check of every PUBLISH, acknowledgement, SUBSCRIBE and UNSUBSCRIBE that
 * carries properties (a PUBLISH without any does not come here at all).
 * Steps per property:
 * 1. an identifier unknown, or not valid for `context`, is a Malformed
 *    Packet (spec 2.2.2.2);
 * 2. a property given twice that may not repeat (`mayRepeat`) is a Protocol
 *    Error (spec 2.2.2.2);
 * 3. a value cut short, a Variable Byte Integer over four bytes, or a UTF-8
 *    string (or either string of a pair) that is not well formed
 *    [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.7-1]: Malformed Packet;
 * 4. a flag other than 0 or 1, or 0 where 0 is forbidden (`ValueRule`):
 *    Protocol Error.
 */
export function checkProperties (buf: Buffer, start: number, limit: number, context: PropertyContext, fromServer = false): number | PropertyFault {
  return scan(buf, start, limit, context, fromServer, undefined)
}

/** `checkProperties`, reporting as well the identifiers seen and their values. */
export function scanProperties (buf: Buffer, start: number, limit: number, context: PropertyContext, fromServer = false): PropertyScan {
  const found: Found = { seen: new Set(), numbers: new Map(), spans: new Map() }
  const end = scan(buf, start, limit, context, fromServer, found)
  if (typeof end !== 'number') return { kind: 'fault', fault: end }
  return { kind: 'ok', end, ...found }
}

function scan (buf: Buffer, start: number, limit: number, context: PropertyContext, fromServer: boolean, found: Found | undefined): number | PropertyFault {
  const length = readVarInt(buf, start)
  if (length === null || start + length.bytes > limit) return malformed('property length is not a valid variable byte integer')
  let pos = start + length.bytes
  const end = pos + length.value
  if (end > limit) return malformed('property length beyond the end of the packet')
  const bit = CONTEXT_BIT[context]
  // one bit per identifier already seen
  let seenLow = 0
  let seenHigh = 0
  while (pos < end) {
    const id = buf[pos++] as number
    const rule = BY_ID[id]
    if (rule === undefined || ((MASK_BY_ID[id] as number) & bit) === 0) {
      return malformed(`property 0x${id.toString(16)} is not valid in ${context === 'will' ? 'Will Properties' : context.toUpperCase()}`)
    }
    const idBit = 1 << (id & 31)
    const repeated = id < 32 ? (seenLow & idBit) !== 0 : (seenHigh & idBit) !== 0
    if (repeated && !mayRepeat(id, context, fromServer)) return protocolError(`${rule.name} more than once`)
    if (id < 32) seenLow |= idBit
    else seenHigh |= idBit
    let number = -1
    let next: number
    switch (rule.type) {
      case 'byte':
        next = pos + 1
        if (next <= end) number = buf[pos] as number
        break
      case 'two':
        next = pos + 2
        if (next <= end) number = buf.readUInt16BE(pos)
        break
      case 'four':
        next = pos + 4
        if (next <= end) number = buf.readUInt32BE(pos)
        break
      case 'varint': {
        const v = readVarInt(buf, pos)
        if (v === null || pos + v.bytes > end) return malformed(`${rule.name} is not a valid variable byte integer`)
        next = pos + v.bytes
        number = v.value
        break
      }
      case 'binary':
        next = field(buf, pos, end)
        break
      case 'string':
        next = field(buf, pos, end)
        if (next <= end && !isWellFormedString(buf, pos + 2, next)) return malformed(`${rule.name} is not a well-formed UTF-8 string`)
        break
      case 'pair': {
        const key = field(buf, pos, end)
        if (key > end) return malformed(`truncated ${rule.name}`)
        next = field(buf, key, end)
        if (next <= end && !(isWellFormedString(buf, pos + 2, key) && isWellFormedString(buf, key + 2, next))) {
          return malformed(`${rule.name} is not a well-formed UTF-8 string pair`)
        }
        break
      }
    }
    if (next > end) return malformed(`truncated ${rule.name}`)
    if (rule.value === 'flag' && number > 1) return protocolError(`${rule.name} of ${number}`)
    if (rule.value === 'nonzero' && number === 0) return protocolError(`${rule.name} of 0`)
    if (found !== undefined) {
      found.seen.add(id)
      if (number >= 0) found.numbers.set(id, number)
      else if (rule.type !== 'pair') found.spans.set(id, [pos + 2, next])
    }
    pos = next
  }
  return end
}

/** The offset after a length-prefixed field at `pos` (spec 1.5.4, 1.5.6); past `end` when it does not fit. */
function field (buf: Buffer, pos: number, end: number): number {
  return pos + 2 > end ? end + 1 : pos + 2 + buf.readUInt16BE(pos)
}
