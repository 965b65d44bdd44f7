// The session queues: QoS 1/2 messages (and QoS 2 PUBREL state) kept for
// each session until acknowledged, with the packet id each was sent with.
// The index is queue-index.ts; the drain to a resumed session queue-drain.ts.
import type { Readable } from 'node:stream'
import { accountedBytes, clonePacket, copyPacket, encodePacket, encodeRecord, packetFromBody, queuedBody } from '../codec.js'
import { CulexError } from '../../errors.js'
import type { ClientRef, EnqueueTarget, QueueSinkFactory, StoredPacket } from '../types.js'
import { KEY } from './keys.js'
import { QueueDrain } from './queue-drain.js'
import { brokerKeyOf, entryFor, hasId, isExpired, pubrelEntry, type ClientQueue, type QueueEntry, type QueueIndex } from './queue-index.js'

/** enqueue's targets: the granted QoS, and whether the client's copy keeps RETAIN 1 */
const QOS_BITS = 3
const KEEP_RETAIN = 4

export interface SessionQueues {
  readonly queued: number
  readonly queuedBytes: number
  readonly inflight: number
  readonly pubrels: number
  /** messages queued for one session, in flight included (PUBREL state is not a message) */
  queuedOf (clientId: string): number
  /** queues a message for each target session, once per session; resolves once durable */
  enqueue (targets: EnqueueTarget[], packet: StoredPacket): Promise<void>
  /** records the packet id a message is sent with, or a PUBREL taking over a packet id */
  update (clientId: string, packet: StoredPacket): Promise<void>
  /** removes an acknowledged (or not forwarded) message and returns it */
  clear (clientId: string, packet: StoredPacket): Promise<StoredPacket | undefined>
  /** the session's queue in order, the head through the sink when there is one */
  stream (client: ClientRef): Readable
  setSink (factory: QueueSinkFactory | undefined): void
  /** was this message streamed again with the packet id it had been sent with? Answers once. */
  wasInFlight (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined): boolean
  /** removes the session's whole queue */
  wipe (clientId: string): Promise<void> | undefined
  /** the highest broker counter among queued messages named by `brokerId` */
  maxBrokerCounter (brokerId: string): number
  /** writes packet ids held in memory only (at close) */
  flush (): void
  restoreQueued (clientId: string, seq: number, body: StoredPacket, state: { m?: number | null } | undefined): void
  restorePubrel (clientId: string, seq: number, pubrel: StoredPacket): void
  noteSeq (seq: number): void
}

export class MemorySessionQueues implements SessionQueues {
  readonly #drain: QueueDrain

  constructor (private readonly index: QueueIndex) {
    this.#drain = new QueueDrain(index)
  }

  get queued (): number { return this.index.queued }
  get queuedBytes (): number { return this.index.queuedBytes }
  get inflight (): number { return this.index.inflight }
  get pubrels (): number { return this.index.pubrels }
  queuedOf (clientId: string): number { return this.index.queues.get(clientId)?.count ?? 0 }

  async enqueue (subs: EnqueueTarget[], packet: StoredPacket): Promise<void> {
    if (subs.length === 0) return
    const index = this.index
    const now = Date.now()
    const body = queuedBody(packet)
    const packetQos = body.qos ?? 0
    // aedes passes one entry per matching subscription, so a client with
    // overlapping filters appears several times: queue the message once per
    // client, at the highest QoS granted among its matching subscriptions,
    // capped by the QoS of the PUBLISH. [MQTT-3.3.4-2] [MQTT-3.8.4-8]
    // [MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13] and RETAIN 1 only if one
    // of them has Retain As Published, as live delivery does; a target that
    // is no subscription (aedes' client.publish) is queued as it comes.
    // Per client: the QoS in the low bits, KEEP_RETAIN above.
    const retained = body.retain === true
    const targets = new Map<string, number>()
    for (const sub of subs) {
      const granted = typeof sub.qos === 'number' ? sub.qos : 2
      const keep = retained && (sub.topic === undefined || sub.rap === true) ? KEEP_RETAIN : 0
      const prev = targets.get(sub.clientId)
      if (prev === undefined) targets.set(sub.clientId, granted | keep)
      else targets.set(sub.clientId, Math.max(prev & QOS_BITS, granted) | (prev & KEEP_RETAIN) | keep)
    }
    if (isExpired(body.messageExpiry, now)) {
      // [MQTT-3.3.2-5] already past its Message Expiry Interval: never queued
      for (const cid of targets.keys()) index.drops.report(cid, 'expired', 1)
      return
    }
    const bytes = accountedBytes(body)
    const brokerKey = brokerKeyOf(body)
    const variants = new Map<number, { body: StoredPacket, value: Buffer | undefined }>()
    let write: Promise<void> | undefined
    const created: QueueEntry[] = []
    for (const [cid, target] of targets) {
      const qos = Math.min(packetQos, target & QOS_BITS)
      const retain = (target & KEEP_RETAIN) !== 0
      const q = index.queueOf(cid)
      // the same message enqueued twice for one session is one message
      if (brokerKey !== undefined && q.byBroker.has(brokerKey)) continue
      if (!index.makeRoom(cid, q, bytes, now)) {
        if (q.entries.length === 0) index.queues.delete(cid)
        continue
      }
      // dropping made the queue empty and unlinked it
      if (index.queues.get(cid) !== q) index.queues.set(cid, q)
      let variant = variants.get(qos | (retain ? KEEP_RETAIN : 0))
      if (variant === undefined) {
        variant = { body: qos === packetQos && retain === retained ? body : { ...body, qos, retain }, value: undefined }
        variants.set(qos | (retain ? KEEP_RETAIN : 0), variant)
      }
      const entry: QueueEntry = {
        seq: ++index.seq,
        brokerId: body.brokerId,
        brokerKey,
        qos,
        bytes,
        expiry: body.messageExpiry,
        messageId: undefined,
        pubrel: undefined,
        body: variant.body,
        cached: 0,
        hasState: false,
        idGeneration: 0,
        removed: false
      }
      index.append(q, entry)
      if (index.io.durable) {
        variant.value ??= encodePacket(variant.body)
        write = index.io.put(KEY.queued(cid, entry.seq), variant.value)
        index.cache.admit(entry, bytes)
        if (entry.cached === 0) created.push(entry)
      }
    }
    if (write !== undefined) {
      await write
      // bodies that did not fit the cache budget are on disk now; let them go
      for (const entry of created) index.cache.evictIfUnaccounted(entry)
    }
  }

  async update (cid: string, packet: StoredPacket): Promise<void> {
    const q = this.index.queues.get(cid)
    const brokerKey = brokerKeyOf(packet)
    // 1. a message aedes is (re)sending: record the packet id it assigned, so
    //    a redelivery after a restart reuses it. [MQTT-4.4.0-1]
    if (q !== undefined && brokerKey !== undefined) {
      const entry = q.byBroker.get(brokerKey)
      if (entry !== undefined) {
        const write = this.index.recordPacketId(cid, entry, hasId(packet.messageId) ? packet.messageId : undefined)
        // QoS 2: on disk before aedes writes the PUBLISH, since a resend
        // after a crash must reuse the id or the receiver would take it for
        // a new message (exactly once, spec 4.3.3). QoS 1 is at least once:
        // a resend under a new id (and, if the crash came before the id was
        // written, without DUP) is only the duplicate it may be anyway
        // [MQTT-4.3.2-1], so aedes goes on without waiting for the disk.
        if (entry.qos === 2) await write
        return
      }
    }
    // 2. a packet that takes over a packet id: PUBREL after PUBREC (QoS 2), or
    //    another broker's message reusing the id
    if (hasId(packet.messageId)) {
      const entry = q?.entries.find((e) => e.messageId === packet.messageId && (e.pubrel !== undefined || e.brokerId !== packet.brokerId))
      if (q !== undefined && entry !== undefined) {
        await this.#replace(cid, q, entry, packet)
        return
      }
      if (packet.cmd === 'pubrel') {
        // PUBREC for a message this store no longer holds (dropped by a queue
        // limit while in flight): still track the PUBREL so the QoS 2 flow
        // completes after a reconnect.
        const entry = pubrelEntry(++this.index.seq, copyPacket(packet), this.index.io.durable)
        this.index.append(this.index.queueOf(cid), entry)
        await this.index.io.put(KEY.inflight(cid, entry.seq), encodeRecord({ p: entry.pubrel }))
        return
      }
    }
    // 3. a message the store refused or dropped under its queue limits is
    //    still delivered to a connected client, best effort; nothing to track.
    if (packet.cmd === 'publish' || packet.cmd === undefined) return
    throw new CulexError('CULEX_ERR_NO_SUCH_PACKET')
  }

  async #replace (cid: string, q: ClientQueue, entry: QueueEntry, packet: StoredPacket): Promise<void> {
    const index = this.index
    if (packet.cmd === 'pubrel') {
      // the message body is not needed any more: only the PUBREL is resent
      index.toPubrel(q, entry, copyPacket(packet))
      if (index.io.durable) {
        entry.hasState = true
        index.io.del(KEY.queued(cid, entry.seq))
        await index.io.put(KEY.inflight(cid, entry.seq), encodeRecord({ p: entry.pubrel }))
      }
      return
    }
    // another publish takes the place (and packet id) of this entry
    index.remove(cid, q, entry, false)
    const body = queuedBody(packet)
    const replacement = entryFor(entry.seq, body, hasId(packet.messageId) ? packet.messageId : undefined, entry.hasState)
    let queue = index.queues.get(cid)
    if (queue === undefined) {
      queue = q
      index.queues.set(cid, queue)
    }
    // keep the position of the replaced entry
    const at = queue.entries.findIndex((e) => e.seq > replacement.seq)
    index.append(queue, replacement)
    if (at >= 0) {
      queue.entries.pop()
      queue.entries.splice(at, 0, replacement)
    }
    if (index.io.durable) {
      index.cache.admit(replacement, replacement.bytes)
      replacement.hasState = true
      index.io.put(KEY.queued(cid, replacement.seq), encodePacket(body))
      await index.io.put(KEY.inflight(cid, replacement.seq), encodeRecord({ m: replacement.messageId ?? null }))
      index.cache.evictIfUnaccounted(replacement)
    }
  }

  async clear (cid: string, packet: StoredPacket): Promise<StoredPacket | undefined> {
    if (packet === null || typeof packet !== 'object') return undefined
    const index = this.index
    const q = index.queues.get(cid)
    if (q === undefined) return undefined
    let entry: QueueEntry | undefined
    if (hasId(packet.messageId)) {
      entry = q.entries.find((e) => e.messageId === packet.messageId)
    } else {
      // aedes clears a message it decided not to forward (No Local, or
      // authorizeForward said no) with the original packet, which has no
      // packet id yet: find that very message, not any unsent one.
      const brokerKey = brokerKeyOf(packet)
      if (brokerKey !== undefined) entry = q.byBroker.get(brokerKey)
    }
    if (entry === undefined) return undefined
    const messageId = entry.messageId
    const pubrel = entry.pubrel
    const cachedBody = entry.body
    index.remove(cid, q, entry, false)
    let out: StoredPacket | undefined
    if (pubrel !== undefined) {
      out = clonePacket(pubrel)
    } else {
      let body = cachedBody
      // read before the delete is issued
      if (body === undefined && index.io.durable) body = (await index.io.read([KEY.queued(cid, entry.seq)]))[0]
      if (body !== undefined) out = packetFromBody(body, messageId, entry.qos)
    }
    // The message is gone from memory now; its keys go with a later batch
    // (the next one a write someone waits for starts, within 100 ms on the
    // level store). Nothing waits for that: were they still on disk after a
    // crash, the session would resend it on reconnect [MQTT-4.4.0-1], a
    // duplicate QoS 1 allows [MQTT-4.3.2-1], or a PUBREL the client answers
    // with PUBCOMP (0x92 Packet Identifier not found, spec 3.7.2.1).
    index.deleteKeysLater(cid, entry)
    return out
  }

  stream (client: ClientRef): Readable {
    return this.#drain.stream(client)
  }

  setSink (factory: QueueSinkFactory | undefined): void {
    this.#drain.sink = factory
  }

  wasInFlight (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined): boolean {
    return this.#drain.wasInFlight(clientId, brokerId, brokerCounter)
  }

  wipe (cid: string): Promise<void> | undefined {
    const q = this.index.queues.get(cid)
    if (q === undefined) return undefined
    let write: Promise<void> | undefined
    for (const entry of q.entries.slice()) write = this.index.remove(cid, q, entry, true) ?? write
    return write
  }

  maxBrokerCounter (brokerId: string): number {
    return this.index.maxBrokerCounter(brokerId)
  }

  flush (): void {
    if (this.index.io.durable) this.index.writeLazyIds()
  }

  restoreQueued (cid: string, seq: number, body: StoredPacket, state: { m?: number | null } | undefined): void {
    const entry = entryFor(seq, body, hasId(state?.m) ? state.m : undefined, state !== undefined)
    this.index.insertRestored(cid, entry)
    this.index.cache.admit(entry, entry.bytes)
    this.index.cache.evictIfUnaccounted(entry)
  }

  restorePubrel (cid: string, seq: number, pubrel: StoredPacket): void {
    this.index.insertRestored(cid, pubrelEntry(seq, pubrel, true))
  }

  noteSeq (seq: number): void {
    if (this.index.seq < seq) this.index.seq = seq
  }
}
