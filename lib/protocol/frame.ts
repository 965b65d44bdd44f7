/**
 * Frame-level reading of the MQTT byte stream (spec 2.1): the fixed header
 * (packet type, flags, Remaining Length) is enough to split the stream into
 * packets without decoding them, which keeps the hot path cheap.
 */

export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15
} as const

export interface Frame {
  /** packet type, the high nibble of the first byte */
  readonly type: number
  /** the low nibble of the first byte */
  readonly flags: number
  /** bytes of the fixed header (1 + the Remaining Length field) */
  readonly headerLength: number
  /** the whole packet, fixed header included */
  readonly buf: Buffer
}

export type ReadResult =
  | { kind: 'frame', frame: Frame }
  | { kind: 'malformed', reason: string }
  | { kind: 'too-large', size: number }

/**
 * Accumulates bytes and yields whole frames. A Remaining Length encoded in
 * more than four bytes is malformed [MQTT-1.5.5-1]; a declared size above
 * `maximumPacketSize` is reported as soon as the header is read, before the
 * body is buffered [MQTT-3.1.2-24] [MQTT-3.2.2-15].
 */
/** shared by every reader with nothing left over (never written to) */
const EMPTY = Buffer.alloc(0)

export class FrameReader {
  private buf: Buffer = EMPTY
  /** 0 = no limit */
  maximumPacketSize: number

  constructor (maximumPacketSize = 0) {
    this.maximumPacketSize = maximumPacketSize
  }

  get buffered (): number { return this.buf.length }

  /** Splits `chunk` (plus what was left over) into frames, appended to `out`. */
  push (chunk: Buffer, out: ReadResult[]): void {
    const buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    let pos = 0
    while (buf.length - pos >= 2) {
      let length = 0
      let multiplier = 1
      let i = pos + 1
      let complete = false
      for (let n = 0; n < 4 && i < buf.length; n++, i++) {
        const byte = buf[i] as number
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) { complete = true; i++; break }
        if (n === 3) {
          this.buf = EMPTY
          out.push({ kind: 'malformed', reason: 'remaining length longer than four bytes' })
          return
        }
      }
      if (!complete) break
      const headerLength = i - pos
      const total = headerLength + length
      if (this.maximumPacketSize > 0 && total > this.maximumPacketSize) {
        this.buf = EMPTY
        out.push({ kind: 'too-large', size: total })
        return
      }
      if (buf.length - pos < total) break
      const first = buf[pos] as number
      out.push({ kind: 'frame', frame: { type: first >> 4, flags: first & 0x0f, headerLength, buf: buf.subarray(pos, pos + total) } })
      pos += total
    }
    this.buf = pos === buf.length ? EMPTY : Buffer.from(buf.subarray(pos))
  }
}

/** The frame of one whole packet the broker encoded itself (spec 2.1.1, 2.1.4). */
export function frameOf (buf: Buffer): Frame {
  const first = buf[0] as number
  return { type: first >> 4, flags: first & 0x0f, headerLength: fixedHeaderLength(buf), buf }
}

/** The packet identifier that follows the fixed header of PUBACK..PUBCOMP, SUBACK, UNSUBACK. */
export function ackPacketId (frame: Frame): number {
  return frame.buf.readUInt16BE(frame.headerLength)
}

/** The reason code of a v5 PUBACK/PUBREC/PUBREL/PUBCOMP (0 when omitted, spec 3.4.2.1). */
export function ackReasonCode (frame: Frame): number {
  const at = frame.headerLength + 2
  return frame.buf.length > at ? frame.buf[at] as number : 0
}

export interface PublishHeader {
  qos: number
  retain: boolean
  dup: boolean
  topic: string
  /** undefined for QoS 0 */
  packetId: number | undefined
  /** offset just after the packet identifier (v5: where properties start) */
  afterId: number
}

/** longest Topic Name a `TopicMemo` keeps, in bytes */
const MEMO_TOPIC_BYTES = 64

/**
 * The last short Topic Name of a connection's PUBLISHes, as bytes and as
 * the string decoded from them. A device publishes to the same few topics
 * again and again: comparing a few bytes is cheaper than decoding them, and
 * the same string goes on to the checks, which remember that it passed
 * (`checkPublishHeader`), and to aedes' matcher, whose Map then finds its
 * hash already computed.
 */
export class TopicMemo {
  private readonly bytes = Buffer.allocUnsafe(MEMO_TOPIC_BYTES)
  private length = -1
  private topic = ''
  /**
   * The remembered topic passed the topic checks (inbound/publish.ts) with
   * this protocol version and these limits; 0: not checked since it was read.
   */
  passedVersion = 0
  passedMaxLength = 0
  passedMaxLevels = 0

  /** The Topic Name in `buf` from `start` to `end`: the remembered string when the bytes are the same. */
  read (buf: Buffer, start: number, end: number): string {
    const length = end - start
    if (length === this.length) {
      const bytes = this.bytes
      let i = 0
      while (i < length && bytes[i] === buf[start + i]) i++
      if (i === length) return this.topic
    }
    // checks passed by other bytes say nothing about these, even when they decode to the same string
    this.passedVersion = 0
    const topic = buf.toString('utf8', start, end)
    if (length <= MEMO_TOPIC_BYTES) {
      buf.copy(this.bytes, 0, start, end)
      this.length = length
      this.topic = topic
    } else this.length = -1
    return topic
  }
}

/** Reads the variable header of a PUBLISH without decoding properties or payload; `memo`: the connection's last Topic Name. */
export function readPublishHeader (frame: Frame, memo?: TopicMemo): PublishHeader | null {
  const { buf, headerLength, flags } = frame
  const qos = (flags >> 1) & 0x03
  if (buf.length < headerLength + 2) return null
  const topicLength = buf.readUInt16BE(headerLength)
  let at = headerLength + 2 + topicLength
  if (at > buf.length) return null
  const topic = memo === undefined ? buf.toString('utf8', headerLength + 2, at) : memo.read(buf, headerLength + 2, at)
  let packetId: number | undefined
  if (qos > 0) {
    if (at + 2 > buf.length) return null
    packetId = buf.readUInt16BE(at)
    at += 2
  }
  return { qos, retain: (flags & 0x01) === 1, dup: (flags & 0x08) !== 0, topic, packetId, afterId: at }
}

/** The QoS and packet identifier of a PUBLISH, without decoding its topic (the outbound hot path). */
export function readPublishId (frame: Frame): { qos: number, packetId: number | undefined } | null {
  const { buf, headerLength, flags } = frame
  const qos = (flags >> 1) & 0x03
  if (qos === 0) return { qos, packetId: undefined }
  if (buf.length < headerLength + 2) return null
  const at = headerLength + 2 + buf.readUInt16BE(headerLength)
  if (at + 2 > buf.length) return null
  return { qos, packetId: buf.readUInt16BE(at) }
}

/** Reads a Variable Byte Integer (spec 1.5.5) at `offset`. */
export function readVarInt (buf: Buffer, offset: number): { value: number, bytes: number } | null {
  let value = 0
  let multiplier = 1
  for (let n = 0; n < 4; n++) {
    if (offset + n >= buf.length) return null
    const byte = buf[offset + n] as number
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { value, bytes: n + 1 }
    multiplier *= 128
  }
  return null
}

/** Bytes of the fixed header of an encoded packet (1 + the Remaining Length field). */
export function fixedHeaderLength (buf: Buffer): number {
  let i = 1
  while (i < 5 && i < buf.length && ((buf[i] as number) & 0x80) !== 0) i++
  return i + 1
}
