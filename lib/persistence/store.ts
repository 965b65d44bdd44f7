// The store front shared by the memory and level stores: aedes' persistence
// interface over parts that each own their indexes, one per file under
// parts/ (RetainedIndex, SubscriptionIndex, SessionQueues, IncomingQoS2,
// WillStore, SessionRecords, GroupLog; README.md lists them). Every index
// lives in memory; the level store sets a backend on the WriteThrough the
// parts share, so that every mutation is written to LevelDB (group commit,
// the promise resolving once the write is there) and message bodies outside
// the BodyCache budget are read back by key. The memory store is this class
// with no backend. A part's interface is the seam another backend implements.
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { CulexError } from '../errors.js'
import { BodyCache } from './parts/body-cache.js'
import { Drops } from './parts/drops.js'
import { StoreGroupLog, type GroupLog } from './parts/group-log.js'
import { MemoryIncoming, type IncomingQoS2 } from './parts/incoming.js'
import { resolveLimits } from './parts/limits.js'
import { QueueIndex, hasId } from './parts/queue-index.js'
import { MemoryRetained, type RetainedIndex } from './parts/retained.js'
import { MemorySessionQueues, type SessionQueues } from './parts/session-queues.js'
import { MemorySessions, type SessionRecords } from './parts/sessions.js'
import { MemorySubscriptions, type SubscriptionIndex } from './parts/subscriptions.js'
import { MemoryWills, type WillStore } from './parts/wills.js'
import { WriteThrough, type StoreBackend } from './parts/write-through.js'
import type {
  BrokerHeartbeats, BrokerRef, ClientRef, ClientSubscription, CulexPersistence, DropEvent, EnqueueTarget,
  PersistenceLimits, PersistenceStats, QueueSinkFactory, SessionMeta, StoredPacket, StoredSession,
  SubscriptionInput, TopicSubscription
} from './types.js'

export { KEY } from './parts/keys.js'
export type { StoreBackend } from './parts/write-through.js'
export type { SubRecord } from './parts/subscriptions.js'

export { DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES } from './parts/limits.js'

/** what a write that needs no waiting returns */
const DONE: Promise<void> = Promise.resolve()

export abstract class BaseStore implements CulexPersistence {
  abstract readonly kind: 'memory' | 'level' | 'redis'

  protected logger: Logger | undefined
  protected corrupt = 0

  #broker: BrokerRef | undefined
  readonly #io = new WriteThrough()
  readonly #cache: BodyCache
  readonly #drops: Drops
  protected readonly retained: RetainedIndex
  protected readonly subscriptions: SubscriptionIndex
  protected readonly queues: SessionQueues
  protected readonly incoming: IncomingQoS2
  protected readonly wills: WillStore
  protected readonly sessions: SessionRecords
  protected readonly groupLog: StoreGroupLog

  constructor (opts: { limits?: PersistenceLimits, logger?: Logger, cacheBytes?: number }) {
    const limits = resolveLimits(opts.limits)
    this.logger = opts.logger
    const io = this.#io
    this.#cache = new BodyCache(opts.cacheBytes ?? Infinity, io)
    this.#drops = new Drops(opts.logger, limits.queues.overflow)
    this.retained = new MemoryRetained(io, this.#cache, this.#drops, limits.retained)
    this.subscriptions = new MemorySubscriptions(io)
    this.queues = new MemorySessionQueues(new QueueIndex(io, this.#cache, this.#drops, limits.queues))
    this.incoming = new MemoryIncoming(io)
    this.wills = new MemoryWills(io)
    this.sessions = new MemorySessions(io)
    this.groupLog = new StoreGroupLog(io)
  }

  /**
   * Drops a session from every part in memory without writing anything: its
   * durable copy is elsewhere's now (the Redis store, when another node took
   * the session over or before it loads the session again).
   */
  protected forgetSession (clientId: string): void {
    this.#io.silently(() => {
      void this.subscriptions.clear(clientId)
      void this.queues.wipe(clientId)
      void this.incoming.clear(clientId)
      void this.wills.delete(clientId)
      void this.sessions.delete(clientId)
    })
  }

  /** set by the level store once LevelDB is open */
  protected get backend (): StoreBackend | null { return this.#io.backend }
  protected set backend (backend: StoreBackend | null) { this.#io.backend = backend }
  protected get closed (): boolean { return this.#io.closed }
  protected set closed (closed: boolean) { this.#io.closed = closed }

  get broker (): BrokerRef | undefined { return this.#broker }

  abstract open (): Promise<void>
  protected abstract closeBackend (): Promise<void>

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    await this.open()
    // aedes names a message brokerId + brokerCounter, and its counter restarts
    // at 0 with the process. With a fixed broker id, new messages would reuse
    // the names of messages still queued from the previous run (and be taken
    // for them); continue the counter after the highest one stored instead.
    const max = this.queues.maxBrokerCounter(broker.id)
    if (max > 0 && typeof broker.counter === 'number' && broker.counter < max) broker.counter = max
  }

  // retained messages (parts/retained.ts)

  storeRetained (packet: StoredPacket): Promise<void> {
    if (this.closed) return Promise.reject(new CulexError('CULEX_ERR_PERSISTENCE_CLOSED'))
    return this.retained.store(packet)
  }

  createRetainedStream (pattern: string): Readable { return this.retained.stream([pattern]) }
  createRetainedStreamCombi (patterns: string[]): Readable { return this.retained.stream(patterns) }

  /** createRetainedStreamCombi's messages in batches, uncopied and read-only (RetainedIndex.batches) */
  retainedBatches (patterns: string[]): AsyncIterable<readonly StoredPacket[]> { return this.retained.batches(patterns) }

  // subscriptions (parts/subscriptions.ts)

  async addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    this.#io.checkOpen()
    await this.subscriptions.add(client.id, subs)
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    this.#io.checkOpen()
    await this.subscriptions.remove(client.id, topics)
  }

  async cleanSubscriptions (client: ClientRef): Promise<void> {
    this.#io.checkOpen()
    await this.subscriptions.clear(client.id)
  }

  async subscriptionsByClient (client: ClientRef): Promise<ClientSubscription[]> { return this.subscriptions.byClient(client.id) }
  getClientList (topic: string): Readable { return Readable.from(this.subscriptions.clientsWith(topic)) }

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
  holdsSubscriptions (): boolean { return this.subscriptions.matchable > 0 }

  /**
   * Does any stored subscription match `topic` (the set subscriptionsByTopic
   * returns)? Synchronous and without building the list: the gateway asks it
   * for every QoS 1/2 PUBLISH to choose the 0x10 reason code.
   */
  hasSubscriptionsFor (topic: string): boolean { return this.subscriptions.matches(topic) }

  /**
   * `listener` is told each time a session's QoS 1/2 subscription to a
   * filter enters (true) or leaves (false) the ones subscriptionsByTopic
   * matches: a cluster node announces them as its durable routes.
   */
  watchDurableFilters (listener: (filter: string, added: boolean) => void): void { this.subscriptions.watchMatchable(listener) }

  // session queues (parts/session-queues.ts)

  async outgoingEnqueue (sub: EnqueueTarget, packet: StoredPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet)
  }

  outgoingEnqueueCombi (subs: EnqueueTarget[], packet: StoredPacket): Promise<void> {
    // aedes calls it for every QoS 1/2 PUBLISH, mostly with no stored
    // subscription to queue it for: then no async function runs
    if (subs.length === 0 && !this.closed) return DONE
    if (this.closed) return Promise.reject(new CulexError('CULEX_ERR_PERSISTENCE_CLOSED'))
    return this.queues.enqueue(subs, packet)
  }

  async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#io.checkOpen()
    await this.queues.update(client.id, packet)
  }

  async outgoingClearMessageId (client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined> {
    this.#io.checkOpen()
    return await this.queues.clear(client.id, packet)
  }

  outgoingStream (client: ClientRef): Readable { return this.queues.stream(client) }
  setQueueSink (factory: QueueSinkFactory | undefined): void { this.queues.setSink(factory) }

  /**
   * Was this message streamed from the queue with the packet id it had been
   * sent with (a re-delivery, [MQTT-3.3.1-1] DUP 1)? Answers once.
   */
  wasInFlight (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined): boolean {
    return this.queues.wasInFlight(clientId, brokerId, brokerCounter)
  }

  // incoming QoS 2 (parts/incoming.ts)

  async incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#io.checkOpen()
    if (hasId(packet.messageId)) await this.incoming.put(client.id, packet.messageId, packet)
  }

  async incomingGetPacket (client: ClientRef, packet: StoredPacket): Promise<StoredPacket> {
    const found = hasId(packet.messageId) ? this.incoming.get(client.id, packet.messageId) : undefined
    if (found === undefined) throw new CulexError('CULEX_ERR_NO_SUCH_PACKET')
    return found
  }

  async incomingDelPacket (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#io.checkOpen()
    const deleted = hasId(packet.messageId) ? this.incoming.delete(client.id, packet.messageId) : undefined
    if (deleted === undefined) throw new CulexError('CULEX_ERR_NO_SUCH_PACKET')
    await deleted.written
  }

  /** drops a session's inbound QoS 2 state (Clean Start, [MQTT-3.1.2-4]); aedes 1.x calls it too */
  async cleanIncoming (client: ClientRef): Promise<void> {
    this.#io.checkOpen()
    await this.incoming.clear(client.id)
  }

  // wills (parts/wills.ts)

  async putWill (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.#io.checkOpen()
    // aedes (and its abstract suite) expect the will to be stamped in place
    packet.brokerId = this.#broker?.id
    packet.clientId = client.id
    await this.wills.put(client.id, packet)
  }

  async getWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.wills.get(client.id) }

  async delWill (client: ClientRef): Promise<StoredPacket | undefined> {
    this.#io.checkOpen()
    const taken = this.wills.take(client.id)
    await taken?.written
    return taken?.will
  }

  streamWill (brokers: BrokerHeartbeats = {}): Readable {
    return Readable.from(this.wills.due(brokers, (cid) => this.sessions.willDelayUntil(cid), Date.now()))
  }

  // sessions (parts/sessions.ts)

  async putSession (clientId: string, meta: SessionMeta): Promise<void> {
    this.#io.checkOpen()
    await this.sessions.put(clientId, meta)
  }

  async getSession (clientId: string): Promise<SessionMeta | undefined> { return this.sessions.get(clientId) }

  async delSession (clientId: string): Promise<void> {
    this.#io.checkOpen()
    await this.sessions.delete(clientId)
  }

  async * listSessions (): AsyncIterable<{ clientId: string, meta: SessionMeta }> {
    yield * this.sessions.list()
  }

  storedSessions (): StoredSession[] {
    return this.sessions.list().map(({ clientId, meta }) => this.#withCounts(clientId, meta))
  }

  storedSession (clientId: string): StoredSession | undefined {
    const meta = this.sessions.get(clientId)
    return meta === undefined ? undefined : this.#withCounts(clientId, meta)
  }

  #withCounts (clientId: string, meta: SessionMeta): StoredSession {
    return { clientId, meta, subscriptions: this.subscriptions.countOf(clientId), queued: this.queues.queuedOf(clientId) }
  }

  /** everything a session holds, in every part */
  async wipeSession (clientId: string): Promise<void> {
    this.#io.checkOpen()
    let write = this.subscriptions.clear(clientId)
    // a session that ended leaves its shared subscription groups too
    write = this.groupLog.removeClient(clientId) ?? write
    write = this.queues.wipe(clientId) ?? write
    write = this.incoming.clear(clientId) ?? write
    write = this.wills.delete(clientId) ?? write
    write = this.sessions.delete(clientId) ?? write
    await write
  }

  /** Where lib/shared keeps what must survive a restart, in this store (parts/group-log.ts). */
  sharedStore (): GroupLog { return this.groupLog }

  // stats (drops: parts/drops.ts)

  stats (): PersistenceStats {
    return {
      retained: this.retained.size,
      queued: this.queues.queued,
      queuedBytes: this.queues.queuedBytes,
      inflight: this.queues.inflight,
      pubrels: this.queues.pubrels,
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

  onDrop (listener: (event: DropEvent) => void): () => void { return this.#drops.onDrop(listener) }

  async destroy (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // the ids of messages still in flight, for the next run [MQTT-4.4.0-1]
    this.queues.flush()
    await this.backend?.writer.flush()
    await this.closeBackend()
  }

  async close (): Promise<void> { await this.destroy() }
}
