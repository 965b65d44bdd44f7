/**
 * The packets aedes writes most, encoded by culex in one buffer: a PUBLISH
 * to a subscriber (spec 3.3), the acknowledgements PUBACK, PUBREC, PUBREL
 * and PUBCOMP (spec 3.4-3.7), and the CONNACK (encode-connack.ts). aedes writes every packet through mqtt-packet's
 * writeToStream, which computes lengths, looks up header tables and writes a
 * packet as four to seven small pieces (a topic string among them, copied
 * into a Buffer of its own by the stream); in a fan-in profile that was a
 * tenth of each node's time. These give the same bytes, from fixed offsets
 * (test/protocol/outbound/encode-broker-write.test.ts compares them with
 * mqtt-packet's), and leave anything less plain to mqtt-packet: a PUBLISH
 * with MQTT 5 properties (Subscription Identifiers, User Properties, Message
 * Expiry...), an acknowledgement with properties, a payload that is neither
 * a Buffer nor a string, a value mqtt-packet would refuse or write oddly.
 * What the gateway then does with the bytes (the window, Maximum Packet
 * Size, outbound topic aliases: flows/publish-out.ts; the order of
 * acknowledgements: flows/acks.ts) is the same either way.
 */
import type { ProtocolVersion } from '../codec.js'
import { PacketType } from '../frame.js'
import { encodeConnack } from './encode-connack.js'
import { plainPublishSize, writePlainPublish, type OutboundPublish } from './encode-publish.js'

/** What aedes hands mqtt-packet to write (a PUBLISH or an acknowledgement: the fields read here). */
export interface BrokerPacket {
  cmd: string
  messageId?: unknown
  topic?: unknown
  payload?: unknown
  qos?: unknown
  dup?: unknown
  retain?: unknown
  properties?: unknown
  reasonCode?: unknown
  returnCode?: unknown
  sessionPresent?: unknown
}

/** the largest Remaining Length (spec 1.5.5) */
const MAX_REMAINING = 268435455

const ACK_TYPES: Readonly<Record<string, number>> = {
  puback: PacketType.PUBACK,
  pubrec: PacketType.PUBREC,
  pubrel: PacketType.PUBREL,
  pubcomp: PacketType.PUBCOMP
}

/** `packet` as mqtt-packet's writeToStream writes it to a stream, in one Buffer; undefined: left to mqtt-packet. */
export function encodeBrokerWrite (packet: BrokerPacket, version: ProtocolVersion): Buffer | undefined {
  switch (packet.cmd) {
    case 'publish': return encodePlainPublish(packet, version)
    case 'connack': return encodeConnack(packet, version)
    default: return encodeAck(packet, version)
  }
}

const isPacketId = (id: unknown): id is number => typeof id === 'number' && Number.isInteger(id) && id >= 1 && id <= 0xffff

function encodePlainPublish (packet: BrokerPacket, version: ProtocolVersion): Buffer | undefined {
  const { topic, qos, messageId } = packet
  if (typeof topic !== 'string' || (qos !== 0 && qos !== 1 && qos !== 2)) return undefined
  // mqtt-packet sets DUP on QoS 0 as asked [MQTT-3.3.1-2]; such an odd packet keeps its way
  if (qos === 0 ? packet.dup === true : !isPacketId(messageId)) return undefined
  const wire: OutboundPublish = {
    topic,
    payload: packet.payload,
    qos,
    retain: packet.retain === true,
    dup: packet.dup === true,
    messageId: qos > 0 ? messageId as number : undefined,
    properties: packet.properties as object | undefined
  }
  const size = plainPublishSize(wire, version)
  if (size < 0 || size > MAX_REMAINING) return undefined
  const buf = Buffer.allocUnsafe(size)
  writePlainPublish(wire, version, buf, 0)
  return buf
}

/**
 * An acknowledgement without properties. In MQTT 5 mqtt-packet leaves the
 * Reason Code out only when it is 0 (spec 3.4.2.1); with none given
 * (aedes' success) it writes 0 and a Property Length of 0.
 */
function encodeAck (packet: BrokerPacket, version: ProtocolVersion): Buffer | undefined {
  const type = ACK_TYPES[packet.cmd]
  const { messageId, reasonCode } = packet
  if (type === undefined || !isPacketId(messageId) || packet.properties !== undefined) return undefined
  // the DUP flag mqtt-packet sets on a PUBREL asked for one
  if (type === PacketType.PUBREL && packet.dup === true) return undefined
  if (reasonCode !== undefined && !(typeof reasonCode === 'number' && Number.isInteger(reasonCode) && reasonCode >= 0 && reasonCode <= 0xff)) return undefined
  const withCode = version === 5 && reasonCode !== 0
  const buf = Buffer.allocUnsafe(withCode ? 6 : 4)
  // [MQTT-3.6.1-1] PUBREL's fixed header flags are 0010
  buf[0] = (type << 4) | (type === PacketType.PUBREL ? 0x02 : 0)
  buf[1] = withCode ? 4 : 2
  buf[2] = messageId >> 8
  buf[3] = messageId & 0xff
  if (withCode) {
    buf[4] = (reasonCode as number | undefined) ?? 0
    buf[5] = 0
  }
  return buf
}
