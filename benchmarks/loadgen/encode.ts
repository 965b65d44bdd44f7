// Wire encoding for the load generator. PUBLISH packets are encoded once by
// mqtt-packet as a template, then copied and patched (packet id, sequence
// number, topic digits) into one contiguous buffer before the measured
// window starts, so sending costs a slice and a write, not an encode.
import { generate } from 'mqtt-packet'
import type { ProtocolVersion, QoS } from './jobs.js'

/**
 * Benchmark payload layout (big-endian):
 *   0..4  publisher index
 *   4..8  sequence number within that publisher
 *   8..16 send time, process.hrtime.bigint() ns (latency runs only)
 *   16..  zero padding up to the payload size
 */
export const PAYLOAD_HEADER_BYTES = 16
/** Publisher index carried by warm-up messages, which are counted apart. */
export const WARMUP_PUBLISHER = 0xffffffff
const SEQ_OFFSET = 4
const STAMP_OFFSET = 8

export interface PublishSpec {
  readonly topic: string
  /** Per-message topic of the same byte length as `topic` (retained runs). */
  readonly topicFor: ((index: number) => string) | null
  readonly publisherIndex: number
  readonly count: number
  readonly payloadBytes: number
  readonly qos: QoS
  readonly retain: boolean
  readonly protocolVersion: ProtocolVersion
}

export interface EncodedPublishes {
  /** `count` PUBLISH packets back to back, each `packetBytes` long. */
  readonly data: Buffer
  readonly packetBytes: number
  readonly count: number
  /** Offset of the payload inside each packet. */
  readonly payloadOffset: number
}

/** Packet identifiers cycle through 1..65535; in-flight windows are far smaller. */
export function messageIdFor (index: number): number {
  return (index % 0xffff) + 1
}

export function encodePublishes (spec: PublishSpec): EncodedPublishes {
  if (spec.payloadBytes < PAYLOAD_HEADER_BYTES) {
    throw new Error(`payload must be at least ${PAYLOAD_HEADER_BYTES} bytes`)
  }
  const template = generate({
    cmd: 'publish',
    topic: spec.topic,
    payload: Buffer.alloc(spec.payloadBytes),
    qos: spec.qos,
    retain: spec.retain,
    dup: false,
    ...(spec.qos > 0 ? { messageId: 1 } : {})
  }, { protocolVersion: spec.protocolVersion })
  const packetBytes = template.length
  const payloadOffset = packetBytes - spec.payloadBytes
  // The payload is last; before it sit (v5 only) a one-byte empty property
  // length and, for QoS > 0, the two-byte packet identifier.
  const messageIdOffset = payloadOffset - (spec.protocolVersion === 5 ? 1 : 0) - 2
  const topicBytes = Buffer.byteLength(spec.topic)
  const topicOffset = locateTopic(template, spec.topic)

  const data = Buffer.allocUnsafe(packetBytes * spec.count)
  for (let i = 0; i < spec.count; i++) {
    const base = i * packetBytes
    template.copy(data, base)
    if (spec.topicFor !== null) {
      const topic = spec.topicFor(i)
      if (Buffer.byteLength(topic) !== topicBytes) throw new Error(`topic ${topic} changes the packet length`)
      data.write(topic, base + topicOffset, 'utf8')
    }
    if (spec.qos > 0) data.writeUInt16BE(messageIdFor(i), base + messageIdOffset)
    data.writeUInt32BE(spec.publisherIndex, base + payloadOffset)
    data.writeUInt32BE(i, base + payloadOffset + SEQ_OFFSET)
  }
  return { data, packetBytes, count: spec.count, payloadOffset }
}

/** Offset of the topic name: after the 1-byte type, the 1..4-byte Remaining Length and the 2-byte topic length. */
function locateTopic (packet: Buffer, topic: string): number {
  const length = Buffer.byteLength(topic)
  for (let varintBytes = 1; varintBytes <= 4; varintBytes++) {
    const lengthOffset = 1 + varintBytes
    const topicOffset = lengthOffset + 2
    if (packet.readUInt16BE(lengthOffset) === length &&
      packet.toString('utf8', topicOffset, topicOffset + length) === topic) {
      return topicOffset
    }
  }
  throw new Error('topic not found in encoded PUBLISH')
}

/** Writes the send timestamp into packet `index` just before it is written. */
export function stampSendTime (encoded: EncodedPublishes, index: number, nowNs: bigint): void {
  encoded.data.writeBigUInt64BE(nowNs, index * encoded.packetBytes + encoded.payloadOffset + STAMP_OFFSET)
}

export interface PayloadHeader {
  readonly publisher: number
  readonly seq: number
  readonly sentNs: bigint
}

export function readPayloadHeader (payload: Buffer): PayloadHeader | null {
  if (payload.length < PAYLOAD_HEADER_BYTES) return null
  return {
    publisher: payload.readUInt32BE(0),
    seq: payload.readUInt32BE(SEQ_OFFSET),
    sentNs: payload.readBigUInt64BE(STAMP_OFFSET)
  }
}

// Acknowledgements are hand-encoded: four bytes, valid in both 3.1.1 and 5.0
// (MQTT 5 §3.4.2.1: reason code and properties may be omitted when the reason
// is Success, leaving Remaining Length 2). Calling generate() per ack would
// make the load generator, not the broker, the bottleneck.
function ack (firstByte: number, messageId: number): Buffer {
  return Buffer.from([firstByte, 2, messageId >> 8, messageId & 0xff])
}

export const encodePuback = (messageId: number): Buffer => ack(0x40, messageId)
export const encodePubrec = (messageId: number): Buffer => ack(0x50, messageId)
/** PUBREL has the reserved flag bits 0010 [MQTT-3.6.1-1]. */
export const encodePubrel = (messageId: number): Buffer => ack(0x62, messageId)
export const encodePubcomp = (messageId: number): Buffer => ack(0x70, messageId)
