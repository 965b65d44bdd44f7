/**
 * The CONNACK aedes writes (spec 3.2), encoded by culex in one buffer: once
 * per connection, but mqtt-packet's writeToStream writes it as five to a
 * dozen pieces (a Buffer per property identifier and per value), each
 * taken by the gateway's stream and joined again; in a profile of 9,000
 * plain connects that was about a twentieth of the broker's busy time.
 * The bytes are mqtt-packet's, properties in the object's order
 * (test/protocol/outbound/encode-broker-write.test.ts compares them);
 * anything less plain is left to mqtt-packet: User Properties,
 * Authentication Data, a property that is not a CONNACK's, a value
 * mqtt-packet would refuse or write oddly.
 */
import { PacketType } from '../frame.js'

/** What aedes hands mqtt-packet for a CONNACK (the fields read here). */
export interface BrokerConnack {
  returnCode?: unknown
  reasonCode?: unknown
  sessionPresent?: unknown
  properties?: unknown
}

type Kind = 'byte' | 'int8' | 'int16' | 'int32' | 'string'

/** the properties a CONNACK may carry that are encoded here: identifier and type (spec 3.2.2.3) */
const CONNACK_PROPERTIES: ReadonlyMap<string, readonly [number, Kind]> = new Map([
  ['sessionExpiryInterval', [0x11, 'int32']],
  ['receiveMaximum', [0x21, 'int16']],
  ['maximumQoS', [0x24, 'int8']],
  ['retainAvailable', [0x25, 'byte']],
  ['maximumPacketSize', [0x27, 'int32']],
  ['assignedClientIdentifier', [0x12, 'string']],
  ['topicAliasMaximum', [0x22, 'int16']],
  ['reasonString', [0x1f, 'string']],
  ['wildcardSubscriptionAvailable', [0x28, 'byte']],
  ['subscriptionIdentifiersAvailable', [0x29, 'byte']],
  ['sharedSubscriptionAvailable', [0x2a, 'byte']],
  ['serverKeepAlive', [0x13, 'int16']],
  ['responseInformation', [0x1a, 'string']],
  ['serverReference', [0x1c, 'string']],
  ['authenticationMethod', [0x15, 'string']]
])

/** the largest value of each numeric type, as mqtt-packet checks it */
const MAX: Readonly<Record<Exclude<Kind, 'byte' | 'string'>, number>> = { int8: 0xff, int16: 0xffff, int32: 0xffffffff }

const isByte = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xff

/** `packet` (a CONNACK) as mqtt-packet's writeToStream writes it, in one Buffer; undefined: left to mqtt-packet. */
export function encodeConnack (packet: BrokerConnack, version: 3 | 4 | 5): Buffer | undefined {
  const code = version === 5 ? packet.reasonCode : packet.returnCode
  if (!isByte(code)) return undefined
  const flags = packet.sessionPresent === true ? 1 : packet.sessionPresent === false || packet.sessionPresent === undefined ? 0 : -1
  if (flags < 0) return undefined
  if (version !== 5) return Buffer.from([PacketType.CONNACK << 4, 2, flags, code])
  const props = packet.properties
  let propsLength = 0
  if (props !== undefined) {
    if (props === null || typeof props !== 'object' || Object.getPrototypeOf(props) !== Object.prototype) return undefined
    for (const name in props) {
      const size = propertySize(name, (props as Record<string, unknown>)[name])
      if (size < 0) return undefined
      propsLength += size
    }
  }
  const remaining = 2 + varIntSize(propsLength) + propsLength
  const buf = Buffer.allocUnsafe(1 + varIntSize(remaining) + remaining)
  buf[0] = PacketType.CONNACK << 4
  let at = writeVarInt(buf, 1, remaining)
  buf[at++] = flags
  buf[at++] = code
  at = writeVarInt(buf, at, propsLength)
  if (props !== undefined) {
    for (const name in props) at = writeProperty(buf, at, name, (props as Record<string, unknown>)[name])
  }
  return buf
}

/** bytes of one property (identifier included); 0 for an undefined value, which mqtt-packet skips; -1: not encoded here */
function propertySize (name: string, value: unknown): number {
  if (value === undefined) return 0
  const spec = CONNACK_PROPERTIES.get(name)
  if (spec === undefined) return -1
  const kind = spec[1]
  switch (kind) {
    case 'byte': return typeof value === 'boolean' ? 2 : -1
    case 'string': {
      if (typeof value !== 'string') return -1
      const bytes = Buffer.byteLength(value)
      // a longer string has no two-byte length (spec 1.5.4)
      return bytes <= 0xffff ? 3 + bytes : -1
    }
    default:
      return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX[kind]
        ? 1 + (kind === 'int8' ? 1 : kind === 'int16' ? 2 : 4)
        : -1
  }
}

function writeProperty (buf: Buffer, at: number, name: string, value: unknown): number {
  if (value === undefined) return at
  const [id, kind] = CONNACK_PROPERTIES.get(name) as readonly [number, Kind]
  buf[at++] = id
  switch (kind) {
    case 'byte': buf[at] = value === true ? 1 : 0; return at + 1
    case 'int8': buf[at] = value as number; return at + 1
    case 'int16': return buf.writeUInt16BE(value as number, at)
    case 'int32': return buf.writeUInt32BE(value as number, at)
    case 'string': {
      const len = buf.write(value as string, at + 2, 'utf8')
      buf.writeUInt16BE(len, at)
      return at + 2 + len
    }
  }
}

function varIntSize (n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4
}

function writeVarInt (buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 0x80
    n = Math.floor(n / 0x80)
    if (n > 0) byte |= 0x80
    buf[at++] = byte
  } while (n > 0)
  return at
}
