/**
 * A deliberately permissive MQTT encoder for the fuzzer. mqtt-packet's
 * `generate` (used by test/helpers/raw.ts) only writes what the spec allows;
 * this one writes what a packet description says, however wrong: a property
 * any number of times, fields missing, flags and Remaining Lengths that lie.
 */

/** Variable Byte Integer (spec 1.5.5); values above 268,435,455 get a fifth byte, which is malformed. */
export function varint (n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}

export function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n & 0xffff)
  return b
}

export function u32 (n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

/** A UTF-8 Encoded String or Binary Data field (spec 1.5.4, 1.5.6): the bytes as given, behind their 16-bit length. */
export function str (bytes: Buffer): Buffer {
  return Buffer.concat([u16(bytes.length), bytes])
}

/** How each property's value is written (spec 2.2.2.2). */
export type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'

export const PROPERTY_TYPES: Readonly<Record<number, PropType>> = {
  0x01: 'byte', // Payload Format Indicator
  0x02: 'u32', // Message Expiry Interval
  0x03: 'string', // Content Type
  0x08: 'string', // Response Topic
  0x09: 'binary', // Correlation Data
  0x0b: 'varint', // Subscription Identifier
  0x11: 'u32', // Session Expiry Interval
  0x12: 'string', // Assigned Client Identifier
  0x13: 'u16', // Server Keep Alive
  0x15: 'string', // Authentication Method
  0x16: 'binary', // Authentication Data
  0x17: 'byte', // Request Problem Information
  0x18: 'u32', // Will Delay Interval
  0x19: 'byte', // Request Response Information
  0x1a: 'string', // Response Information
  0x1c: 'string', // Server Reference
  0x1f: 'string', // Reason String
  0x21: 'u16', // Receive Maximum
  0x22: 'u16', // Topic Alias Maximum
  0x23: 'u16', // Topic Alias
  0x24: 'byte', // Maximum QoS
  0x25: 'byte', // Retain Available
  0x26: 'pair', // User Property
  0x27: 'u32', // Maximum Packet Size
  0x28: 'byte', // Wildcard Subscription Available
  0x29: 'byte', // Subscription Identifier Available
  0x2a: 'byte' // Shared Subscription Available
}

/** One property: its identifier and a value; `value` is a number or the raw bytes of a string (a pair uses `value2` too). */
export interface Prop {
  id: number
  value: number | Buffer
  value2?: Buffer
}

export function encodeProp (p: Prop): Buffer {
  const type = PROPERTY_TYPES[p.id] ?? 'byte'
  const num = typeof p.value === 'number' ? p.value : p.value.length
  const bytes = typeof p.value === 'number' ? Buffer.from(String(p.value)) : p.value
  let value: Buffer
  switch (type) {
    case 'byte': value = Buffer.from([num & 0xff]); break
    case 'u16': value = u16(num); break
    case 'u32': value = u32(num); break
    case 'varint': value = varint(num); break
    case 'string': case 'binary': value = str(bytes); break
    case 'pair': value = Buffer.concat([str(bytes), str(p.value2 ?? Buffer.alloc(0))]); break
  }
  return Buffer.concat([varint(p.id), value])
}

/** A Properties field: its length, then each property in order, repeats included. */
export function encodeProps (props: readonly Prop[]): Buffer {
  const body = Buffer.concat(props.map(encodeProp))
  return Buffer.concat([varint(body.length), body])
}

/** A part of a packet after the fixed header: bytes, or a Properties field written only on MQTT 5 connections. */
export type Part = Buffer | { props: readonly Prop[] }

/** What is wrong with a packet's framing, if anything. */
export interface Framing {
  /** keep only the first `keep` parts (a required field omitted) */
  keep?: number
  /** Remaining Length written instead of the true one: a number, or raw bytes (non-minimal, 5 bytes...) */
  length?: number | Buffer
  /** bytes cut from the end of the whole packet */
  cut?: number
}

export interface PacketSpec {
  /** packet type (1 CONNECT ... 15 AUTH; 0 is reserved) */
  type: number
  /** fixed-header flags, bits 3-0 */
  flags: number
  parts: readonly Part[]
  framing?: Framing
  /** a short name for reports */
  name: string
}

/** The bytes of a packet on a connection of this MQTT version (3, 4 or 5). */
export function encodePacket (p: PacketSpec, version: number): Buffer {
  const kept = p.framing?.keep === undefined ? p.parts : p.parts.slice(0, p.framing.keep)
  const body = Buffer.concat(kept.flatMap(part => Buffer.isBuffer(part) ? [part] : version === 5 ? [encodeProps(part.props)] : []))
  const declared = p.framing?.length
  const length = declared === undefined ? varint(body.length) : typeof declared === 'number' ? varint(declared) : declared
  const whole = Buffer.concat([Buffer.from([((p.type & 0x0f) << 4) | (p.flags & 0x0f)]), length, body])
  const cut = p.framing?.cut ?? 0
  return cut > 0 ? whole.subarray(0, Math.max(0, whole.length - cut)) : whole
}
