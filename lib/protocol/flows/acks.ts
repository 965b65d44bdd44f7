/**
 * Acknowledgements, both ways (spec 3.4-3.7, 4.3, 4.6).
 *
 * From the client (outbound flows it completes):
 * - PUBACK / PUBCOMP end a QoS 1 / 2 flow and make room in its window; the
 *   wrong kind for the id in flight is a Protocol Error (`wrongAckKind`);
 * - PUBREC: a failed one completes the flow (spec 4.3.3); one for a packet
 *   id culex never sent gets PUBREL 0x92 (spec 3.6.2.1);
 * - PUBREL for a packet id with no QoS 2 state gets PUBCOMP 0x92 (spec 3.7.2.1).
 *
 * To the client (its PUBLISHes), in the order the PUBLISHes came
 * [MQTT-4.6.0-2] [MQTT-4.6.0-3] (outbound/ack-order.ts):
 * 1. a QoS 1 PUBACK only once aedes finished publishing the message, so it
 *    is in the store for every persistent session (culex's durability
 *    contract; aedes writes the PUBACK first);
 * 2. MQTT 5: 0x10 (No matching subscribers) when no subscription matches
 *    (spec 3.4.2.1);
 * 3. MQTT 5: a failure code (0x80) when aedes could not publish the message
 *    because a store write was refused (spec 3.4.2.1: the message was not
 *    accepted), and the connection goes on.
 */
import type { Packet } from 'mqtt-packet'
import type { AckProperties, SharedSubscriptions } from '../../shared/dispatcher.js'
import { decodeFrame, encode } from '../codec.js'
import { PacketType, ackPacketId, ackReasonCode, type Frame } from '../frame.js'
import { wrongAckKind } from '../inbound/ack.js'
import { AckOrder, type PendingAck } from '../outbound/ack-order.js'
import { OutboundFlow } from '../outbound/flow-control.js'
import type { PacketIdTable } from '../packet-id-table.js'
import { ReasonCode, isFailure } from '../reason-codes.js'
import { write } from './client-writer.js'
import { fitBuf, releaseHeld, type PublishOutHost } from './publish-out.js'
import { DROP, PASS, type Verdict } from './verdict.js'

/** An inbound QoS 1/2 flow in progress (spec 4.9) */
export interface InboundFlow { qos: number, topic: string }

/** The acknowledgement state of a connection, made on its first QoS 1/2 PUBLISH. */
export class AckFlow {
  readonly order = new AckOrder()
  /** QoS 1 messages aedes published before it wrote their PUBACK */
  publishedEarly: Set<number> | undefined
}

export type AckCommand = 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'

export interface AcksHost extends PublishOutHost {
  readonly ctx: PublishOutHost['ctx'] & {
    readonly shared: Pick<SharedSubscriptions, 'onAck'> | undefined
    /** does any subscription, online or offline, match `topic`? (for 0x10) */
    hasSubscribers: (topic: string) => boolean | Promise<boolean>
    /** does the store hold inbound QoS 2 state for this id (from an earlier connection)? */
    hasIncoming: (clientId: string, packetId: number) => Promise<boolean>
  }
  /** inbound QoS 1 and 2 packet ids not yet completed (spec 4.9) */
  readonly inflightIn: PacketIdTable<InboundFlow>
  ackFlow: AckFlow | undefined
  /** a PUBACK for a message of the resumed session's queue, cleared by the gateway (flows/fast-paths.ts `ackQueued`): aedes has nothing left to do */
  ackQueued (packetId: number): boolean
  /** [MQTT-3.1.2-29] the client allows a Reason String */
  readonly requestProblemInformation: boolean
}

export function ackFlowOf (host: AcksHost): AckFlow {
  return (host.ackFlow ??= new AckFlow())
}

// from the client

/** PUBACK or PUBCOMP: the client completed an outbound QoS 1 / 2 flow. */
export function onClientPuback (host: AcksHost, frame: Frame): Verdict {
  const id = ackPacketId(frame)
  const wrong = wrongAckKind(frame.type, host.window.flowOf(id))
  if (wrong !== undefined) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: wrong }
  if (host.window.complete(id)) releaseHeld(host)
  // after the window made room: a shared group gives this client its next message at once
  if (frame.type !== PacketType.PUBACK) return PASS
  host.ctx.shared?.onAck(host.client, id, host.version === 5 ? ackReasonCode(frame) : 0, ackProperties(host, frame))
  // a shared delivery culex sent itself: aedes has no flow to complete
  if (host.direct?.delete(id) === true) return DROP
  return host.ackQueued(id) ? DROP : PASS
}

/** PUBREC: a failed one completes the flow (spec 4.3.3); an unknown id gets PUBREL 0x92 (spec 3.6.2.1). */
export function onClientPubrec (host: AcksHost, frame: Frame): Verdict {
  const id = ackPacketId(frame)
  const flow = host.window.flowOf(id)
  const wrong = wrongAckKind(frame.type, flow)
  if (wrong !== undefined) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: wrong }
  if (flow === OutboundFlow.None) {
    if (host.version === 5) {
      sendAck(host, 'pubrel', id, ReasonCode.PacketIdentifierNotFound, 'unknown packet identifier')
      return DROP
    }
    return PASS
  }
  const code = host.version === 5 ? ackReasonCode(frame) : 0
  if (isFailure(code)) {
    host.window.complete(id)
    releaseHeld(host)
  }
  host.ctx.shared?.onAck(host.client, id, code, ackProperties(host, frame))
  return PASS
}

/**
 * The User Properties and Reason String of an MQTT 5 PUBACK / PUBREC
 * (spec 3.4.2.2, 3.5.2.2), decoded only when it has any: a shared group
 * reads how the member settles the delivery and why it refused it.
 */
function ackProperties (host: Pick<AcksHost, 'version'>, frame: Frame): AckProperties | undefined {
  // Reason Code and Property Length after the packet id: more means properties
  if (host.version !== 5 || frame.buf.length <= frame.headerLength + 4) return undefined
  const packet = decodeFrame(frame, 5)
  if (packet instanceof Error) return undefined
  const props = (packet as { properties?: AckProperties }).properties
  return props === undefined ? undefined : { userProperties: props.userProperties, reasonString: props.reasonString }
}

/**
 * PUBREL: for a packet id with no QoS 2 state, on this connection or in the
 * store, the answer is PUBCOMP 0x92 (spec 3.7.2.1) instead of aedes' 0x00.
 */
export function onClientPubrel (host: AcksHost, frame: Frame): Verdict {
  const id = ackPacketId(frame)
  if (host.version !== 5 || host.inflightIn.get(id)?.qos === 2) return PASS
  const clientId = host.client.id
  return {
    kind: 'defer',
    decision: host.ctx.hasIncoming(clientId, id).then((known) => {
      if (known) return PASS
      sendAck(host, 'pubcomp', id, ReasonCode.PacketIdentifierNotFound, 'unknown packet identifier')
      return DROP
    })
  }
}

// to the client

/** A QoS 1/2 PUBLISH went to aedes: its acknowledgement goes out at this place [MQTT-4.6.0-2] [MQTT-4.6.0-3]. */
export function expectAck (host: AcksHost, packetId: number): void {
  ackFlowOf(host).order.expect(packetId)
}

/** aedes wrote a PUBACK or PUBREC for a PUBLISH of the client: steps 1 and 2. */
export function onOutboundAck (host: AcksHost, frame: Frame, out: Buffer[]): void {
  const id = ackPacketId(frame)
  const code = host.version === 5 ? ackReasonCode(frame) : 0
  const flow = host.inflightIn.get(id)
  if (frame.type === PacketType.PUBACK) host.inflightIn.delete(id)
  else if (isFailure(code)) host.inflightIn.delete(id)
  const acks = ackFlowOf(host)
  const waitPublished = frame.type === PacketType.PUBACK && code === 0 && flow !== undefined &&
    (acks.publishedEarly === undefined || !acks.publishedEarly.delete(id))
  const entry = acks.order.fromBroker(id, frame)
  entry.waiting = waitPublished
  entry.topic = host.version === 5 && code === 0 && flow !== undefined ? flow.topic : undefined
  if (!waitPublished) ackReady(host, entry)
  flushAcks(host, out)
}

/** aedes finished publishing the client's message `packetId` (its `published` hook): step 1. */
export function onPublished (host: AcksHost, packetId: number): void {
  // A waiting PUBACK holds back the ones behind it, so it is still in the
  // order; aedes publishes a client's messages in order, so it is usually
  // the first. The oldest one with this id (a client may repeat a PUBLISH)
  // is released.
  const entry = host.ackFlow?.order.waitingFor(packetId)
  if (entry === undefined) {
    (ackFlowOf(host).publishedEarly ??= new Set()).add(packetId)
    return
  }
  entry.waiting = false
  ackReady(host, entry)
  flushAcks(host)
}

/**
 * Step 3: aedes could not publish the client's QoS 1 message `packetId` (a
 * store write was refused): its waiting PUBACK goes, in order, with
 * `reasonCode` and, if the client allows problem information, the reason
 * [MQTT-3.1.2-29]. False when no PUBACK of it waits (3.1.1 has no way to
 * say it; QoS 2 answers no PUBREC yet): the caller closes the connection.
 */
export function onPublishFailed (host: AcksHost, packetId: number, reasonCode: number, reason: string): boolean {
  if (host.version !== 5) return false
  const entry = host.ackFlow?.order.waitingFor(packetId)
  if (entry?.frame === undefined) return false
  entry.waiting = false
  entry.topic = undefined
  entry.buf = host.requestProblemInformation ? encode(ackPacket(host, 'puback', packetId, reasonCode, reason), 5) : withReasonCode(entry.frame, reasonCode)
  entry.ready = true
  host.log.repeated('warn', 'publish refused: store write failed', { packetId, reason }, 'PUBLISH not accepted: its store write was refused; answered with a failed PUBACK')
  flushAcks(host)
  return true
}

/** Step 2: the acknowledgement may go, with 0x10 when no subscription matches (MQTT 5 success, spec 3.4.2.1). */
export function ackReady (host: AcksHost, entry: PendingAck): void {
  const topic = entry.topic
  const frame = entry.frame
  if (topic !== undefined && frame !== undefined) {
    const has = host.ctx.hasSubscribers(topic)
    if (has === false) {
      entry.buf = withReasonCode(frame, ReasonCode.NoMatchingSubscribers)
    } else if (has !== true) {
      has.then((yes) => {
        if (!yes) entry.buf = withReasonCode(frame, ReasonCode.NoMatchingSubscribers)
        entry.ready = true
        flushAcks(host)
      }, () => { entry.ready = true; flushAcks(host) })
      return
    }
  }
  entry.ready = true
}

/** The acknowledgements ready in order go out: into `out`, or written. */
export function flushAcks (host: AcksHost, out?: Buffer[]): void {
  const target = out ?? []
  const acks = host.ackFlow
  if (acks !== undefined) {
    for (let buf = acks.order.takeReady(); buf !== undefined; buf = acks.order.takeReady()) target.push(fitBuf(host, buf))
  }
  if (!out) write(host, target)
}

/** aedes' acknowledgement with another reason code. */
export function withReasonCode (frame: Frame, code: number): Buffer {
  const buf = Buffer.from(frame.buf)
  if (buf.length > frame.headerLength + 2) {
    buf[frame.headerLength + 2] = code
    return buf
  }
  // spec 3.4.2.1: a Reason Code with no Property Length (Remaining Length 3); hand-encoded as it can go out for every QoS 1 PUBLISH
  const id = ackPacketId(frame)
  const ack = Buffer.allocUnsafe(5)
  ack[0] = frame.type << 4
  ack[1] = 3
  ack[2] = id >> 8
  ack[3] = id & 0xff
  ack[4] = code
  return ack
}

/** An acknowledgement with a reason code; the Reason String only if the client allows problem information [MQTT-3.1.2-29]. */
export function ackPacket (host: Pick<AcksHost, 'requestProblemInformation'>, cmd: AckCommand, messageId: number, reasonCode: number, reason: string): Packet {
  const packet = { cmd, messageId, reasonCode } as Packet & { properties?: { reasonString: string } }
  if (host.requestProblemInformation) packet.properties = { reasonString: reason }
  return packet
}

/** An acknowledgement the gateway answers itself, at once. */
export function sendAck (host: AcksHost, cmd: AckCommand, messageId: number, reasonCode: number, reason: string): void {
  write(host, [fitBuf(host, encode(ackPacket(host, cmd, messageId, reasonCode, reason), host.version))])
}

/** A PUBACK / PUBREC the gateway answers itself, behind those of the PUBLISHes before it [MQTT-4.6.0-2] [MQTT-4.6.0-3]. */
export function sendOrderedAck (host: AcksHost, messageId: number, packet: Packet): void {
  ackFlowOf(host).order.own(messageId, encode(packet, host.version))
  flushAcks(host)
}

/** aedes wrote the PUBCOMP that ends a QoS 2 message of the client (spec 4.3.3): its id is free again (spec 4.9). */
export function onOutboundPubcomp (host: AcksHost, frame: Frame, out: Buffer[]): void {
  host.inflightIn.delete(ackPacketId(frame))
  out.push(fitBuf(host, frame.buf))
}
