/**
 * A deliberately permissive MQTT encoder for the fuzzer. mqtt-packet's
 * `generate` (used by test/helpers/raw.ts) only writes what the spec allows;
 * this one writes what a packet description says, however wrong: a property
 * any number of times, fields missing, flags and Remaining Lengths that lie.
 */
import { str, varint } from '../packet-bytes.js'
import { PROPERTY_RULES, type PropertyType } from '../../../lib/protocol/property-rules.js'

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

/** How each property's value is written (spec 2.2.2.2), from the broker's one property table. */
export const PROPERTY_TYPES: Readonly<Record<number, PropertyType>> = Object.fromEntries([...PROPERTY_RULES].map(([id, rule]) => [id, rule.type]))

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
    case 'two': value = u16(num); break
    case 'four': value = u32(num); break
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
