// Public types of culex's durable store. The method set mirrors the aedes
// *async persistence interface* (aedes-persistence types/asyncPersistence.d.ts,
// called by aedes 2.0.0-beta.1), typed structurally so that the store does not
// depend on aedes' own (partly `any`) declarations, plus culex extras:
// session metadata, statistics, drop events and an explicit open().
import type { Redis } from 'ioredis'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'

export type QoS = 0 | 1 | 2

/** MQTT 5 PUBLISH / will properties as mqtt-packet decodes them. */
export interface PacketProperties {
  payloadFormatIndicator?: boolean
  messageExpiryInterval?: number
  topicAlias?: number
  responseTopic?: string
  correlationData?: Buffer
  userProperties?: Record<string, string | string[]>
  subscriptionIdentifier?: number | number[]
  contentType?: string
  willDelayInterval?: number
  [name: string]: unknown
}

/**
 * A packet as aedes hands it to persistence (an aedes-packet object, a PUBREL,
 * a will). Only `cmd` is always present; everything else depends on the kind.
 */
export interface StoredPacket {
  cmd?: string
  topic?: string
  payload?: Buffer | string
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  properties?: PacketProperties
  /** absolute expiry deadline (ms since epoch) that aedes derives from the Message Expiry Interval */
  messageExpiry?: number
  clientId?: string
  nl?: boolean
  [field: string]: unknown
}

/** aedes passes its Client objects; the store only reads `id`. */
export interface ClientRef {
  readonly id: string
}

/** What setup() needs from the broker (aedes' Aedes instance satisfies it). */
export interface BrokerRef {
  readonly id: string
  /** aedes' message counter (brokerCounter of the next packet is counter + 1) */
  counter?: number
}

export interface SubscriptionInput {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

/** A subscription as returned by subscriptionsByClient (aedes restores it on a non-clean reconnect). */
export interface ClientSubscription {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

/** A subscription as returned by subscriptionsByTopic (one per matching clientId + filter). */
export interface TopicSubscription {
  clientId: string
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
}

/** A target handed to outgoingEnqueue / outgoingEnqueueCombi. */
export interface EnqueueTarget {
  clientId: string
  /** the matching subscription's filter; absent: a message for the client itself, queued as it comes */
  topic?: string
  qos?: number
  /** the subscription's Retain As Published */
  rap?: boolean
}

/** Known broker ids with their last heartbeat (aedes' `broker.brokers`). */
export type BrokerHeartbeats = Readonly<Record<string, unknown>>

/**
 * Durable session metadata kept next to the aedes session state.
 * `expiresAt` is an absolute deadline in ms; `null` means "no deadline yet"
 * (the client is connected, or the session never expires).
 */
export interface SessionMeta {
  expiresAt: number | null
  /** absolute deadline (ms) at which a delayed will must be published */
  willDelayUntil?: number
  /** the negotiated Session Expiry Interval in seconds (0xFFFFFFFF = never) */
  expiryInterval?: number
  /**
   * who made the session (lib/protocol/session-claim.ts): the authenticated
   * user name, null for an anonymous client; absent in records written
   * before owners were kept
   */
  owner?: string | null
}

/** A stored session and what it holds, as the admin API lists it (counts only, no message read). */
export interface StoredSession {
  clientId: string
  /** a copy of the session record */
  meta: SessionMeta
  /** subscriptions stored for the session (shared ones live in the group log) */
  subscriptions: number
  /** messages queued for the session, in flight included */
  queued: number
}

export type DropReason = 'queue-full' | 'expired' | 'retained-limit'

export interface DropEvent {
  /** the session that lost messages; null for retained messages */
  clientId: string | null
  reason: DropReason
  count: number
}

export interface PersistenceStats {
  /** retained messages stored */
  retained: number
  /** publish messages in offline queues (including in flight) */
  queued: number
  /** accounted bytes (payload + topic) of queued messages */
  queuedBytes: number
  /** queued messages that have a packet identifier assigned (in flight) */
  inflight: number
  /** QoS 2 PUBRELs awaiting PUBCOMP */
  pubrels: number
  /** inbound QoS 2 messages awaiting PUBREL */
  incoming: number
  /** stored subscriptions (all QoS) */
  subscriptions: number
  /** clients with at least one stored subscription */
  clients: number
  wills: number
  sessions: number
  /** cumulative drops since open */
  dropped: { queueFull: number; expired: number; retainedLimit: number }
  /** values that could not be decoded at open and were skipped */
  corrupt: number
  /** bytes of message bodies kept in memory by the level store's cache */
  cachedBytes: number
}

export type OverflowPolicy = 'drop-oldest' | 'refuse'

export interface PersistenceLimits {
  /** per session; default 1000 */
  maxQueuedMessages?: number
  /** per session, payload + topic bytes; default 10 MiB */
  maxQueuedBytes?: number
  /** default 'drop-oldest' (oldest QoS 0 first, then the oldest) */
  overflow?: OverflowPolicy
  /** maximum number of retained messages; default unlimited */
  maxRetained?: number
  /** maximum payload bytes of one retained message; default unlimited */
  maxRetainedPayload?: number
}

export interface PersistenceOptions {
  kind: 'memory' | 'level' | 'redis'
  /** required for level */
  dataDir?: string
  /** level: sync writes (survive power loss, not just a process crash) */
  fsync?: boolean
  limits?: PersistenceLimits
  logger?: Logger
  /** level: bytes of message bodies kept in memory (default 64 MiB); bodies beyond it are read from disk */
  cacheBytes?: number
  /** required for redis: its connection (a cluster node's) or URL, key prefix, fencing (redis.ts) */
  redis?: { client?: Redis, url?: string, prefix?: string, fenced?: boolean }
}

/** The aedes async persistence interface, as aedes 2.0.0-beta.1 calls it. */
export interface AedesAsyncPersistence {
  setup (broker: BrokerRef): Promise<void>
  storeRetained (packet: StoredPacket): Promise<void>
  createRetainedStream (pattern: string): Readable
  createRetainedStreamCombi (patterns: string[]): Readable
  addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void>
  removeSubscriptions (client: ClientRef, topics: string[]): Promise<void>
  subscriptionsByClient (client: ClientRef): Promise<ClientSubscription[]>
  countOffline (): Promise<{ subsCount: number, clientsCount: number }>
  subscriptionsByTopic (topic: string): Promise<TopicSubscription[]>
  cleanSubscriptions (client: ClientRef): Promise<void>
  outgoingEnqueue (sub: EnqueueTarget, packet: StoredPacket): Promise<void>
  outgoingEnqueueCombi (subs: EnqueueTarget[], packet: StoredPacket): Promise<void>
  outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void>
  outgoingClearMessageId (client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined>
  outgoingStream (client: ClientRef): Readable
  incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void>
  incomingGetPacket (client: ClientRef, packet: StoredPacket): Promise<StoredPacket>
  incomingDelPacket (client: ClientRef, packet: StoredPacket): Promise<void>
  putWill (client: ClientRef, packet: StoredPacket): Promise<void>
  getWill (client: ClientRef): Promise<StoredPacket | undefined>
  delWill (client: ClientRef): Promise<StoredPacket | undefined>
  streamWill (brokers?: BrokerHeartbeats): Readable
  getClientList (topic: string): Readable
  destroy (): Promise<void>
}

/**
 * Where a resumed session's queued QoS 1 messages can go without aedes'
 * emptyQueue stream, which sends one message per event-loop turn (the
 * protocol gateway, lib/protocol/flows/fast-paths.ts). It applies the steps aedes
 * would to each message (authorizeForward, expiry) and sends it.
 */
export interface QueueSink {
  /** how many more QoS 1 messages the client takes now (its window) */
  room (): number
  /** the next packet identifier of the client's sequence (the one aedes would assign) */
  nextPacketId (): number
  /** false: not sent, and the store drops it from the queue, as aedes would */
  send (packet: StoredPacket): boolean
}

/**
 * A client's PUBACK for a QoS 1 message a sink sent, taken by the store
 * itself: the message is cleared as `outgoingClearMessageId` clears it, with
 * no promise and no packet made for aedes' 'ack' event. false: the store
 * holds no such message (or is closed); aedes' path then clears it.
 */
export type QueueAck = (messageId: number) => boolean

/** The sink for a client's queue, asked each time aedes streams it; undefined = aedes' path. */
export type QueueSinkFactory = (client: ClientRef, acknowledge: QueueAck) => QueueSink | undefined

/**
 * A store whose sessions live in a cluster's Redis (redis.ts): a node loads
 * a session when it claims its client id, and drops its copy when another
 * node claims it.
 */
export interface ClusterSessions {
  /** the session record of a client id about to be claimed, wherever the session is */
  sessionRecord (clientId: string): Promise<SessionMeta | undefined>
  /** after a claim at `epoch` on this node: the session adopted at that epoch and loaded (Clean Start: wiped) */
  hydrate (clientId: string, epoch: number, opts: { clean: boolean }): Promise<void>
  /** another node claimed the session, or it expired cluster-wide; with `epoch`, only if this node holds it at that epoch or before (not claimed here again since) */
  handOver (clientId: string, epoch?: number): void
  /** the epoch this node holds the session at; undefined when it holds none */
  epochOf? (clientId: string): number | undefined
  /** whether this node holds the session and has it in memory (not while a claim here is still loading it) */
  loaded? (clientId: string): boolean
  /** where messages queued for a session whose write cannot be made here go (another node took it meanwhile); their publishers wait for it */
  redirectQueued? (redirect: (clientId: string, packets: StoredPacket[]) => Promise<void>): void
  /** told of a copy dropped because Redis refused its write (another node adopted the session), before it goes */
  watchRefusedCopies? (listener: (clientId: string) => void): void
}

/** culex's store: the aedes interface plus session metadata, stats and drop events. */
export interface CulexPersistence extends AedesAsyncPersistence {
  readonly kind: 'memory' | 'level' | 'redis'
  /** the broker passed to setup() (aedes' abstract test suite reads it) */
  readonly broker: BrokerRef | undefined
  /** opens the store (level: the data directory); setup() calls it; idempotent */
  open (): Promise<void>
  putSession (clientId: string, meta: SessionMeta): Promise<void>
  getSession (clientId: string): Promise<SessionMeta | undefined>
  delSession (clientId: string): Promise<void>
  listSessions (): AsyncIterable<{ clientId: string, meta: SessionMeta }>
  /** every stored session with its subscription and queue counts, read from memory (the admin API) */
  storedSessions (): StoredSession[]
  /** one stored session with its counts; undefined when there is no record */
  storedSession (clientId: string): StoredSession | undefined
  /** drops a session's inbound QoS 2 state (for Clean Start; aedes 1.x calls it as well) */
  cleanIncoming (client: ClientRef): Promise<void>
  /** removes everything a session owns: subscriptions, queue, in-flight, incoming, will, metadata */
  wipeSession (clientId: string): Promise<void>
  stats (): PersistenceStats
  /** createRetainedStreamCombi's messages in batches, as stored: read-only, not copied (the gateway's retained delivery) */
  retainedBatches (patterns: string[]): AsyncIterable<readonly StoredPacket[]>
  /** does any stored subscription match `topic`? (synchronous subscriptionsByTopic(topic).length > 0) */
  hasSubscriptionsFor (topic: string): boolean
  /** registers a listener for dropped messages; returns a function that removes it */
  onDrop (listener: (event: DropEvent) => void): () => void
  /** hands resumed sessions' queues to the gateway (see QueueSink) */
  setQueueSink (factory: QueueSinkFactory | undefined): void
  /** alias of destroy(); safe to call more than once */
  close (): Promise<void>
}
