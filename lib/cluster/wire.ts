/**
 * The bytes a message travels between nodes as: an MQTT 5 PUBLISH (routes.ts
 * for QoS 0, the inboxes for QoS 1/2). A message without properties, the
 * bulk of the traffic, is written and read here from fixed offsets, as the
 * gateway reads a client's PUBLISH (protocol/decode.ts); one with properties
 * goes through mqtt-packet. Both give the same bytes and the same packet
 * (test/cluster/wire.test.ts): in a fan-in profile mqtt-packet's generate and
 * parse were a tenth of the routing nodes' time.
 */
import type { IPublishPacket } from 'mqtt-packet'
import { decodeBuffer, encode } from '../protocol/codec.js'
import { PacketType, frameOf, readPublishHeader, readVarInt } from '../protocol/frame.js'
import { publishPacket } from '../protocol/decode.js'

/** The message as an MQTT 5 PUBLISH. */
export function encodeRouted (packet: IPublishPacket): Buffer {
  if (packet.properties !== undefined) return encode(packet, 5)
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  const topicLength = Buffer.byteLength(packet.topic)
  const idLength = packet.qos > 0 ? 2 : 0
  // topic length, topic, packet id, property length 0, payload (spec 3.3.2)
  const remaining = 2 + topicLength + idLength + 1 + payload.length
  if (remaining > 268435455) return encode(packet, 5)
  const lengthBytes = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x200000 ? 3 : 4
  const buf = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  buf[0] = (PacketType.PUBLISH << 4) | (packet.dup ? 0x08 : 0) | (packet.qos << 1) | (packet.retain ? 0x01 : 0)
  let at = 1
  let left = remaining
  do {
    const digit = left % 0x80
    left = Math.floor(left / 0x80)
    buf[at++] = left > 0 ? digit | 0x80 : digit
  } while (left > 0)
  buf.writeUInt16BE(topicLength, at)
  at += 2
  at += buf.write(packet.topic, at, 'utf8')
  if (idLength > 0) {
    buf.writeUInt16BE(packet.messageId ?? 0, at)
    at += 2
  }
  buf[at++] = 0
  payload.copy(buf, at)
  return buf
}

/** The PUBLISH in `bytes`, or the reason it is not one. */
export function decodeRouted (bytes: Buffer): IPublishPacket | Error {
  return readPlain(bytes) ?? decodeOther(bytes)
}

/**
 * A whole PUBLISH without properties, read in one pass: the packet in the
 * shape protocol/decode.ts gives aedes, without the frame, length and header
 * objects made on the way there (a receiving node reads every routed message
 * here). null: anything else (properties, a QoS of 3, bytes that are not one
 * whole PUBLISH), left to `decodeOther`.
 */
function readPlain (bytes: Buffer): IPublishPacket | null {
  const size = bytes.length
  if (size < 2) return null
  const first = bytes[0] as number
  if (first >> 4 !== PacketType.PUBLISH) return null
  const qos = (first >> 1) & 0x03
  if (qos === 3) return null
  let remaining = 0
  let multiplier = 1
  let at = 1
  for (;;) {
    if (at >= size || at > 4) return null
    const byte = bytes[at++] as number
    remaining += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) break
    multiplier *= 128
  }
  if (remaining !== size - at || at + 2 > size) return null
  const topicAt = at + 2
  at = topicAt + (((bytes[at] as number) << 8) | (bytes[at + 1] as number))
  const idAt = at
  if (qos > 0) at += 2
  // property length 0 (one byte); anything else goes to mqtt-packet
  if (at >= size || bytes[at] !== 0) return null
  const packet = {
    cmd: 'publish',
    retain: (first & 0x01) === 1,
    qos,
    dup: (first & 0x08) !== 0,
    length: remaining,
    topic: bytes.toString('utf8', topicAt, idAt),
    payload: bytes.subarray(at + 1)
  } as IPublishPacket
  if (qos > 0) packet.messageId = ((bytes[idAt] as number) << 8) | (bytes[idAt + 1] as number)
  return packet
}

/** A PUBLISH with properties, or the reason the bytes are not one. */
function decodeOther (bytes: Buffer): IPublishPacket | Error {
  if (bytes.length > 0 && (bytes[0] as number) >> 4 === PacketType.PUBLISH) {
    const frame = frameOf(bytes)
    const length = readVarInt(bytes, 1)
    const header = length?.value === bytes.length - frame.headerLength ? readPublishHeader(frame) : null
    const packet = header === null ? null : publishPacket(frame, header, 5)
    if (packet !== null) return packet as IPublishPacket
  }
  const packet = decodeBuffer(bytes, 5)
  if (packet instanceof Error) return packet
  if (packet.cmd !== 'publish') return new Error(`not a PUBLISH (${packet.cmd})`)
  return packet
}
