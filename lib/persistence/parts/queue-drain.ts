// The drain of a resumed session's queue: aedes streams it on every CONNECT
// (one message per event-loop turn); with a sink (setQueueSink, wired to the
// protocol gateway) the QoS 1 head goes out in one go first.
import { Readable } from 'node:stream'
import { NothingQueued } from '../../aedes-internals.js'
import { clonePacket, packetFromBody } from '../codec.js'
import type { ClientRef, QueueSink, QueueSinkFactory, StoredPacket } from '../types.js'
import { KEY } from './keys.js'
import { isExpired, type ClientQueue, type QueueEntry, type QueueIndex } from './queue-index.js'

const STREAM_CHUNK = 64


export class QueueDrain {
  sink: QueueSinkFactory | undefined
  /** client + brokerKey of queued messages streamed again with their packet id (see wasInFlight) */
  readonly #resent = new Set<string>()

  constructor (private readonly index: QueueIndex) {}

  /**
   * Was this message streamed from the queue with the packet id it had been
   * sent with (a re-delivery, [MQTT-3.3.1-1] DUP 1)? Answers once.
   */
  wasInFlight (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined): boolean {
    if (this.#resent.size === 0 || brokerId === undefined || brokerCounter === undefined) return false
    return this.#resent.delete(clientId + '\u0000' + brokerId + '\u0000' + String(brokerCounter))
  }

  /** A QoS 1 message the sink sent, acknowledged (see QueueAck). */
  acknowledge (cid: string, messageId: number): boolean {
    const index = this.index
    const q = index.queues.get(cid)
    if (q === undefined || index.io.closed) return false
    const entry = q.entries.find((e) => e.messageId === messageId)
    if (entry === undefined || entry.qos !== 1 || entry.pubrel !== undefined) return false
    index.remove(cid, q, entry, false)
    // as the store's clear: the keys go with a later batch (session-queues.ts)
    index.deleteKeysLater(cid, entry)
    return true
  }

  stream (client: ClientRef): Readable {
    const cid = client.id
    const q = this.index.queues.get(cid)
    // asked even for an empty queue: a sink is offered for one stream only
    const sink = this.sink?.(client, (messageId) => this.acknowledge(cid, messageId))
    let snapshot = q === undefined || this.index.io.closed ? [] : q.entries.slice()
    if (sink !== undefined && q !== undefined && snapshot.length > 0) snapshot = snapshot.slice(this.#sendToSink(cid, q, snapshot, sink))
    // aedes streams the queue on every CONNECT; most are empty, or were all taken by the sink:
    // an ended stream, whose pipeline in aedes is skipped (skipEmptyQueuePipelines)
    if (snapshot.length === 0) return new NothingQueued()
    return Readable.from(this.#generate(cid, snapshot))
  }

  /**
   * Sends the head of a resumed session's queue through `sink`, in order,
   * with the steps aedes' emptyQueue takes per message: an expired message
   * without a packet id is dropped [MQTT-3.3.2-5]; the packet id is the one
   * it was sent with before [MQTT-4.4.0-1] (then DUP, [MQTT-3.3.1-1]) or the
   * client's next; it is recorded as `outgoingUpdate` does; a message the
   * sink does not send is cleared as `outgoingClearMessageId` does. Only QoS
   * 1 messages whose body is in memory, and only while the client's window
   * has room: a QoS 2 packet id must be on disk before its PUBLISH goes out,
   * a body on disk must be read first, and beyond the window aedes' stream
   * gives back-pressure. Stops at the first message it cannot take, so the
   * rest (returned as an index into `snapshot`) follows in order.
   */
  #sendToSink (cid: string, q: ClientQueue, snapshot: QueueEntry[], sink: QueueSink): number {
    const index = this.index
    const now = Date.now()
    let expired = 0
    let i = 0
    for (; i < snapshot.length; i++) {
      const entry = snapshot[i] as QueueEntry
      if (entry.removed) continue
      const body = entry.body
      if (entry.pubrel !== undefined || entry.qos !== 1 || body === undefined || entry.brokerKey === undefined) break
      if (entry.messageId === undefined && isExpired(entry.expiry, now)) {
        index.remove(cid, q, entry, true)?.catch(() => {})
        expired++
        continue
      }
      if (sink.room() <= 0) break
      const resent = entry.messageId !== undefined
      const packet = packetFromBody(body, entry.messageId, entry.qos)
      packet.messageId = entry.messageId ?? sink.nextPacketId()
      if (resent) this.#resent.add(cid + '\u0000' + entry.brokerKey)
      index.recordPacketId(cid, entry, packet.messageId)?.catch(() => {})
      let sent: boolean
      try {
        sent = sink.send(packet)
      } catch {
        // aedes' own path meets the same packet next, and reports the failure
        if (resent) this.#resent.delete(cid + '\u0000' + entry.brokerKey)
        break
      }
      if (!sent) {
        if (resent) this.#resent.delete(cid + '\u0000' + entry.brokerKey)
        index.remove(cid, q, entry, false)
        index.deleteKeys(cid, entry)?.catch(() => {})
      }
    }
    if (expired > 0) index.drops.report(cid, 'expired', expired)
    return i
  }

  async * #generate (cid: string, snapshot: QueueEntry[]): AsyncGenerator<StoredPacket> {
    const index = this.index
    for (let i = 0; i < snapshot.length; i += STREAM_CHUNK) {
      const chunk = snapshot.slice(i, i + STREAM_CHUNK)
      const now = Date.now()
      const live: QueueEntry[] = []
      let expired = 0
      for (const entry of chunk) {
        if (entry.removed) continue // acknowledged or dropped since the stream started
        // [MQTT-3.3.2-5] a message whose expiry passed before onward delivery
        // started (no packet id assigned yet) is deleted, not delivered.
        if (entry.pubrel === undefined && entry.messageId === undefined && isExpired(entry.expiry, now)) {
          const q = index.queues.get(cid)
          if (q !== undefined && !index.io.closed) index.remove(cid, q, entry, true)?.catch(() => {})
          expired++
          continue
        }
        live.push(entry)
      }
      if (expired > 0) index.drops.report(cid, 'expired', expired)
      const missing = live.filter((e) => e.pubrel === undefined && e.body === undefined)
      const loaded = new Map<QueueEntry, StoredPacket | undefined>()
      if (missing.length > 0 && index.io.durable) {
        const bodies = await index.io.read(missing.map((e) => KEY.queued(cid, e.seq)))
        missing.forEach((e, j) => loaded.set(e, bodies[j]))
      }
      for (const entry of live) {
        if (entry.removed) continue
        if (entry.pubrel !== undefined) {
          yield clonePacket(entry.pubrel)
          continue
        }
        const body = entry.body ?? loaded.get(entry)
        if (body === undefined) continue
        const packet = packetFromBody(body, entry.messageId, entry.qos)
        // it had a packet id, so it may have been sent: the broker marks the re-delivery DUP
        if (entry.messageId !== undefined && (packet.qos ?? 0) > 0 && entry.brokerKey !== undefined) this.#resent.add(cid + '\u0000' + entry.brokerKey)
        yield packet
      }
    }
  }
}
