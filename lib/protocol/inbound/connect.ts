/**
 * CONNECT, as the gateway sees it (spec 3.1). aedes runs the session side of
 * CONNECT; the gateway checks what aedes would only answer by closing the
 * socket, and learns what it needs for the rest of the connection.
 */
import type { IConnectPacket } from 'mqtt-packet'
import { decodeFrame, type ProtocolVersion } from '../codec.js'
import type { Frame } from '../frame.js'

export type ConnectInspection =
  | { kind: 'ok', packet: IConnectPacket, version: ProtocolVersion }
  /** [MQTT-3.1.2-1] not MQTT: close without CONNACK */
  | { kind: 'bad-protocol-name' }
  /** [MQTT-3.1.2-2] unsupported Protocol Level: CONNACK 0x01 then close */
  | { kind: 'bad-version', version: number }
  | { kind: 'malformed', reason: string, version: ProtocolVersion | undefined }

/**
 * Steps:
 * 1. read the Protocol Name and Level from the variable header;
 * 2. refuse a name other than MQTT (or MQIsdp for 3.1) [MQTT-3.1.2-1];
 * 3. refuse a level other than 3, 4 or 5 [MQTT-3.1.2-2];
 * 4. decode the whole packet; a decoding failure is a Malformed Packet.
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
  const version = level as ProtocolVersion
  const decoded = decodeFrame(frame, version)
  if (decoded instanceof Error) return { kind: 'malformed', reason: decoded.message, version }
  if (decoded.cmd !== 'connect') return { kind: 'malformed', reason: 'not a CONNECT', version }
  return { kind: 'ok', packet: decoded, version }
}

/** CONNACK with return code 0x01 in the 3.1.1 encoding, understood by every version [MQTT-3.1.2-2]. */
export const UNACCEPTABLE_PROTOCOL_VERSION_CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x01])
