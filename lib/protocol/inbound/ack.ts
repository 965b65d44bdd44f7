/**
 * Acknowledgements from the client (PUBACK, PUBREC, PUBREL, PUBCOMP, spec
 * 3.4-3.7), checked before they change any state: the fixed header, the
 * packet identifier, the properties, and whether the acknowledgement is of
 * the kind the flow it answers expects.
 */
import { ReasonCode } from '../reason-codes.js'
import { PacketType, type Frame } from '../frame.js'
import { PACKET_CONTEXT, checkProperties } from '../property-rules.js'
import { OutboundFlow } from '../outbound/flow-control.js'

export interface AckFailure { reasonCode: number, reason: string }

/**
 * [MQTT-2.1.3-1] the reserved flags of the fixed header: 0010 for PUBREL,
 * SUBSCRIBE and UNSUBSCRIBE [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1],
 * 0000 for the other packets a client sends but PUBLISH. MQTT 3.1 (level 3)
 * sent PUBREL, SUBSCRIBE and UNSUBSCRIBE as QoS 1 packets that may carry DUP
 * when sent again (3.1 spec: "DUP, QoS level 1").
 */
export function validFixedHeaderFlags (type: number, flags: number, version: number | undefined): boolean {
  switch (type) {
    case PacketType.PUBLISH: return true
    case PacketType.PUBREL:
    case PacketType.SUBSCRIBE:
    case PacketType.UNSUBSCRIBE: return flags === 2 || (version === 3 && flags === 0x0a)
    default: return flags === 0
  }
}

/**
 * Steps, before the acknowledgement changes any state:
 * 1. the fixed header flags (`validFixedHeaderFlags`);
 * 2. a packet identifier must follow (spec 3.4.2); a 3.1.1 ack is exactly
 *    two bytes;
 * 3. MQTT 5 properties, when present (property-rules.ts).
 */
export function checkAckFrame (frame: Frame, version: number | undefined): AckFailure | undefined {
  if (!validFixedHeaderFlags(frame.type, frame.flags, version)) {
    return { reasonCode: ReasonCode.MalformedPacket, reason: `invalid fixed header flags 0x${frame.flags.toString(16)} on packet type ${frame.type}` }
  }
  const length = frame.buf.length - frame.headerLength
  if (length < 2 || (version !== 5 && length !== 2)) {
    return { reasonCode: ReasonCode.MalformedPacket, reason: 'malformed acknowledgement' }
  }
  const context = PACKET_CONTEXT[frame.type]
  if (length > 3 && context !== undefined) {
    const props = checkProperties(frame.buf, frame.headerLength + 3, frame.buf.length, context)
    if (typeof props !== 'number') return props
    if (props !== frame.buf.length) return { reasonCode: ReasonCode.MalformedPacket, reason: 'bytes after the properties of an acknowledgement' }
  }
  return undefined
}

/**
 * Spec 4.3.2, 4.3.3: a QoS 1 delivery is answered by PUBACK, a QoS 2 one by
 * PUBREC and, once the server sent PUBREL, PUBCOMP. Any other kind for a
 * packet id in flight is a Protocol Error. An id not in flight is not: the
 * ack may be late or repeated, and is answered as the spec says for unknown
 * ids (nothing, or PUBREL/PUBCOMP 0x92).
 */
export function wrongAckKind (type: number, flow: OutboundFlow): string | undefined {
  switch (flow) {
    case OutboundFlow.None: return undefined
    case OutboundFlow.QoS1:
      return type === PacketType.PUBACK ? undefined : `${ackName(type)} answering a QoS 1 delivery`
    case OutboundFlow.QoS2Published:
      return type === PacketType.PUBREC ? undefined : `${ackName(type)} answering a QoS 2 delivery before PUBREC`
    case OutboundFlow.QoS2Released:
      // a repeated PUBREC is answered with PUBREL again (spec 4.3.3)
      return type === PacketType.PUBCOMP || type === PacketType.PUBREC ? undefined : `${ackName(type)} answering a QoS 2 delivery`
  }
}

function ackName (type: number): string {
  return type === PacketType.PUBACK ? 'PUBACK' : type === PacketType.PUBREC ? 'PUBREC' : 'PUBCOMP'
}
