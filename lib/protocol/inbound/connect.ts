/**
 * CONNECT, as the gateway sees it (spec 3.1). aedes runs the session side of
 * CONNECT; the gateway checks what aedes would only answer by closing the
 * socket, and learns what it needs for the rest of the connection.
 */
import type { IConnectPacket } from 'mqtt-packet'
import { decodeFrame, type ProtocolVersion } from '../codec.js'
import type { Frame } from '../frame.js'
import { checkConnect } from './connect-rules.js'

export type ConnectInspection =
  | { kind: 'ok', packet: IConnectPacket, version: ProtocolVersion }
  /** [MQTT-3.1.2-1] not MQTT: close without CONNACK */
  | { kind: 'bad-protocol-name' }
  /** [MQTT-3.1.2-2] unsupported Protocol Level, or one its Protocol Name does not go with: CONNACK 0x01 (0x84 for level 5) then close */
  | { kind: 'bad-version', version: number }
  | { kind: 'malformed', reason: string, version: ProtocolVersion | undefined }
  /** breaks a rule of spec 3.1.2 / 3.1.3 (inbound/connect-rules.ts): Malformed Packet or Protocol Error */
  | { kind: 'invalid', reasonCode: number, reason: string, version: ProtocolVersion }

/**
 * Steps:
 * 1. read the Protocol Name and Level from the variable header;
 * 2. refuse a name other than MQTT (or MQIsdp for 3.1) [MQTT-3.1.2-1];
 * 3. refuse a level other than 3, 4 or 5 [MQTT-3.1.2-2], and a name that
 *    is not the one of its level (MQIsdp is 3.1, level 3; MQTT is 3.1.1 and
 *    5) [MQTT-3.1.2-1]: refused as an unsupported version, as mosquitto does;
 * 4. check the rules a decoder does not (inbound/connect-rules.ts);
 * 5. decode the whole packet; a decoding failure is a Malformed Packet.
 */
export function inspectConnect (frame: Frame): ConnectInspection {
  const { buf, headerLength } = frame
  if (buf.length < headerLength + 2) return { kind: 'malformed', reason: 'truncated CONNECT', version: undefined }
  const nameLength = buf.readUInt16BE(headerLength)
  const levelAt = headerLength + 2 + nameLength
  if (levelAt >= buf.length) return { kind: 'malformed', reason: 'truncated CONNECT', version: undefined }
  const name = buf.toString('utf8', headerLength + 2, levelAt)
  if (name !== 'MQTT' && name !== 'MQIsdp') return { kind: 'bad-protocol-name' }
  // bit 7 of the level is the bridge flag some brokers set; it is not part of the version
  const level = (buf[levelAt] as number) & 0x7f
  if (level !== 3 && level !== 4 && level !== 5) return { kind: 'bad-version', version: level }
  if ((name === 'MQIsdp') !== (level === 3)) return { kind: 'bad-version', version: level }
  const version = level as ProtocolVersion
  const fault = checkConnect(buf, levelAt, version)
  if (fault !== undefined) return { kind: 'invalid', reasonCode: fault.reasonCode, reason: fault.reason, version }
  const decoded = decodeCommonConnect(buf, headerLength, levelAt) ?? decodeFrame(frame, version)
  if (decoded instanceof Error) return { kind: 'malformed', reason: decoded.message, version }
  if (decoded.cmd !== 'connect') return { kind: 'malformed', reason: 'not a CONNECT', version }
  return { kind: 'ok', packet: decoded, version }
}

/** CONNACK with return code 0x01 in the 3.1.1 encoding, understood by every version [MQTT-3.1.2-2]. */
export const UNACCEPTABLE_PROTOCOL_VERSION_CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x01])

/** CONNACK 0x84 (Unsupported Protocol Version) in the MQTT 5 encoding, for a client that asked for level 5 [MQTT-3.1.2-2]. */
export const UNSUPPORTED_PROTOCOL_VERSION_CONNACK_V5 = Buffer.from([0x20, 0x03, 0x00, 0x84, 0x00])

type ConnectProperties = NonNullable<IConnectPacket['properties']>

/** The CONNECT properties the common decoder reads (spec 3.1.2.11): identifier → name and width in bytes. */
const COMMON_PROPERTIES = new Map<number, readonly [keyof ConnectProperties, 1 | 2 | 4]>([
  [0x11, ['sessionExpiryInterval', 4]],
  [0x21, ['receiveMaximum', 2]],
  [0x27, ['maximumPacketSize', 4]],
  [0x22, ['topicAliasMaximum', 2]],
  [0x17, ['requestProblemInformation', 1]],
  [0x19, ['requestResponseInformation', 1]]
])

/**
 * The common CONNECT, decoded without mqtt-packet's parser: it was about
 * 15 µs of the ~500 µs of broker CPU per connect (CPU profile over 9000
 * MQTT 5 connects), mostly BufferList and debug() calls. Common means:
 * protocol name MQTT at level 4 or 5 (no bridge bit), no Will, the reserved
 * flag clear, at most one each of the numeric and flag CONNECT properties
 * (Session Expiry Interval, Receive Maximum, Maximum Packet Size, Topic Alias
 * Maximum, Request Response / Problem Information) in a property block under
 * 128 bytes, and nothing after the Client Identifier, User Name and Password.
 * Anything else (and any truncation) returns undefined, and mqtt-packet
 * decides; what this returns is what mqtt-packet gives for the same bytes
 * (test/protocol/inbound/connect.test.ts compares them on random packets).
 */
export function decodeCommonConnect (buf: Buffer, headerLength: number, levelAt: number): IConnectPacket | undefined {
  const end = buf.length
  const level = buf[levelAt]
  if (buf[0] !== 0x10 || (level !== 4 && level !== 5) || levelAt !== headerLength + 6 ||
    buf.toString('latin1', headerLength + 2, levelAt) !== 'MQTT') return undefined
  let pos = levelAt + 1
  if (pos + 3 > end) return undefined
  const flags = buf[pos] as number
  // bit 0 reserved; bits 2-5 Will flag, Will QoS, Will Retain
  if ((flags & 0x3d) !== 0) return undefined
  const keepalive = buf.readUInt16BE(pos + 1)
  pos += 3
  let properties: ConnectProperties | undefined
  if (level === 5) {
    const length = buf[pos]
    if (length === undefined || length > 127 || pos + 1 + length > end) return undefined
    pos++
    const stop = pos + length
    if (length > 0) {
      const props: ConnectProperties = {}
      while (pos < stop) {
        const read = COMMON_PROPERTIES.get(buf[pos++] as number)
        if (read === undefined) return undefined
        const [name, width] = read
        // a property given twice was refused before (connect-rules.ts); this keeps the decoder safe alone
        if (props[name] !== undefined || pos + width > stop) return undefined
        ;(props as Record<string, number | boolean>)[name] = width === 4 ? buf.readUInt32BE(pos) : width === 2 ? buf.readUInt16BE(pos) : buf[pos] !== 0
        pos += width
      }
      properties = props
    }
  }
  const clientId = readString(buf, pos)
  if (clientId === undefined) return undefined
  pos += 2 + buf.readUInt16BE(pos)
  let username: string | undefined
  if ((flags & 0x80) !== 0) {
    username = readString(buf, pos)
    if (username === undefined) return undefined
    pos += 2 + buf.readUInt16BE(pos)
  }
  let password: Buffer | undefined
  if ((flags & 0x40) !== 0) {
    if (pos + 2 > end) return undefined
    const n = buf.readUInt16BE(pos)
    if (pos + 2 + n > end) return undefined
    password = buf.subarray(pos + 2, pos + 2 + n)
    pos += 2 + n
  }
  if (pos !== end) return undefined
  // mqtt-packet's Packet fields, then CONNECT's, in its order
  const packet = {
    cmd: 'connect',
    retain: false,
    qos: 0,
    dup: false,
    length: end - headerLength,
    topic: null,
    payload: null,
    protocolId: 'MQTT',
    protocolVersion: level,
    clean: (flags & 0x02) !== 0,
    keepalive
  } as unknown as IConnectPacket
  if (properties !== undefined) packet.properties = properties
  packet.clientId = clientId
  if (username !== undefined) packet.username = username
  if (password !== undefined) packet.password = password
  return packet
}

/** A UTF-8 string with its two-byte length at `pos`; undefined when it runs past the end. */
function readString (buf: Buffer, pos: number): string | undefined {
  if (pos + 2 > buf.length) return undefined
  const n = buf.readUInt16BE(pos)
  if (pos + 2 + n > buf.length) return undefined
  return buf.toString('utf8', pos + 2, pos + 2 + n)
}
