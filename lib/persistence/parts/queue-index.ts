// The index under the session queues: per session the queued messages in
// order (QueueEntry), their counts and bytes, the store-wide sequence number,
// the per-session limits, and the packet ids recorded for messages in flight.
// MemorySessionQueues (session-queues.ts) and QueueDrain (queue-drain.ts)
// work on it.
import { accountedBytes, encodeRecord } from '../codec.js'
import type { OverflowPolicy, StoredPacket } from '../types.js'
import type { BodyCache } from './body-cache.js'
import type { DropReporter } from './drops.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

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
  /** the generation of QoS 1 packet ids this entry's id waits in to be written (0: none; see QueueIndex#young) */
  idGeneration: number
  removed: boolean
}

export interface ClientQueue {
  entries: QueueEntry[]
  /** publish entries (PUBREL state is not a message and does not count) */
  count: number
  bytes: number
  byBroker: Map<string, QueueEntry>
}

export interface QueueLimits {
  maxQueuedMessages: number
  maxQueuedBytes: number
  overflow: OverflowPolicy
}

/** how long a QoS 1 packet id stays in memory only, at least (#young) */
const ID_WRITE_DELAY_MS = 100

export function brokerKeyOf (packet: StoredPacket): string | undefined {
  if (packet.brokerId === undefined || packet.brokerId === null || packet.brokerCounter === undefined) return undefined
  return packet.brokerId + '\u0000' + String(packet.brokerCounter)
}

export function isExpired (expiry: number | undefined, now: number): boolean {
  return expiry !== undefined && expiry <= now
}

export function hasId (v: unknown): v is number {
  return typeof v === 'number'
}

/** a queue entry for a message body (not yet in flight unless messageId is given) */
export function entryFor (seq: number, body: StoredPacket, messageId: number | undefined, hasState: boolean): QueueEntry {
  return {
    seq,
    brokerId: body.brokerId,
    brokerKey: brokerKeyOf(body),
    qos: body.qos ?? 0,
    bytes: accountedBytes(body),
    expiry: body.messageExpiry,
    messageId,
    pubrel: undefined,
    body,
    cached: 0,
    hasState,
    idGeneration: 0,
    removed: false
  }
}

/** a queue entry for PUBREL state (QoS 2 after PUBREC): no body, not a message */
export function pubrelEntry (seq: number, pubrel: StoredPacket, hasState: boolean): QueueEntry {
  return {
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
    hasState,
    idGeneration: 0,
    removed: false
  }
}

export class QueueIndex {
  // Map everywhere a clientId is a key: ids such as `__proto__` are ordinary ids here.
  readonly queues = new Map<string, ClientQueue>()
  seq = 0
  queued = 0
  queuedBytes = 0
  inflight = 0
  pubrels = 0

  /**
   * QoS 1 packet ids recorded in memory and not yet on disk, in two
   * generations: `#young` were recorded since the timer last ran, `#old`
   * before that, so at least ID_WRITE_DELAY_MS ago; each run of the timer
   * writes the old ones still unacknowledged and ages the young. An id is
   * written 100 to 200 ms after it was recorded, never sooner: under load (a
   * reconnect burst draining thousands of queues) acknowledgements take tens
   * of ms, and a single deadline for all of them wrote the ids recorded just
   * before it fired, then their deletes. After a crash such a message is sent
   * again under a new id, without DUP: a duplicate, which QoS 1 allows
   * [MQTT-4.3.2-1]. QoS 2 ids never wait here: they are on disk before the
   * PUBLISH goes out (exactly once, spec 4.3.3).
   *
   * An entry waits in the generation its `idGeneration` names; the lists may
   * hold it more than once or after it left (acknowledged, given a new id):
   * only an entry whose `idGeneration` is still the list's is written. So
   * recording and forgetting an id, once per drained message, is a field
   * write and an array push, not a Map insert and two deletes.
   */
  #young: QueueEntry[] = []
  #old: QueueEntry[] = []
  #youngCids: string[] = []
  #oldCids: string[] = []
  /** the generation `#young` holds; `#old` holds the one before (an entry's 0 is none) */
  #generation = 2
  #lazyTimer: NodeJS.Timeout | undefined

  constructor (
    readonly io: WriteThrough,
    readonly cache: BodyCache,
    readonly drops: DropReporter,
    readonly limits: QueueLimits
  ) {}

  /** the session's queue, made if it has none */
  queueOf (cid: string): ClientQueue {
    let q = this.queues.get(cid)
    if (q === undefined) {
      q = { entries: [], count: 0, bytes: 0, byBroker: new Map() }
      this.queues.set(cid, q)
    }
    return q
  }

  append (q: ClientQueue, entry: QueueEntry): void {
    q.entries.push(entry)
    if (entry.pubrel === undefined) {
      q.count++
      q.bytes += entry.bytes
      this.queued++
      this.queuedBytes += entry.bytes
      if (entry.messageId !== undefined) this.inflight++
    } else {
      this.pubrels++
    }
    if (entry.brokerKey !== undefined && entry.pubrel === undefined) q.byBroker.set(entry.brokerKey, entry)
  }

  /** a message entry enters its PUBREL phase: it stops counting as a message */
  toPubrel (q: ClientQueue, entry: QueueEntry, pubrel: StoredPacket): void {
    if (entry.pubrel === undefined) {
      this.#uncount(q, entry)
      this.pubrels++
      if (entry.brokerKey !== undefined && q.byBroker.get(entry.brokerKey) === entry) q.byBroker.delete(entry.brokerKey)
      this.cache.uncache(entry)
    }
    this.#forgetLazyId(entry)
    entry.pubrel = pubrel
    entry.body = undefined
    entry.messageId = pubrel.messageId
  }

  /** a message entry stops counting against its queue and the totals */
  #uncount (q: ClientQueue, entry: QueueEntry): void {
    q.count--
    q.bytes -= entry.bytes
    this.queued--
    this.queuedBytes -= entry.bytes
    if (entry.messageId !== undefined) this.inflight--
  }

  /** removes an entry from the index; deletes its keys unless the caller does it later */
  remove (cid: string, q: ClientQueue, entry: QueueEntry, deleteKeys: boolean): Promise<void> | undefined {
    entry.removed = true
    this.#forgetLazyId(entry)
    const idx = q.entries.indexOf(entry)
    if (idx >= 0) q.entries.splice(idx, 1)
    if (entry.pubrel === undefined) {
      this.#uncount(q, entry)
    } else {
      this.pubrels--
    }
    if (entry.brokerKey !== undefined && q.byBroker.get(entry.brokerKey) === entry) q.byBroker.delete(entry.brokerKey)
    this.cache.uncache(entry)
    if (q.entries.length === 0) this.queues.delete(cid)
    return deleteKeys ? this.deleteKeys(cid, entry) : undefined
  }

  deleteKeys (cid: string, entry: QueueEntry): Promise<void> | undefined {
    if (!this.io.durable) return undefined
    const write = this.io.del(KEY.queued(cid, entry.seq))
    return entry.hasState ? this.io.del(KEY.inflight(cid, entry.seq)) : write
  }

  /**
   * An acknowledged message's keys: nobody waits for their delete, which
   * joins a later batch (a failed batch is logged by the store, and its
   * promise never becomes an unhandled rejection: group-commit.ts)
   */
  deleteKeysLater (cid: string, entry: QueueEntry): void {
    if (!this.io.durable) return
    this.io.delLater(KEY.queued(cid, entry.seq))
    if (entry.hasState) this.io.delLater(KEY.inflight(cid, entry.seq))
  }

  /**
   * Per-session limits. 'refuse' keeps what is queued and drops the new
   * message; 'drop-oldest' first drops messages whose expiry passed, then the
   * oldest QoS 0 message, then the oldest message. Returns whether the new
   * message may be queued.
   */
  makeRoom (cid: string, q: ClientQueue, bytes: number, now: number): boolean {
    const { maxQueuedMessages, maxQueuedBytes, overflow } = this.limits
    const fits = (): boolean => q.count + 1 <= maxQueuedMessages && q.bytes + bytes <= maxQueuedBytes
    if (fits()) return true
    if (bytes > maxQueuedBytes || overflow === 'refuse') {
      this.drops.report(cid, 'queue-full', 1)
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
      this.remove(cid, q, victim, true)
      if (victimExpired) expired++
      else full++
    }
    if (expired > 0) this.drops.report(cid, 'expired', expired)
    if (full > 0) this.drops.report(cid, 'queue-full', full)
    if (!fits()) {
      this.drops.report(cid, 'queue-full', 1)
      return false
    }
    return true
  }

  /**
   * The packet id a queued message is (re)sent with, kept so a redelivery
   * reuses it [MQTT-4.4.0-1]. A QoS 1 id goes to disk only if the message is
   * still unacknowledged ID_WRITE_DELAY_MS later: most are acknowledged
   * sooner, and then neither the id nor its delete is written (see #young).
   */
  recordPacketId (cid: string, entry: QueueEntry, messageId: number | undefined): Promise<void> | undefined {
    const previous = entry.messageId
    if (previous === undefined && messageId !== undefined) this.inflight++
    if (previous !== undefined && messageId === undefined) this.inflight--
    entry.messageId = messageId
    if (!this.io.durable) return undefined
    if (entry.qos === 1 && messageId !== undefined && entry.pubrel === undefined) {
      // re-sent with the id it already has on disk: nothing to write
      if (entry.hasState && previous === messageId && entry.idGeneration === 0) return undefined
      // a new id starts its delay again
      if (entry.idGeneration !== this.#generation) {
        entry.idGeneration = this.#generation
        this.#young.push(entry)
        this.#youngCids.push(cid)
      }
      this.#armLazyTimer()
      return undefined
    }
    this.#forgetLazyId(entry)
    entry.hasState = true
    return this.io.put(KEY.inflight(cid, entry.seq), encodeRecord({ m: messageId ?? null }))
  }

  #forgetLazyId (entry: QueueEntry): void {
    entry.idGeneration = 0
  }

  #armLazyTimer (): void {
    if (this.#lazyTimer !== undefined) return
    this.#lazyTimer = setTimeout(() => this.#ageLazyIds(), ID_WRITE_DELAY_MS)
    this.#lazyTimer.unref()
  }

  /** the timer: writes the old generation, the young one becomes old */
  #ageLazyIds (): void {
    this.#lazyTimer = undefined
    const written = this.#old
    const writtenCids = this.#oldCids
    this.#writeIds(written, writtenCids, this.#generation - 1)
    this.#old = this.#young
    this.#oldCids = this.#youngCids
    this.#young = written
    this.#youngCids = writtenCids
    this.#generation++
    if (this.#old.length > 0) this.#armLazyTimer()
  }

  #writeIds (entries: QueueEntry[], cids: string[], generation: number): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as QueueEntry
      if (entry.idGeneration !== generation) continue
      entry.idGeneration = 0
      if (entry.removed || entry.messageId === undefined || entry.pubrel !== undefined) continue
      entry.hasState = true
      this.io.put(KEY.inflight(cids[i] as string, entry.seq), encodeRecord({ m: entry.messageId }))?.catch(() => {})
    }
    entries.length = 0
    cids.length = 0
  }

  /** writes every QoS 1 packet id still in memory only (close) */
  writeLazyIds (): void {
    if (this.#lazyTimer !== undefined) clearTimeout(this.#lazyTimer)
    this.#lazyTimer = undefined
    this.#writeIds(this.#old, this.#oldCids, this.#generation - 1)
    this.#writeIds(this.#young, this.#youngCids, this.#generation)
  }

  /** an entry loaded from disk, in seq order */
  insertRestored (cid: string, entry: QueueEntry): void {
    const q = this.queueOf(cid)
    if (this.seq < entry.seq) this.seq = entry.seq
    this.append(q, entry)
    // keys arrive sorted per client; this keeps order if they do not
    const n = q.entries.length
    const prev = q.entries[n - 2]
    if (prev !== undefined && prev.seq > entry.seq) q.entries.sort((a, b) => a.seq - b.seq)
  }

  /** the highest broker counter among queued messages named by `brokerId` */
  maxBrokerCounter (brokerId: string): number {
    let max = 0
    for (const q of this.queues.values()) {
      for (const e of q.entries) {
        if (e.brokerId !== brokerId || e.brokerKey === undefined) continue
        const n = Number(e.brokerKey.slice(e.brokerKey.lastIndexOf('\u0000') + 1))
        if (n > max) max = n
      }
    }
    return max
  }
}
