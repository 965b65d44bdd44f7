/**
 * What aedes writes for the client, frame by frame through the flow of its
 * packet type, to the client's socket (flows/client-writer.ts):
 *
 * - PUBLISH: the window, expiry, topic aliases, drops (flows/publish-out.ts);
 * - CONNACK: fitted to what the client asked and culex decided (flows/connect.ts);
 * - PUBACK, PUBREC: in the order of the client's PUBLISHes [MQTT-4.6.0-2] (flows/acks.ts);
 * - PUBREL, PUBCOMP: the QoS 2 flows' state (flows/publish-out.ts, flows/acks.ts);
 * - SUBACK, UNSUBACK: merged with culex's own answers (flows/subscribe.ts);
 * - DISCONNECT: recorded for the lifecycle events (flows/disconnect.ts);
 * - every packet: [MQTT-3.1.2-24] no larger than the client's Maximum Packet Size.
 */
import { PacketType, ackPacketId, type Frame, type FrameReader, type ReadResult } from '../frame.js'
import { onOutboundAck, onOutboundPubcomp } from './acks.js'
import { connackWritten, fitConnackToClient, onConnack } from './connect.js'
import { disconnectWritten, type ServerDisconnectHost } from './disconnect.js'
import { afterBrokerWrite, write } from './client-writer.js'
import type { FlowsHost } from './inbound.js'
import { fitBuf, onOutboundPublish, onOutboundPubrel } from './publish-out.js'
import { onSuback, onUnsuback } from './subscribe.js'

export type OutboundHost = FlowsHost & ServerDisconnectHost & {
  /** splits what aedes writes into frames */
  readonly outbound: FrameReader
  readonly isClosed: boolean
}

type Check = (host: OutboundHost, frame: Frame, out: Buffer[]) => void

const fitted: Check = (host, frame, out) => { out.push(fitBuf(host, frame.buf)) }

/** One flow per packet type aedes writes; the others (PINGRESP) only fitted. */
const CHECKS: ReadonlyArray<Check | undefined> = (() => {
  const checks: Array<Check | undefined> = []
  checks[PacketType.PUBLISH] = onOutboundPublish
  checks[PacketType.CONNACK] = (host, frame, out) => {
    out.push(fitConnackToClient(host, onConnack(host, frame)))
    connackWritten(host, host.accepted)
  }
  checks[PacketType.PUBACK] = onOutboundAck
  checks[PacketType.PUBREC] = (host, frame, out) => {
    host.retainedOrder?.pubrecSent(ackPacketId(frame))
    onOutboundAck(host, frame, out)
  }
  checks[PacketType.PUBREL] = onOutboundPubrel
  checks[PacketType.PUBCOMP] = onOutboundPubcomp
  checks[PacketType.SUBACK] = onSuback
  checks[PacketType.UNSUBACK] = onUnsuback
  checks[PacketType.DISCONNECT] = (host, frame, out) => {
    disconnectWritten(host, frame)
    fitted(host, frame, out)
  }
  return checks
})()

/**
 * Bytes aedes wrote; the result tells aedes whether it may write more at
 * once (flows/client-writer.ts `afterBrokerWrite`: back-pressure).
 */
export function fromBroker (host: OutboundHost, chunks: Buffer[], writtenAt: number): boolean {
  if (host.isClosed || host.socket.destroyed) return true
  const out: Buffer[] = []
  const results: ReadResult[] = []
  // aedes writes a packet in several small pieces: join them once, not per piece
  host.outbound.push(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks), results)
  host.writtenAt = writtenAt
  for (const result of results) {
    if (result.kind === 'frame') (CHECKS[result.frame.type] ?? fitted)(host, result.frame, out)
  }
  write(host, out)
  return afterBrokerWrite(host)
}
