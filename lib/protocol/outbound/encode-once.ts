/**
 * A live message is encoded once for all its QoS 0 subscribers.
 *
 * aedes copies a message for every subscriber and encodes each copy into the
 * client's stream piece by piece (fixed header, topic, properties, payload:
 * several small stream writes), which the gateway then joins and splits into
 * frames again. For QoS 0 deliveries (no packet id, so the bytes are the
 * same for every subscriber of one protocol version that gets the same
 * retain flag and properties) culex encodes the message once and hands the
 * finished frame to each subscriber's gateway (lib/broker.ts,
 * `authorizeForward`; Connection.sendEncoded).
 *
 * aedes delivers a message to all its subscribers in one go, so remembering
 * the last encoding is enough to share it across them.
 */
import mqtt from 'mqtt-packet'
import type { IPublishPacket } from 'mqtt-packet'
import type { AedesPublishPacket } from 'aedes'
import { frameOf, type Frame } from '../frame.js'
import type { ProtocolVersion } from '../codec.js'

interface Encoded {
  brokerId: string
  brokerCounter: number
  version: ProtocolVersion
  retain: boolean
  topic: string
  payload: unknown
  properties: unknown
  frame: Frame
}

function hasProperties (properties: object | undefined): boolean {
  if (properties === undefined) return false
  for (const _ in properties) return true
  return false
}

/**
 * A QoS 0 PUBLISH (spec 3.3): fixed header, topic, in MQTT 5 the properties,
 * then the payload. Without properties (most telemetry) it is written
 * directly into one buffer; mqtt-packet encodes the rest.
 */
export function encodeQoS0 (packet: AedesPublishPacket, retain: boolean, version: ProtocolVersion): Buffer {
  const properties = version === 5 ? packet.properties : undefined
  if (hasProperties(properties) || !(Buffer.isBuffer(packet.payload) || typeof packet.payload === 'string')) {
    const wire: IPublishPacket = { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 0, retain, dup: false }
    if (properties !== undefined) wire.properties = properties
    return mqtt.generate(wire, { protocolVersion: version })
  }
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  const topicLength = Buffer.byteLength(packet.topic)
  // topic length + topic [+ property length 0] + payload
  const remaining = 2 + topicLength + (version === 5 ? 1 : 0) + payload.length
  let lengthBytes = 1
  for (let n = remaining; n >= 128; n = Math.floor(n / 128)) lengthBytes++
  const buf = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  // [MQTT-3.3.1-2] DUP 0 for QoS 0; QoS bits 0; RETAIN as given
  buf[0] = 0x30 | (retain ? 1 : 0)
  let at = 1
  for (let n = remaining; ; n = Math.floor(n / 128)) {
    buf[at++] = n >= 128 ? (n % 128) | 0x80 : n
    if (n < 128) break
  }
  buf.writeUInt16BE(topicLength, at)
  at += 2
  at += buf.write(packet.topic, at, 'utf8')
  if (version === 5) buf[at++] = 0
  payload.copy(buf, at)
  return buf
}

export class EncodeOnce {
  private last: Encoded | undefined

  /**
   * The frame of `packet` delivered at QoS 0 to a client speaking `version`.
   * DUP is 0 for QoS 0 [MQTT-3.3.1-2]. The packet must carry the broker id
   * and counter aedes gives every live message (they identify the message).
   */
  frame (packet: AedesPublishPacket, version: ProtocolVersion): Frame {
    const last = this.last
    const retain = packet.retain === true
    if (last !== undefined &&
      last.brokerCounter === packet.brokerCounter &&
      last.brokerId === packet.brokerId &&
      last.version === version &&
      last.retain === retain &&
      last.topic === packet.topic &&
      last.payload === packet.payload &&
      last.properties === packet.properties) {
      return last.frame
    }
    const frame = frameOf(encodeQoS0(packet, retain, version))
    this.last = {
      brokerId: packet.brokerId,
      brokerCounter: packet.brokerCounter,
      version,
      retain,
      topic: packet.topic,
      payload: packet.payload,
      properties: packet.properties,
      frame
    }
    return frame
  }
}
