/**
 * A QoS 1/2 PUBLISH from a resumed session's queue (Connection.sendQueued),
 * encoded straight into one buffer when it carries no MQTT 5 properties (the
 * common case for telemetry); mqtt-packet encodes the rest.
 */
import mqtt from 'mqtt-packet'
import type { IPublishPacket } from 'mqtt-packet'
import type { ProtocolVersion } from '../codec.js'

function hasProperties (properties: object | undefined): boolean {
  if (properties === undefined) return false
  for (const _ in properties) return true
  return false
}

/**
 * Spec 3.3: fixed header (DUP, QoS, RETAIN), remaining length, topic, packet
 * identifier (QoS 1/2 only [MQTT-2.2.1-5]), in MQTT 5 the properties, then the
 * payload.
 */
export function encodePublish (packet: IPublishPacket, version: ProtocolVersion): Buffer {
  const properties = version === 5 ? packet.properties : undefined
  const payload = packet.payload
  if (hasProperties(properties) || !(Buffer.isBuffer(payload) || typeof payload === 'string') || typeof packet.topic !== 'string') {
    return mqtt.generate(packet, { protocolVersion: version })
  }
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  const qos = packet.qos
  const withId = qos > 0
  if (withId && typeof packet.messageId !== 'number') return mqtt.generate(packet, { protocolVersion: version })
  const topicLength = Buffer.byteLength(packet.topic)
  // topic length + topic [+ packet id] [+ property length 0] + payload
  const remaining = 2 + topicLength + (withId ? 2 : 0) + (version === 5 ? 1 : 0) + body.length
  let lengthBytes = 1
  for (let n = remaining; n >= 128; n = Math.floor(n / 128)) lengthBytes++
  const buf = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  buf[0] = 0x30 | (packet.dup === true && withId ? 0x08 : 0) | (qos << 1) | (packet.retain === true ? 1 : 0)
  let at = 1
  for (let n = remaining; ; n = Math.floor(n / 128)) {
    buf[at++] = n >= 128 ? (n % 128) | 0x80 : n
    if (n < 128) break
  }
  buf.writeUInt16BE(topicLength, at)
  at += 2
  at += buf.write(packet.topic, at, 'utf8')
  if (withId) {
    buf.writeUInt16BE(packet.messageId as number, at)
    at += 2
  }
  if (version === 5) buf[at++] = 0
  body.copy(buf, at)
  return buf
}
