/**
 * Which message a delivery stands for: by delivery counter, for aedes' calls
 * (onForward, refuse) about a delivery; by connection and packet id, for the
 * member's acknowledgement.
 */
import { PacketIdTable } from '../protocol/packet-id-table.js'
import type { Entry } from './group.js'

export class Deliveries {
  /** the message being handed to aedes right now */
  delivering: Entry | undefined
  /**
   * delivery counter -> the message it carries, for aedes' calls to
   * onForward/refuse that come after the delivery call returned (a session
   * queue first, a retransmission after reconnecting). Most come during the
   * call, through `delivering`, and never touch this Map.
   */
  private readonly waiting = new Map<number, Entry>()
  /** per aedes Client (one per connection): packet id -> message, for acknowledgements */
  private readonly byClient = new Map<object, PacketIdTable<Entry>>()
  private counter = 0

  /** The next delivery counter (wraps at the largest safe integer). */
  next (): number {
    this.counter = this.counter >= Number.MAX_SAFE_INTEGER ? 1 : this.counter + 1
    return this.counter
  }

  /** The message a delivery counter stands for, while it is assigned. */
  byCounter (counter: number): Entry | undefined {
    const current = this.delivering
    if (current !== undefined && current.delivery === counter) return current
    return this.waiting.get(counter)
  }

  /** aedes will ask about this delivery later (from a session queue, or a retransmission). */
  await (counter: number, entry: Entry): void {
    this.waiting.set(counter, entry)
  }

  /** The delivery is over (finished or taken back). */
  end (counter: number): void {
    this.waiting.delete(counter)
  }

  /** The member's acknowledgement of `packetId` on this connection finishes `entry`. */
  track (client: object, packetId: number, entry: Entry): void {
    entry.messageId = packetId
    let ids = this.byClient.get(client)
    if (!ids) this.byClient.set(client, ids = new PacketIdTable())
    ids.set(packetId, entry)
  }

  /** The message an acknowledgement is for, no longer tracked; undefined when none is. */
  acknowledged (client: object, packetId: number): Entry | undefined {
    const ids = this.byClient.get(client)
    const entry = ids?.get(packetId)
    if (!ids || !entry) return undefined
    ids.delete(packetId)
    return entry
  }

  /**
   * The connection closed: which of its tracked messages it was sent (those
   * of `sent`, the packet ids it had not acknowledged), as group key and seq
   * joined by NUL. It tracks nothing more.
   */
  closed (client: object, sent: ReadonlySet<number>): Set<string> {
    const sentSeqs = new Set<string>()
    const inflight = this.byClient.get(client)
    if (inflight) {
      inflight.forEach((entry, id) => { if (sent.has(id)) sentSeqs.add(entry.group.key + '\u0000' + entry.seq) })
      this.byClient.delete(client)
    }
    return sentSeqs
  }
}
