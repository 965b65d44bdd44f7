/**
 * QoS 2 messages a member's session holds (spec 4.8.2: a QoS 2 message once
 * sent to a member stays with it; the server MUST complete its delivery when
 * the member reconnects [MQTT-4.8.2-4]), where that session may resume on a
 * node other than the one that sent it (a cluster's shared queue):
 * - each such delivery carries a broker id naming the message in the queue
 *   (`SessionQoS2.brokerIdFor`), kept with the packet in the session;
 * - the node that sent it tells the queue the session holds it (`sent`), so
 *   no node hands it to another member, and forgets it without finishing it
 *   when the session moves away (`release`);
 * - the node the session resumes on lets the session's retransmission out
 *   (a delivery of its own dispatcher never has a packet id before it is
 *   forwarded) and, at the member's PUBREC, finishes the message in the
 *   queue (`settle`).
 */
import { PacketIdTable } from '../protocol/packet-id-table.js'
import { SHARED_BROKER_ID } from './member-link.js'

/** What a queue several nodes share offers for QoS 2 messages held by members' sessions. */
export interface SessionQoS2 {
  /** the broker id of a QoS 2 delivery of message `seq` of group `key`: names the message in the queue */
  brokerIdFor (key: string, seq: number): string
  /** message `seq` of group `key` went out at QoS 2 to `clientId`'s persistent session: that session holds it now */
  sent (key: string, seq: number, clientId: string): void
  /** the member's session moved to another node: this node forgets message `seq` without finishing it */
  release (key: string, seq: number): void
  /** the member acknowledged a QoS 2 message another node sent, named by its broker id: finished in the queue */
  settle (brokerId: string): void
}

/** `SHARED_BROKER_ID + group key + NUL + the message's name in the queue` (a topic filter never holds U+0000 [MQTT-1.5.4-2]) */
export function sessionBrokerId (key: string, name: string): string {
  return SHARED_BROKER_ID + key + '\u0000' + name
}

/** The group key and the message's name in a broker id of `sessionBrokerId`, or undefined. */
export function parseSessionBrokerId (brokerId: string | undefined): { key: string, name: string } | undefined {
  if (brokerId === undefined || !brokerId.startsWith(SHARED_BROKER_ID)) return undefined
  const at = brokerId.indexOf('\u0000', SHARED_BROKER_ID.length)
  if (at < 0 || at === brokerId.length - 1) return undefined
  return { key: brokerId.slice(SHARED_BROKER_ID.length, at), name: brokerId.slice(at + 1) }
}

/** The QoS 2 retransmissions of other nodes' deliveries that went out here: by connection and packet id, until the member's PUBREC. */
export class ForeignDeliveries {
  private readonly byClient = new Map<object, PacketIdTable<string>>()

  constructor (private readonly queue: SessionQoS2) {}

  /**
   * A shared delivery the dispatcher does not know is about to be written:
   * true when it is a QoS 2 message another node sent to this session (a
   * retransmission from the session, with its packet id), tracked until
   * its PUBREC.
   */
  accept (client: object, packet: { qos: number, messageId?: number, brokerId?: string }): boolean {
    if (packet.qos !== 2 || packet.messageId === undefined || parseSessionBrokerId(packet.brokerId) === undefined) return false
    let ids = this.byClient.get(client)
    if (ids === undefined) this.byClient.set(client, ids = new PacketIdTable())
    ids.set(packet.messageId, packet.brokerId as string)
    return true
  }

  /** The member's PUBREC for `packetId`: the group key of the message it finished, or undefined when it is none of these. */
  acknowledged (client: object, packetId: number): string | undefined {
    const ids = this.byClient.get(client)
    const brokerId = ids?.get(packetId)
    if (ids === undefined || brokerId === undefined) return undefined
    ids.delete(packetId)
    this.queue.settle(brokerId)
    return parseSessionBrokerId(brokerId)?.key
  }

  /** The connection closed: its session re-sends what it holds on its next connection. */
  closed (client: object): void {
    this.byClient.delete(client)
  }
}
