/**
 * MQTT 5 properties (spec 2.2.2) checked on the raw bytes, before
 * mqtt-packet decodes them: its parser turns a repeated property into an
 * array, or, when the first value is 0 or false, silently keeps the last, and
 * decodes ill-formed UTF-8 into U+FFFD. Neither may reach aedes (a repeated
 * number became NaN in its timers). One pass over the property bytes, only
 * for packets that carry properties.
 */
import { ReasonCode } from '../reason-codes.js'
import { PacketType } from '../frame.js'
import { isWellFormedString } from '../utf8.js'

/** Where a property list sits: a packet type, or the Will Properties of a CONNECT. */
export type PropertyOwner = number | 'will'

const Kind = { Byte: 0, TwoByte: 1, FourByte: 2, VarInt: 3, Utf8: 4, Binary: 5, Pair: 6 } as const
type Kind = typeof Kind[keyof typeof Kind]

const P = PacketType
/** spec 2.2.2.2, table 2-4: type of each property and the packets that may carry it */
const PROPERTIES: ReadonlyMap<number, { kind: Kind, owners: ReadonlyArray<PropertyOwner> }> = new Map([
  [0x01, { kind: Kind.Byte, owners: [P.PUBLISH, 'will'] }], // Payload Format Indicator
  [0x02, { kind: Kind.FourByte, owners: [P.PUBLISH, 'will'] }], // Message Expiry Interval
  [0x03, { kind: Kind.Utf8, owners: [P.PUBLISH, 'will'] }], // Content Type
  [0x08, { kind: Kind.Utf8, owners: [P.PUBLISH, 'will'] }], // Response Topic
  [0x09, { kind: Kind.Binary, owners: [P.PUBLISH, 'will'] }], // Correlation Data
  [0x0b, { kind: Kind.VarInt, owners: [P.PUBLISH, P.SUBSCRIBE] }], // Subscription Identifier
  [0x11, { kind: Kind.FourByte, owners: [P.CONNECT, P.CONNACK, P.DISCONNECT] }], // Session Expiry Interval
  [0x12, { kind: Kind.Utf8, owners: [P.CONNACK] }], // Assigned Client Identifier
  [0x13, { kind: Kind.TwoByte, owners: [P.CONNACK] }], // Server Keep Alive
  [0x15, { kind: Kind.Utf8, owners: [P.CONNECT, P.CONNACK, P.AUTH] }], // Authentication Method
  [0x16, { kind: Kind.Binary, owners: [P.CONNECT, P.CONNACK, P.AUTH] }], // Authentication Data
  [0x17, { kind: Kind.Byte, owners: [P.CONNECT] }], // Request Problem Information
  [0x18, { kind: Kind.FourByte, owners: ['will'] }], // Will Delay Interval
  [0x19, { kind: Kind.Byte, owners: [P.CONNECT] }], // Request Response Information
  [0x1a, { kind: Kind.Utf8, owners: [P.CONNACK] }], // Response Information
  [0x1c, { kind: Kind.Utf8, owners: [P.CONNACK, P.DISCONNECT] }], // Server Reference
  [0x1f, { kind: Kind.Utf8, owners: [P.CONNACK, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBACK, P.UNSUBACK, P.DISCONNECT, P.AUTH] }], // Reason String
  [0x21, { kind: Kind.TwoByte, owners: [P.CONNECT, P.CONNACK] }], // Receive Maximum
  [0x22, { kind: Kind.TwoByte, owners: [P.CONNECT, P.CONNACK] }], // Topic Alias Maximum
  [0x23, { kind: Kind.TwoByte, owners: [P.PUBLISH] }], // Topic Alias
  [0x24, { kind: Kind.Byte, owners: [P.CONNACK] }], // Maximum QoS
  [0x25, { kind: Kind.Byte, owners: [P.CONNACK] }], // Retain Available
  [0x26, { kind: Kind.Pair, owners: [P.CONNECT, P.CONNACK, P.PUBLISH, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBSCRIBE, P.SUBACK, P.UNSUBSCRIBE, P.UNSUBACK, P.DISCONNECT, P.AUTH, 'will'] }], // User Property
  [0x27, { kind: Kind.FourByte, owners: [P.CONNECT, P.CONNACK] }], // Maximum Packet Size
  [0x28, { kind: Kind.Byte, owners: [P.CONNACK] }], // Wildcard Subscription Available
  [0x29, { kind: Kind.Byte, owners: [P.CONNACK] }], // Subscription Identifier Available
  [0x2a, { kind: Kind.Byte, owners: [P.CONNACK] }] // Shared Subscription Available
])

const USER_PROPERTY = 0x26
const PAYLOAD_FORMAT_INDICATOR = 0x01
const SUBSCRIPTION_IDENTIFIER = 0x0b

export type PropertiesResult =
  /** `end`: the offset just after the properties */
  | { ok: true, end: number }
  | { ok: false, reasonCode: number, reason: string }

function malformed (reason: string): PropertiesResult {
  return { ok: false, reasonCode: ReasonCode.MalformedPacket, reason }
}

function protocolError (reason: string): PropertiesResult {
  return { ok: false, reasonCode: ReasonCode.ProtocolError, reason }
}

/** A Variable Byte Integer (spec 1.5.5) at `at`, read no further than `end`; null when malformed. */
function varInt (buf: Buffer, at: number, end: number): { value: number, bytes: number } | null {
  let value = 0
  let multiplier = 1
  for (let n = 0; n < 4 && at + n < end; n++) {
    const byte = buf[at + n] as number
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { value, bytes: n + 1 }
    multiplier *= 128
  }
  return null
}

/** A UTF-8 Encoded String (spec 1.5.4) at `at`: the offset after it, or -1 when truncated or ill-formed. */
function utf8String (buf: Buffer, at: number, end: number): number {
  if (at + 2 > end) return -1
  const stop = at + 2 + buf.readUInt16BE(at)
  if (stop > end || !isWellFormedString(buf, at + 2, stop)) return -1
  return stop
}

/**
 * Checks the Property Length at `start` and every property after it, for a
 * packet of type `owner`, ending no further than `limit`. Steps per property:
 * 1. an identifier unknown, or not valid for the packet, is a Malformed
 *    Packet (spec 2.2.2.2);
 * 2. a property other than User Property appearing twice is a Protocol Error
 *    (spec 2.2.2.2; Subscription Identifier too: spec 3.8.2.1.2 for
 *    SUBSCRIBE, and a client's PUBLISH may not carry it at all [MQTT-3.3.4-6]);
 * 3. a value cut short, a Variable Byte Integer over four bytes, or a UTF-8
 *    string (or string pair) that is not well formed [MQTT-1.5.4-1]
 *    [MQTT-1.5.4-2] [MQTT-1.5.7-1]: Malformed Packet;
 * 4. Payload Format Indicator other than 0 or 1, Subscription Identifier 0:
 *    Protocol Error (spec 3.3.2.3.2, 3.8.2.1.2).
 */
export function checkProperties (buf: Buffer, start: number, limit: number, owner: PropertyOwner): PropertiesResult {
  const length = varInt(buf, start, limit)
  if (length === null) return malformed('property length is not a valid variable byte integer')
  let at = start + length.bytes
  const end = at + length.value
  if (end > limit) return malformed('properties run past the end of the packet')
  // identifiers are below 64: one bit each
  let seenLow = 0
  let seenHigh = 0
  while (at < end) {
    const id = buf[at++] as number
    const spec = PROPERTIES.get(id)
    if (spec === undefined || !spec.owners.includes(owner)) return malformed(`property 0x${id.toString(16)} is not valid here`)
    if (id !== USER_PROPERTY) {
      const bit = 1 << (id & 31)
      if (id < 32) {
        if ((seenLow & bit) !== 0) return protocolError(`property 0x${id.toString(16)} appears more than once`)
        seenLow |= bit
      } else {
        if ((seenHigh & bit) !== 0) return protocolError(`property 0x${id.toString(16)} appears more than once`)
        seenHigh |= bit
      }
    }
    switch (spec.kind) {
      case Kind.Byte:
        if (at + 1 > end) return malformed('property value cut short')
        if (id === PAYLOAD_FORMAT_INDICATOR && (buf[at] as number) > 1) return protocolError(`payload format indicator ${buf[at] as number}`)
        at += 1
        break
      case Kind.TwoByte: at += 2; break
      case Kind.FourByte: at += 4; break
      case Kind.VarInt: {
        const v = varInt(buf, at, end)
        if (v === null) return malformed('property value is not a valid variable byte integer')
        if (id === SUBSCRIPTION_IDENTIFIER && v.value === 0) return protocolError('subscription identifier 0')
        at += v.bytes
        break
      }
      case Kind.Binary:
        if (at + 2 > end) return malformed('property value cut short')
        at += 2 + buf.readUInt16BE(at)
        break
      case Kind.Utf8:
        at = utf8String(buf, at, end)
        if (at < 0) return malformed(`property 0x${id.toString(16)} is not a well-formed UTF-8 string`)
        break
      case Kind.Pair:
        at = utf8String(buf, at, end)
        if (at >= 0) at = utf8String(buf, at, end)
        if (at < 0) return malformed('user property is not a well-formed UTF-8 string pair')
        break
    }
    if (at > end) return malformed('property value cut short')
  }
  return { ok: true, end }
}
