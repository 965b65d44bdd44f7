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
