/**
 * Decodes inbound frames into the packet objects aedes expects (the shape
 * mqtt-packet's parser produces). PUBLISH and the acknowledgements, the bulk
 * of the traffic, are decoded here from the fixed offsets; everything else,
 * and any MQTT 5 packet with properties, by mqtt-packet.
 */
import type { Packet } from 'mqtt-packet'
import { PacketType, type Frame, type PublishHeader } from './frame.js'
import { decodeFrame, type ProtocolVersion } from './codec.js'
import { validFixedHeaderFlags } from './inbound/ack.js'

const ACK_COMMANDS: Record<number, 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'> = {
  [PacketType.PUBACK]: 'puback',
  [PacketType.PUBREC]: 'pubrec',
  [PacketType.PUBREL]: 'pubrel',
  [PacketType.PUBCOMP]: 'pubcomp'
}

/** A PUBLISH whose header the gateway already read; `null` when its v5 properties need mqtt-packet. */
export function publishPacket (frame: Frame, header: PublishHeader, version: ProtocolVersion): Packet | null {
  let payloadAt = header.afterId
  if (version === 5) {
    // [MQTT-2.2.2] property length 0 is one byte; anything else is decoded by mqtt-packet
    if (frame.buf[payloadAt] !== 0) return null
    payloadAt++
  }
  const packet: Packet = {
    cmd: 'publish',
    retain: header.retain,
    qos: header.qos as 0 | 1 | 2,
    dup: header.dup,
    length: frame.buf.length - frame.headerLength,
    topic: header.topic,
    payload: frame.buf.subarray(payloadAt)
  } as Packet
  if (header.packetId !== undefined) (packet as { messageId?: number }).messageId = header.packetId
  return packet
}

/**
 * Any inbound frame other than PUBLISH. Steps for the acknowledgements
 * (spec 3.4-3.7): the fixed header flags must be 0 (PUBREL: 2, or 0x0A in
 * MQTT 3.1) [MQTT-3.6.1-1] [MQTT-2.1.3-1]; 3.1.1 acks are exactly two bytes; a v5 ack
 * may carry a reason code, and properties (then mqtt-packet decodes it).
 */
export function decodeOther (frame: Frame, version: ProtocolVersion | undefined): Packet | Error {
  const cmd = ACK_COMMANDS[frame.type]
  if (cmd !== undefined) {
    if (!validFixedHeaderFlags(frame.type, frame.flags, version)) return new Error(`Invalid header flag bits for ${cmd}`)
    const length = frame.buf.length - frame.headerLength
    if (length < 2 || (version !== 5 && length !== 2)) return new Error(`Malformed ${cmd}`)
    if (length > 3) return decodeFrame(frame, version)
    const packet = { cmd, retain: false, qos: 0, dup: false, length, topic: null, payload: null, messageId: frame.buf.readUInt16BE(frame.headerLength) } as unknown as Packet
    if (length === 3) (packet as { reasonCode?: number }).reasonCode = frame.buf[frame.headerLength + 2] as number
    return packet
  }
  if (frame.type === PacketType.PINGREQ) {
    if (frame.buf.length !== 2 || frame.flags !== 0) return new Error('Malformed pingreq')
    return { cmd: 'pingreq', retain: false, qos: 0, dup: false, length: 0, topic: null, payload: null } as unknown as Packet
  }
  return decodeFrame(frame, version)
}
