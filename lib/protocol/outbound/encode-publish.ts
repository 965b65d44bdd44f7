/**
 * A PUBLISH packet (spec 3.3) encoded by culex itself: fixed header, topic,
 * the packet id for QoS 1 and 2, in MQTT 5 the properties, then the payload.
 * Without properties (most messages) it is written straight into one buffer;
 * with properties mqtt-packet encodes it. Used where culex sends a message
 * without aedes: QoS 0 encoded once for all subscribers (encode-once.ts),
 * shared QoS 1 deliveries and a resumed session's queue
 * (lib/protocol/flows/fast-paths.ts `sendShared`, `sendQueued`).
 */
import mqtt from 'mqtt-packet'
import type { IPublishPacket } from 'mqtt-packet'
import type { ProtocolVersion } from '../codec.js'

export interface OutboundPublish {
  topic: string
  payload: Buffer | string | unknown
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
  /** required for QoS 1 and 2, absent for QoS 0 (spec 2.2.1) */
  messageId?: number | undefined
  properties?: object | undefined
}

/** The topic's length when it is ASCII (one byte per character in UTF-8), else -1. */
function asciiLength (topic: string): number {
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) >= 0x80) return -1
  return topic.length
}

function hasProperties (properties: object | undefined): boolean {
  if (properties === undefined) return false
  for (const _ in properties) return true
  return false
}

export function encodePublish (packet: OutboundPublish, version: ProtocolVersion): Buffer {
  const size = plainPublishSize(packet, version)
  if (size < 0) return generated(packet, version)
  const buf = Buffer.allocUnsafe(size)
  writePlainPublish(packet, version, buf, 0)
  return buf
}

/** With properties, or a payload that is neither a Buffer nor a string: mqtt-packet encodes it. */
export function generated (packet: OutboundPublish, version: ProtocolVersion): Buffer {
  const properties = version === 5 ? packet.properties : undefined
  const wire = { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, retain: packet.retain, dup: packet.dup } as IPublishPacket
  if (packet.qos > 0) wire.messageId = packet.messageId
  if (properties !== undefined) wire.properties = properties as IPublishPacket['properties']
  return mqtt.generate(wire, { protocolVersion: version })
}

/** Bytes of the PUBLISH as `writePlainPublish` writes it; -1: one for `generated` (properties, or an odd payload). */
export function plainPublishSize (packet: OutboundPublish, version: ProtocolVersion): number {
  if ((version === 5 && hasProperties(packet.properties)) || !(Buffer.isBuffer(packet.payload) || typeof packet.payload === 'string')) return -1
  const payload = packet.payload
  const payloadLength = typeof payload === 'string' ? Buffer.byteLength(payload) : (payload as Buffer).length
  const ascii = asciiLength(packet.topic)
  const topicLength = ascii >= 0 ? ascii : Buffer.byteLength(packet.topic)
  // topic length + topic [+ packet id] [+ property length 0] + payload
  const remaining = 2 + topicLength + (packet.qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payloadLength
  let lengthBytes = 1
  for (let n = remaining; n >= 128; n = Math.floor(n / 128)) lengthBytes++
  return 1 + lengthBytes + remaining
}

/**
 * Writes the PUBLISH into `buf` at `at`, where `plainPublishSize` bytes are free:
 * straight into a buffer that gathers several (flows/fast-paths.ts), or one
 * of its own (`encodePublish`).
 */
export function writePlainPublish (packet: OutboundPublish, version: ProtocolVersion, buf: Buffer, at: number): void {
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload as Buffer
  // Most topics are ASCII, and short: written byte by byte they cost no call
  // into the runtime (Buffer.byteLength, buf.write), which was a third of
  // encoding a small retained message.
  const ascii = asciiLength(packet.topic)
  const topicLength = ascii >= 0 ? ascii : Buffer.byteLength(packet.topic)
  const withId = packet.qos > 0
  if (withId && (packet.messageId === undefined || packet.messageId < 1 || packet.messageId > 0xffff)) {
    // [MQTT-2.2.1-4] a QoS 1/2 PUBLISH from the server carries a non-zero packet id
    throw new RangeError(`invalid packet id ${String(packet.messageId)} for a QoS ${packet.qos} PUBLISH`)
  }
  const remaining = 2 + topicLength + (withId ? 2 : 0) + (version === 5 ? 1 : 0) + payload.length
  // [MQTT-3.3.1-2] DUP is 0 for QoS 0
  buf[at++] = 0x30 | (withId && packet.dup ? 0x08 : 0) | (packet.qos << 1) | (packet.retain ? 1 : 0)
  for (let n = remaining; ; n = Math.floor(n / 128)) {
    buf[at++] = n >= 128 ? (n % 128) | 0x80 : n
    if (n < 128) break
  }
  buf[at++] = topicLength >> 8
  buf[at++] = topicLength & 0xff
  if (ascii >= 0) {
    const topic = packet.topic
    for (let i = 0; i < ascii; i++) buf[at++] = topic.charCodeAt(i)
  } else {
    at += buf.write(packet.topic, at, 'utf8')
  }
  if (withId) {
    buf[at++] = (packet.messageId as number) >> 8
    buf[at++] = (packet.messageId as number) & 0xff
  }
  if (version === 5) buf[at++] = 0
  buf.set(payload, at)
}
