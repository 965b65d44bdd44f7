// The store logic shared by the memory and level stores. Every index the
// broker's hot path reads lives in memory (the per-session queue index, and
// the parts under parts/: retained index, subscription index, wills,
// sessions, incoming QoS 2 state); the level store adds a durable copy of
// every mutation (written through WriteThrough and GroupCommit, the promise
// resolving once the write is in LevelDB) and keeps message bodies in memory
// only within a cache budget (BodyCache), reading the rest from disk by key.
// The memory store is this class with no backend. Key layout: parts/keys.ts.
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import {
  accountedBytes, clonePacket, copyPacket, encodePacket, encodeRecord, packetFromBody, queuedBody
} from './codec.js'
import { persistenceError } from './errors.js'
import { BodyCache } from './parts/body-cache.js'
import { Drops } from './parts/drops.js'
import type { GroupLog, StoredMember, StoredMessage } from './parts/group-log.js'
import { MemoryIncoming, type IncomingQoS2 } from './parts/incoming.js'
import { MemoryRetained, type RetainedIndex } from './parts/retained.js'
import { KEY } from './parts/keys.js'
import { MemorySessions, type SessionRecords } from './parts/sessions.js'
import { MemorySubscriptions, type SubRecord, type SubscriptionIndex } from './parts/subscriptions.js'
import { MemoryWills, type WillStore } from './parts/wills.js'
import { WriteThrough, type StoreBackend } from './parts/write-through.js'
import type {
  BrokerHeartbeats, BrokerRef, ClientRef, ClientSubscription, CulexPersistence, DropEvent, DropReason,
  EnqueueTarget, OverflowPolicy, PersistenceLimits, PersistenceStats, QueueSink, QueueSinkFactory, SessionMeta,
  StoredPacket, SubscriptionInput, TopicSubscription
} from './types.js'

export const DEFAULT_MAX_QUEUED_MESSAGES = 1000
export const DEFAULT_MAX_QUEUED_BYTES = 10 * 1024 * 1024
const STREAM_CHUNK = 64
/** how long a QoS 1 packet id may stay in memory only (#lazyIds) */
const ID_WRITE_DELAY_MS = 100

export { KEY } from './parts/keys.js'
export type { StoreBackend } from './parts/write-through.js'
export type { SubRecord } from './parts/subscriptions.js'

export interface QueueEntry {
  seq: number
  brokerId: string | undefined
  /** brokerId + NUL + brokerCounter: how aedes names a message when it assigns a packet id */
  brokerKey: string | undefined
  qos: number
  bytes: number
  expiry: number | undefined
  messageId: number | undefined
  /** set once PUBREC arrived: the QoS 2 flow is in its PUBREL phase, the body is gone */
  pubrel: StoredPacket | undefined
  /** decoded body, or undefined when it lives only on disk */
  body: StoredPacket | undefined
  /** bytes this body holds in the cache budget (0 = not accounted) */
  cached: number
  /** a qi: record exists on disk */
  hasState: boolean
  removed: boolean
}

interface ClientQueue {
  entries: QueueEntry[]
  /** publish entries (PUBREL state is not a message and does not count) */
  count: number
  bytes: number
  byBroker: Map<string, QueueEntry>
}

function brokerKeyOf (packet: StoredPacket): string | undefined {
  if (packet.brokerId === undefined || packet.brokerId === null || packet.brokerCounter === undefined) return undefined
  return packet.brokerId + '\u0000' + String(packet.brokerCounter)
}

/** what a write that needs no waiting returns */
const DONE: Promise<void> = Promise.resolve()

function isExpired (expiry: number | undefined, now: number): boolean {
  return expiry !== undefined && expiry <= now
}

function hasId (v: unknown): v is number {
  return typeof v === 'number'
}

export abstract class BaseStore implements CulexPersistence {
  abstract readonly kind: 'memory' | 'level'

  protected logger: Logger | undefined
  protected corrupt = 0

  #broker: BrokerRef | undefined
  readonly #maxQueuedMessages: number
  readonly #maxQueuedBytes: number
  readonly #overflow: OverflowPolicy
  readonly #io = new WriteThrough()
  readonly #cache: BodyCache
  readonly #drops: Drops
  protected readonly retained: RetainedIndex
  protected readonly subscriptions: SubscriptionIndex
  protected readonly incoming: IncomingQoS2
  protected readonly wills: WillStore
  protected readonly sessions: SessionRecords

  // Map everywhere a clientId is a key: ids such as `__proto__` or
  // `constructor` are ordinary ids here.
  readonly #queues = new Map<string, ClientQueue>()
  #seq = 0

  #queued = 0
  #queuedBytes = 0
  #inflight = 0
  #pubrels = 0

  constructor (opts: { limits?: PersistenceLimits, logger?: Logger, cacheBytes?: number }) {
    const limits = opts.limits ?? {}
    this.#maxQueuedMessages = positiveOr(limits.maxQueuedMessages, DEFAULT_MAX_QUEUED_MESSAGES)
    this.#maxQueuedBytes = positiveOr(limits.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES)
    this.#overflow = limits.overflow ?? 'drop-oldest'
    if (this.#overflow !== 'drop-oldest' && this.#overflow !== 'refuse') {
      throw new TypeError(`limits.overflow must be 'drop-oldest' or 'refuse', got ${String(this.#overflow)}`)
    }
    this.logger = opts.logger
    this.#cache = new BodyCache(opts.cacheBytes ?? Infinity, this.#io)
    this.#drops = new Drops(opts.logger, this.#overflow)
    this.retained = new MemoryRetained(this.#io, this.#cache, this.#drops, {
      maxRetained: positiveOr(limits.maxRetained, Infinity),
      maxRetainedPayload: positiveOr(limits.maxRetainedPayload, Infinity)
    })
    this.subscriptions = new MemorySubscriptions(this.#io)
    this.incoming = new MemoryIncoming(this.#io)
    this.wills = new MemoryWills(this.#io)
    this.sessions = new MemorySessions(this.#io)
  }

  /** set by the level store once LevelDB is open */
  protected get backend (): StoreBackend | null { return this.#io.backend }
  protected set backend (backend: StoreBackend | null) { this.#io.backend = backend }
  protected get closed (): boolean { return this.#io.closed }
  protected set closed (closed: boolean) { this.#io.closed = closed }

  get broker (): BrokerRef | undefined {
    return this.#broker
  }

  abstract open (): Promise<void>
  protected abstract closeBackend (): Promise<void>

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    await this.open()
    // aedes names a message brokerId + brokerCounter, and its counter restarts
    // at 0 with the process. With a fixed broker id, new messages would reuse
    // the names of messages still queued from the previous run (and be taken
    // for them); continue the counter after the highest one stored instead.
    let max = 0
    for (const q of this.#queues.values()) {
      for (const e of q.entries) {
        if (e.brokerId !== broker.id || e.brokerKey === undefined) continue
        const n = Number(e.brokerKey.slice(e.brokerKey.lastIndexOf('\u0000') + 1))
        if (n > max) max = n
      }
    }
    if (max > 0 && typeof broker.counter === 'number' && broker.counter < max) broker.counter = max
  }

  // -------------------------------------------------------------------------
  // writes

  #put (key: string, value: Uint8Array): Promise<void> | undefined {
    return this.#io.put(key, value)
  }

  #del (key: string): Promise<void> | undefined {
    return this.#io.del(key)
  }

  #checkOpen (): void {
    this.#io.checkOpen()
  }

  // retained messages (parts/retained.ts)

  storeRetained (packet: StoredPacket): Promise<void> {
    if (this.closed) return Promise.reject(persistenceError('CULEX_ERR_PERSISTENCE_CLOSED'))
    return this.retained.store(packet)
  }

  createRetainedStream (pattern: string): Readable {
    return this.retained.stream([pattern])
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    return this.retained.stream(patterns)
  }

  // subscriptions (parts/subscriptions.ts)

  async addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    this.#checkOpen()
    await this.subscriptions.add(client.id, subs)
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    this.#checkOpen()
    await this.subscriptions.remove(client.id, topics)
  }

  async subscriptionsByClient (client: ClientRef): Promise<ClientSubscription[]> {
    return this.subscriptions.byClient(client.id)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.subscriptions.matchable, clientsCount: this.subscriptions.clients }
  }

  subscriptionsByTopic (topic: string): Promise<TopicSubscription[]> {
    // aedes asks for every QoS 1/2 PUBLISH; with only clean sessions (the
    // common case) the trie is empty and there is nothing to match
    if (this.subscriptions.matchable === 0) return Promise.resolve([])
    return Promise.resolve(this.subscriptions.byTopic(topic))
  }

  /** Does any session store a QoS 1/2 subscription, i.e. could subscriptionsByTopic find anything at all? */
  holdsSubscriptions (): boolean {
    return this.subscriptions.matchable > 0
  }

  /**
   * Does any stored subscription match `topic` (the set subscriptionsByTopic
   * returns)? Synchronous and without building the list: the gateway asks it
   * for every QoS 1/2 PUBLISH to choose the 0x10 reason code.
   */
  hasSubscriptionsFor (topic: string): boolean {
    return this.subscriptions.matches(topic)
  }

  async cleanSubscriptions (client: ClientRef): Promise<void> {
    this.#checkOpen()
    await this.subscriptions.clear(client.id)
  }

  getClientList (topic: string): Readable {
    return Readable.from(this.subscriptions.clientsWith(topic))
  }

  // -------------------------------------------------------------------------
  // outgoing queue

  async outgoingEnqueue (sub: EnqueueTarget, packet: StoredPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet)
  }

  outgoingEnqueueCombi (subs: EnqueueTarget[], packet: StoredPacket): Promise<void> {
    // aedes calls it for every QoS 1/2 PUBLISH, mostly with no stored
    // subscription to queue it for: then no async function runs
    if (subs.length === 0 && !this.closed) return DONE
    return this.#enqueueCombi(subs, packet)
  }

  async #enqueueCombi (subs: EnqueueTarget[], packet: StoredPacket): Promise<void> {
    this.#checkOpen()
    if (subs.length === 0) return
    const now = Date.now()
    const body = queuedBody(packet)
    const packetQos = body.qos ?? 0
    // aedes passes one entry per matching subscription, so a client with
    // overlapping filters appears several times: queue the message once per
    // client, at the highest QoS granted among its matching subscriptions,
    // capped by the QoS of the PUBLISH. [MQTT-3.3.4-2] [MQTT-3.8.4-8]
    const targets = new Map<string, number>()
    for (const sub of subs) {
      const granted = typeof sub.qos === 'number' ? sub.qos : 2
      const prev = targets.get(sub.clientId)
      if (prev === undefined || granted > prev) targets.set(sub.clientId, granted)
    }
    if (isExpired(body.messageExpiry, now)) {
      // [MQTT-3.3.2-5] already past its Message Expiry Interval: never queued
      for (const cid of targets.keys()) this.#reportDrop(cid, 'expired', 1)
      return
    }
    const bytes = accountedBytes(body)
    const brokerKey = brokerKeyOf(body)
    const variants = new Map<number, { body: StoredPacket, value: Buffer | undefined }>()
    let write: Promise<void> | undefined
    const created: QueueEntry[] = []
    for (const [cid, granted] of targets) {
      const qos = Math.min(packetQos, granted)
      let q = this.#queues.get(cid)
      if (q === undefined) {
        q = { entries: [], count: 0, bytes: 0, byBroker: new Map() }
        this.#queues.set(cid, q)
      }
      // the same message enqueued twice for one session is one message
      if (brokerKey !== undefined && q.byBroker.has(brokerKey)) continue
      if (!this.#makeRoom(cid, q, bytes, now)) {
        if (q.entries.length === 0) this.#queues.delete(cid)
        continue
      }
      // dropping made the queue empty and unlinked it
      if (this.#queues.get(cid) !== q) this.#queues.set(cid, q)
      let variant = variants.get(qos)
      if (variant === undefined) {
        variant = { body: qos === packetQos ? body : { ...body, qos }, value: undefined }
        variants.set(qos, variant)
      }
      const entry: QueueEntry = {
        seq: ++this.#seq,
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
        removed: false
      }
      this.#appendEntry(q, entry)
      if (this.backend !== null) {
        variant.value ??= encodePacket(variant.body)
        write = this.#put(KEY.queued(cid, entry.seq), variant.value)
        this.#admit(entry, bytes)
        if (entry.cached === 0) created.push(entry)
      }
    }
    if (write !== undefined) {
      await write
      // bodies that did not fit the cache budget are on disk now; let them go
      for (const entry of created) this.#evictIfUnaccounted(entry)
    }
  }

  #appendEntry (q: ClientQueue, entry: QueueEntry): void {
    q.entries.push(entry)
    if (entry.pubrel === undefined) {
      q.count++
      q.bytes += entry.bytes
      this.#queued++
      this.#queuedBytes += entry.bytes
      if (entry.messageId !== undefined) this.#inflight++
    } else {
      this.#pubrels++
    }
    if (entry.brokerKey !== undefined && entry.pubrel === undefined) q.byBroker.set(entry.brokerKey, entry)
  }

  /**
   * Per-session limits. 'refuse' keeps what is queued and drops the new
   * message; 'drop-oldest' first drops messages whose expiry passed, then the
   * oldest QoS 0 message, then the oldest message. Returns whether the new
   * message may be queued.
   */
  #makeRoom (cid: string, q: ClientQueue, bytes: number, now: number): boolean {
    const fits = (): boolean => q.count + 1 <= this.#maxQueuedMessages && q.bytes + bytes <= this.#maxQueuedBytes
    if (fits()) return true
    if (bytes > this.#maxQueuedBytes || this.#overflow === 'refuse') {
      this.#reportDrop(cid, 'queue-full', 1)
      return false
    }
    let full = 0
    let expired = 0
    while (!fits()) {
      let victim: QueueEntry | undefined
      let victimExpired = false
      let firstQos0: QueueEntry | undefined
      let first: QueueEntry | undefined
      for (const e of q.entries) {
        if (e.pubrel !== undefined) continue
        if (e.messageId === undefined && isExpired(e.expiry, now)) { victim = e; victimExpired = true; break }
        first ??= e
        if (firstQos0 === undefined && e.qos === 0) firstQos0 = e
      }
      victim ??= firstQos0 ?? first
      if (victim === undefined) break
      this.#removeEntry(cid, q, victim, true)
      if (victimExpired) expired++
      else full++
    }
    if (expired > 0) this.#reportDrop(cid, 'expired', expired)
    if (full > 0) this.#reportDrop(cid, 'queue-full', full)
    if (!fits()) {
      this.#reportDrop(cid, 'queue-full', 1)
      return false
    }
    return true
  }

  /** removes an entry from the index; deletes its keys unless the caller does it later */
  #removeEntry (cid: string, q: ClientQueue, entry: QueueEntry, deleteKeys: boolean): Promise<void> | undefined {
    entry.removed = true
    if (this.#lazyIds.size > 0) this.#lazyIds.delete(entry)
    const idx = q.entries.indexOf(entry)
    if (idx >= 0) q.entries.splice(idx, 1)
    if (entry.pubrel === undefined) {
      q.count--
      q.bytes -= entry.bytes
      this.#queued--
      this.#queuedBytes -= entry.bytes
      if (entry.messageId !== undefined) this.#inflight--
    } else {
      this.#pubrels--
    }
    if (entry.brokerKey !== undefined && q.byBroker.get(entry.brokerKey) === entry) q.byBroker.delete(entry.brokerKey)
    this.#uncache(entry)
    if (q.entries.length === 0) this.#queues.delete(cid)
    return deleteKeys ? this.#deleteEntryKeys(cid, entry) : undefined
  }

  #deleteEntryKeys (cid: string, entry: QueueEntry): Promise<void> | undefined {
    if (this.backend === null) return undefined
    const write = this.#del(KEY.queued(cid, entry.seq))
    return entry.hasState ? this.#del(KEY.inflight(cid, entry.seq)) : write
  }

  async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#checkOpen()
    const cid = client.id
    const q = this.#queues.get(cid)
    const brokerKey = brokerKeyOf(packet)
    // 1. a message aedes is (re)sending: record the packet id it assigned, so
    //    a redelivery after a restart reuses it. [MQTT-4.4.0-1]
    if (q !== undefined && brokerKey !== undefined) {
      const entry = q.byBroker.get(brokerKey)
      if (entry !== undefined) {
        const write = this.#recordPacketId(cid, entry, hasId(packet.messageId) ? packet.messageId : undefined)
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
        await this.#replaceEntry(cid, q, entry, packet)
        return
      }
      if (packet.cmd === 'pubrel') {
        // PUBREC for a message this store no longer holds (dropped by a queue
        // limit while in flight): still track the PUBREL so the QoS 2 flow
        // completes after a reconnect.
        await this.#addPubrel(cid, packet)
        return
      }
    }
    // 3. a message the store refused or dropped under its queue limits is
    //    still delivered to a connected client, best effort; nothing to track.
    if (packet.cmd === 'publish' || packet.cmd === undefined) return
    throw persistenceError('CULEX_ERR_NO_SUCH_PACKET')
  }

  /**
   * The packet id a queued message is (re)sent with, kept so a redelivery
   * reuses it [MQTT-4.4.0-1]. A QoS 1 id goes to disk only if the message is
   * still unacknowledged ID_WRITE_DELAY_MS later: most are acknowledged
   * sooner, and then neither the id nor its delete is written (see #lazyIds).
   */
  #recordPacketId (cid: string, entry: QueueEntry, messageId: number | undefined): Promise<void> | undefined {
    const previous = entry.messageId
    if (previous === undefined && messageId !== undefined) this.#inflight++
    if (previous !== undefined && messageId === undefined) this.#inflight--
    entry.messageId = messageId
    if (this.backend === null) return undefined
    if (entry.qos === 1 && messageId !== undefined && entry.pubrel === undefined) {
      // re-sent with the id it already has on disk: nothing to write
      if (entry.hasState && previous === messageId && !this.#lazyIds.has(entry)) return undefined
      this.#lazyIds.set(entry, cid)
      if (this.#lazyTimer === undefined) {
        this.#lazyTimer = setTimeout(() => this.#writeLazyIds(), ID_WRITE_DELAY_MS)
        this.#lazyTimer.unref()
      }
      return undefined
    }
    this.#lazyIds.delete(entry)
    entry.hasState = true
    return this.#put(KEY.inflight(cid, entry.seq), encodeRecord({ m: messageId ?? null }))
  }

  /**
   * QoS 1 packet ids recorded in memory and not yet on disk. After a crash
   * such a message is sent again under a new id, without DUP: a duplicate,
   * which QoS 1 allows [MQTT-4.3.2-1]. QoS 2 ids never wait here: they are
   * on disk before the PUBLISH goes out (exactly once, spec 4.3.3).
   */
  readonly #lazyIds = new Map<QueueEntry, string>()
  #lazyTimer: NodeJS.Timeout | undefined

  #writeLazyIds (): void {
    if (this.#lazyTimer !== undefined) clearTimeout(this.#lazyTimer)
    this.#lazyTimer = undefined
    for (const [entry, cid] of this.#lazyIds) {
      if (entry.removed || entry.messageId === undefined || entry.pubrel !== undefined) continue
      entry.hasState = true
      this.#put(KEY.inflight(cid, entry.seq), encodeRecord({ m: entry.messageId }))?.catch(() => {})
    }
    this.#lazyIds.clear()
  }

  async #replaceEntry (cid: string, q: ClientQueue, entry: QueueEntry, packet: StoredPacket): Promise<void> {
    const wasPubrel = entry.pubrel !== undefined
    if (packet.cmd === 'pubrel') {
      if (!wasPubrel) {
        // the message body is not needed any more: only the PUBREL is resent
        q.count--
        q.bytes -= entry.bytes
        this.#queued--
        this.#queuedBytes -= entry.bytes
        if (entry.messageId !== undefined) this.#inflight--
        this.#pubrels++
        if (entry.brokerKey !== undefined && q.byBroker.get(entry.brokerKey) === entry) q.byBroker.delete(entry.brokerKey)
        this.#uncache(entry)
      }
      this.#lazyIds.delete(entry)
      entry.pubrel = copyPacket(packet)
      entry.body = undefined
      entry.messageId = packet.messageId
      if (this.backend !== null) {
        entry.hasState = true
        this.#del(KEY.queued(cid, entry.seq))
        await this.#put(KEY.inflight(cid, entry.seq), encodeRecord({ p: entry.pubrel }))
      }
      return
    }
    // another publish takes the place (and packet id) of this entry
    this.#removeEntry(cid, q, entry, false)
    const body = queuedBody(packet)
    const replacement: QueueEntry = {
      seq: entry.seq,
      brokerId: body.brokerId,
      brokerKey: brokerKeyOf(body),
      qos: body.qos ?? 0,
      bytes: accountedBytes(body),
      expiry: body.messageExpiry,
      messageId: hasId(packet.messageId) ? packet.messageId : undefined,
      pubrel: undefined,
      body,
      cached: 0,
      hasState: entry.hasState,
      removed: false
    }
    let queue = this.#queues.get(cid)
    if (queue === undefined) {
      queue = q
      this.#queues.set(cid, queue)
    }
    // keep the position of the replaced entry
    const at = queue.entries.findIndex((e) => e.seq > replacement.seq)
    this.#appendEntry(queue, replacement)
    if (at >= 0) {
      queue.entries.pop()
      queue.entries.splice(at, 0, replacement)
    }
    if (this.backend !== null) {
      this.#admit(replacement, replacement.bytes)
      replacement.hasState = true
      this.#put(KEY.queued(cid, replacement.seq), encodePacket(body))
      await this.#put(KEY.inflight(cid, replacement.seq), encodeRecord({ m: replacement.messageId ?? null }))
      this.#evictIfUnaccounted(replacement)
    }
  }

  async #addPubrel (cid: string, packet: StoredPacket): Promise<void> {
    let q = this.#queues.get(cid)
    if (q === undefined) {
      q = { entries: [], count: 0, bytes: 0, byBroker: new Map() }
      this.#queues.set(cid, q)
    }
    const entry: QueueEntry = {
      seq: ++this.#seq,
      brokerId: undefined,
      brokerKey: undefined,
      qos: 2,
      bytes: 0,
      expiry: undefined,
      messageId: packet.messageId,
      pubrel: copyPacket(packet),
      body: undefined,
      cached: 0,
      hasState: this.backend !== null,
      removed: false
    }
    this.#appendEntry(q, entry)
    await this.#put(KEY.inflight(cid, entry.seq), encodeRecord({ p: entry.pubrel }))
  }

  async outgoingClearMessageId (client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined> {
    this.#checkOpen()
    if (packet === null || typeof packet !== 'object') return undefined
    const cid = client.id
    const q = this.#queues.get(cid)
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
    this.#removeEntry(cid, q, entry, false)
    let out: StoredPacket | undefined
    if (pubrel !== undefined) {
      out = clonePacket(pubrel)
    } else {
      let body = cachedBody
      if (body === undefined && this.backend !== null) {
        // read before the delete is issued
        body = (await this.backend.readPackets([KEY.queued(cid, entry.seq)]))[0]
      }
      if (body !== undefined) out = packetFromBody(body, messageId, entry.qos)
    }
    // The message is gone from memory now; its keys go with the next batch.
    // Nothing waits for that: were they still on disk after a crash, the
    // session would resend it on reconnect [MQTT-4.4.0-1], a duplicate QoS 1
    // allows [MQTT-4.3.2-1], or a PUBREL the client answers with PUBCOMP
    // (0x92 Packet Identifier not found, spec 3.7.2.1).
    this.#deleteEntryKeys(cid, entry)
    return out
  }

  #queueSink: QueueSinkFactory | undefined

  setQueueSink (factory: QueueSinkFactory | undefined): void {
    this.#queueSink = factory
  }

  outgoingStream (client: ClientRef): Readable {
    const cid = client.id
    const q = this.#queues.get(cid)
    // asked even for an empty queue: a sink is offered for one stream only
    const sink = this.#queueSink?.(client)
    let snapshot = q === undefined || this.closed ? [] : q.entries.slice()
    if (sink !== undefined && q !== undefined && snapshot.length > 0) snapshot = snapshot.slice(this.#sendToSink(cid, q, snapshot, sink))
    // aedes streams the queue on every CONNECT; most are empty, or were all taken by the sink
    if (snapshot.length === 0) return endedStream()
    return Readable.from(this.#outgoingGenerator(cid, snapshot))
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
    const now = Date.now()
    let expired = 0
    let i = 0
    for (; i < snapshot.length; i++) {
      const entry = snapshot[i] as QueueEntry
      if (entry.removed) continue
      const body = entry.body
      if (entry.pubrel !== undefined || entry.qos !== 1 || body === undefined || entry.brokerKey === undefined) break
      if (entry.messageId === undefined && isExpired(entry.expiry, now)) {
        this.#removeEntry(cid, q, entry, true)?.catch(() => {})
        expired++
        continue
      }
      if (sink.room() <= 0) break
      const resent = entry.messageId !== undefined
      const packet = packetFromBody(body, entry.messageId, entry.qos)
      packet.messageId = entry.messageId ?? sink.nextPacketId()
      if (resent) this.#resent.add(cid + '\u0000' + entry.brokerKey)
      this.#recordPacketId(cid, entry, packet.messageId)?.catch(() => {})
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
        this.#removeEntry(cid, q, entry, false)
        this.#deleteEntryKeys(cid, entry)?.catch(() => {})
      }
    }
    if (expired > 0) this.#reportDrop(cid, 'expired', expired)
    return i
  }

  async * #outgoingGenerator (cid: string, snapshot: QueueEntry[]): AsyncGenerator<StoredPacket> {
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
          const q = this.#queues.get(cid)
          if (q !== undefined && !this.closed) this.#removeEntry(cid, q, entry, true)?.catch(() => {})
          expired++
          continue
        }
        live.push(entry)
      }
      if (expired > 0) this.#reportDrop(cid, 'expired', expired)
      const missing = live.filter((e) => e.pubrel === undefined && e.body === undefined)
      const loaded = new Map<QueueEntry, StoredPacket | undefined>()
      if (missing.length > 0 && this.backend !== null) {
        const bodies = await this.backend.readPackets(missing.map((e) => KEY.queued(cid, e.seq)))
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

  /** in-memory part of a queued message loaded from disk */
  protected restoreQueued (cid: string, seq: number, body: StoredPacket, state: { m?: number | null, p?: StoredPacket } | undefined): void {
    let q = this.#queues.get(cid)
    if (q === undefined) {
      q = { entries: [], count: 0, bytes: 0, byBroker: new Map() }
      this.#queues.set(cid, q)
    }
    const entry: QueueEntry = {
      seq,
      brokerId: body.brokerId,
      brokerKey: brokerKeyOf(body),
      qos: body.qos ?? 0,
      bytes: accountedBytes(body),
      expiry: body.messageExpiry,
      messageId: hasId(state?.m) ? state.m : undefined,
      pubrel: undefined,
      body,
      cached: 0,
      hasState: state !== undefined,
      removed: false
    }
    if (this.#seq < seq) this.#seq = seq
    this.#insertRestored(q, entry)
    this.#admit(entry, entry.bytes)
    this.#evictIfUnaccounted(entry)
  }

  protected restorePubrel (cid: string, seq: number, pubrel: StoredPacket): void {
    let q = this.#queues.get(cid)
    if (q === undefined) {
      q = { entries: [], count: 0, bytes: 0, byBroker: new Map() }
      this.#queues.set(cid, q)
    }
    if (this.#seq < seq) this.#seq = seq
    this.#insertRestored(q, {
      seq,
      brokerId: undefined,
      brokerKey: undefined,
      qos: 2,
      bytes: 0,
      expiry: undefined,
      messageId: hasId(pubrel.messageId) ? pubrel.messageId : undefined,
      pubrel,
      body: undefined,
      cached: 0,
      hasState: true,
      removed: false
    })
  }

  protected noteSeq (seq: number): void {
    if (this.#seq < seq) this.#seq = seq
  }

  #insertRestored (q: ClientQueue, entry: QueueEntry): void {
    this.#appendEntry(q, entry)
    // keys arrive sorted per client; this keeps order if they do not
    const n = q.entries.length
    const prev = q.entries[n - 2]
    if (prev !== undefined && prev.seq > entry.seq) q.entries.sort((a, b) => a.seq - b.seq)
  }

  // incoming QoS 2 (parts/incoming.ts)

  async incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#checkOpen()
    if (!hasId(packet.messageId)) return
    await this.incoming.put(client.id, packet.messageId, packet)
  }

  async incomingGetPacket (client: ClientRef, packet: StoredPacket): Promise<StoredPacket> {
    const found = hasId(packet.messageId) ? this.incoming.get(client.id, packet.messageId) : undefined
    if (found === undefined) throw persistenceError('CULEX_ERR_NO_SUCH_PACKET')
    return found
  }

  async incomingDelPacket (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#checkOpen()
    const deleted = hasId(packet.messageId) ? this.incoming.delete(client.id, packet.messageId) : undefined
    if (deleted === undefined) throw persistenceError('CULEX_ERR_NO_SUCH_PACKET')
    await deleted.written
  }

  /** drops a session's inbound QoS 2 state (Clean Start, [MQTT-3.1.2-4]); aedes 1.x calls it too */
  async cleanIncoming (client: ClientRef): Promise<void> {
    this.#checkOpen()
    await this.incoming.clear(client.id)
  }

  // wills (parts/wills.ts)

  async putWill (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#checkOpen()
    // aedes (and its abstract suite) expect the will to be stamped in place
    packet.brokerId = this.#broker?.id
    packet.clientId = client.id
    await this.wills.put(client.id, packet)
  }

  async getWill (client: ClientRef): Promise<StoredPacket | undefined> {
    return this.wills.get(client.id)
  }

  async delWill (client: ClientRef): Promise<StoredPacket | undefined> {
    this.#checkOpen()
    const taken = this.wills.take(client.id)
    if (taken === undefined) return undefined
    await taken.written
    return taken.will
  }

  streamWill (brokers: BrokerHeartbeats = {}): Readable {
    const now = Date.now()
    const out: StoredPacket[] = []
    for (const [cid, will] of this.wills.entries()) {
      const brokerId = will.brokerId
      if (typeof brokerId === 'string' && Object.hasOwn(brokers, brokerId) && Boolean(brokers[brokerId])) continue
      // a will still inside its Will Delay Interval is published by the
      // session-expiry helper at its deadline, not by aedes' will sweep
      const until = this.sessions.willDelayUntil(cid)
      if (until !== undefined && until > now) continue
      out.push(this.wills.get(cid) as StoredPacket)
    }
    return Readable.from(out)
  }

  // sessions (parts/sessions.ts)

  async putSession (clientId: string, meta: SessionMeta): Promise<void> {
    this.#checkOpen()
    await this.sessions.put(clientId, meta)
  }

  async getSession (clientId: string): Promise<SessionMeta | undefined> {
    return this.sessions.get(clientId)
  }

  async delSession (clientId: string): Promise<void> {
    this.#checkOpen()
    await this.sessions.delete(clientId)
  }

  async * listSessions (): AsyncIterable<{ clientId: string, meta: SessionMeta }> {
    yield * this.sessions.list()
  }

  async wipeSession (clientId: string): Promise<void> {
    this.#checkOpen()
    let write = this.subscriptions.clear(clientId)
    // a session that ended leaves its shared subscription groups too
    for (const [key, member] of this.#sharedMembers) {
      if (member.clientId !== clientId) continue
      this.#sharedMembers.delete(key)
      write = this.#del(KEY.sharedMember(member.group, clientId)) ?? write
    }
    const q = this.#queues.get(clientId)
    if (q !== undefined) {
      for (const entry of q.entries.slice()) write = this.#removeEntry(clientId, q, entry, true) ?? write
    }
    write = this.incoming.clear(clientId) ?? write
    write = this.wills.delete(clientId) ?? write
    write = this.sessions.delete(clientId) ?? write
    await write
  }

  // -------------------------------------------------------------------------
  // shared subscriptions: group members of persistent sessions and group logs

  /** client + brokerKey of queued messages streamed again with their packet id (see wasInFlight) */
  readonly #resent = new Set<string>()

  /**
   * Was this message streamed from the queue with the packet id it had been
   * sent with (a re-delivery, [MQTT-3.3.1-1] DUP 1)? Answers once.
   */
  wasInFlight (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined): boolean {
    if (this.#resent.size === 0 || brokerId === undefined || brokerCounter === undefined) return false
    return this.#resent.delete(clientId + '\u0000' + brokerId + '\u0000' + String(brokerCounter))
  }

  readonly #sharedMembers = new Map<string, StoredMember>()
  readonly #sharedMessages = new Map<string, Map<number, StoredMessage>>()

  /** Where lib/shared keeps what must survive a restart, in this store. */
  sharedStore (): GroupLog {
    return {
      putMember: async (member) => {
        this.#checkOpen()
        this.#sharedMembers.set(member.group + '\u0000' + member.clientId, member)
        if (this.backend) await this.#put(KEY.sharedMember(member.group, member.clientId), encodeRecord(member))
      },
      delMember: async (group, clientId) => {
        this.#checkOpen()
        if (this.#sharedMembers.delete(group + '\u0000' + clientId)) await this.#del(KEY.sharedMember(group, clientId))
      },
      members: () => this.#iterate([...this.#sharedMembers.values()]),
      // without a backend the log is only this map: nothing to encode or wait for
      putMessage: (group, seq, message) => {
        this.#checkOpen()
        let log = this.#sharedMessages.get(group)
        if (!log) this.#sharedMessages.set(group, log = new Map())
        log.set(seq, message)
        return this.backend ? this.#put(KEY.sharedMessage(group, seq), encodePacket(message as unknown as StoredPacket)) : undefined
      },
      delMessage: (group, seq) => {
        this.#checkOpen()
        const log = this.#sharedMessages.get(group)
        if (!log?.delete(seq)) return undefined
        if (log.size === 0) this.#sharedMessages.delete(group)
        return this.backend ? this.#del(KEY.sharedMessage(group, seq)) : undefined
      },
      messages: () => {
        const all: Array<{ group: string, seq: number, message: StoredMessage }> = []
        for (const [group, log] of this.#sharedMessages) for (const [seq, message] of log) all.push({ group, seq, message })
        return this.#iterate(all)
      }
    }
  }

  async * #iterate<T> (items: T[]): AsyncIterable<T> {
    yield * items
  }

  protected restoreRetained (topic: string, body: StoredPacket): void { this.retained.restore(topic, body) }
  protected restoreSubscription (cid: string, filter: string, record: SubRecord): void { this.subscriptions.restore(cid, filter, record) }
  protected restoreIncoming (cid: string, messageId: number, packet: StoredPacket): void { this.incoming.restore(cid, messageId, packet) }
  protected restoreWill (cid: string, will: StoredPacket): void { this.wills.restore(cid, will) }
  protected restoreSession (cid: string, meta: SessionMeta): void { this.sessions.restore(cid, meta) }

  protected restoreSharedMember (member: StoredMember): void {
    this.#sharedMembers.set(member.group + '\u0000' + member.clientId, member)
  }

  protected restoreSharedMessage (group: string, seq: number, body: StoredPacket): void {
    let log = this.#sharedMessages.get(group)
    if (!log) this.#sharedMessages.set(group, log = new Map())
    const message: StoredMessage = {
      topic: String(body.topic),
      payload: Buffer.isBuffer(body.payload) ? body.payload : Buffer.from(body.payload ?? ''),
      qos: body.qos === 2 ? 2 : 1,
      retain: body.retain === true
    }
    if (body.properties !== undefined) message.properties = body.properties
    if (body.messageExpiry !== undefined) message.messageExpiry = body.messageExpiry
    if (typeof body.publisherId === 'string') message.publisherId = body.publisherId
    log.set(seq, message)
  }

  // -------------------------------------------------------------------------
  // stats, drops

  stats (): PersistenceStats {
    return {
      retained: this.retained.size,
      queued: this.#queued,
      queuedBytes: this.#queuedBytes,
      inflight: this.#inflight,
      pubrels: this.#pubrels,
      incoming: this.incoming.count,
      subscriptions: this.subscriptions.count,
      clients: this.subscriptions.clients,
      wills: this.wills.size,
      sessions: this.sessions.size,
      dropped: this.#drops.counts(),
      corrupt: this.corrupt,
      cachedBytes: this.#cache.used
    }
  }

  onDrop (listener: (event: DropEvent) => void): () => void {
    return this.#drops.onDrop(listener)
  }

  #reportDrop (clientId: string | null, reason: DropReason, count: number, detail?: Record<string, unknown>): void {
    this.#drops.report(clientId, reason, count, detail)
  }

  // -------------------------------------------------------------------------
  // body cache (level store): bodies stay in memory within the budget

  #admit (entry: { cached: number }, bytes: number): void {
    this.#cache.admit(entry, bytes)
  }

  #evictIfUnaccounted (entry: { cached: number, body: StoredPacket | undefined }): void {
    this.#cache.evictIfUnaccounted(entry)
  }

  #uncache (entry: { cached: number }): void {
    this.#cache.uncache(entry)
  }

  // -------------------------------------------------------------------------

  async destroy (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // the ids of messages still in flight, for the next run [MQTT-4.4.0-1]
    if (this.backend !== null) this.#writeLazyIds()
    await this.backend?.writer.flush()
    await this.closeBackend()
  }

  async close (): Promise<void> {
    await this.destroy()
  }
}

/** An object-mode stream that ends at once, without an async generator behind it (high-water mark 1, as Readable.from). */
function endedStream (): Readable {
  const stream = new Readable({ objectMode: true, highWaterMark: 1, read () {} })
  stream.push(null)
  return stream
}

function positiveOr (value: number | undefined, fallback: number): number {
  return typeof value === 'number' && value > 0 ? value : fallback
}
