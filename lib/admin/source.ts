/**
 * What the dashboard and its API read from the broker and may do to it: one
 * small interface, so the HTTP side is testable with a fake, and one adapter
 * (broker-source.ts) that implements it with culex's public parts. Everything
 * is computed when asked, never kept up to date per message.
 */

import type { SharedGroupStats } from '../metrics/sources.js'

export type ProtocolName = '3.1' | '3.1.1' | '5'

/** Monotonic totals the rate history differentiates (lib/metrics counters). */
export interface Totals {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  dropped: number
  /** CONNECTs accepted since start */
  connects: number
  /** clients connected now */
  connections: number
}

export interface Overview {
  /** the node these figures describe: culex has no cluster yet, so always this one */
  node: string
  version: string
  uptimeSeconds: number
  ready: boolean
  readiness: string[]
  connections: {
    total: number
    max: number
    byTransport: Record<string, number>
    byProtocol: Record<ProtocolName, number>
  }
  sessions: { online: number, offline: number | null }
  /** of every session, online and offline, `$share` memberships included */
  subscriptions: number | null
  retained: number | null
  /** messages in session queues (offline sessions', and in flight) */
  queued: number | null
  /** messages waiting in shared groups' queues for a member */
  queuedInGroups: number
  sharedGroups: number
  messages: { received: number, sent: number, dropped: number, droppedByReason: Record<string, number> }
  bytes: { received: number, sent: number }
}

/** `offline`: a persistent session in the store whose client is not connected */
export type ClientState = 'connected' | 'connecting' | 'offline'

export interface ClientSummary {
  clientId: string
  /** the connection's user name; for an offline session, the user that made it (when stored) */
  username: string | null
  state: ClientState
  /** null for an offline session */
  transport: string | null
  protocol: ProtocolName | null
  remoteAddress: string | null
  cleanStart: boolean
  /** subscriptions, `$share` memberships included */
  subscriptions: number
  inflight: number
  /** messages waiting for the client (an offline session: its stored queue, in flight included) */
  queued: number
  /** when the offline session expires (ms since the epoch); null when connected or never */
  sessionExpiresAt: number | null
  /** the negotiated Session Expiry Interval in seconds, when the store keeps it */
  sessionExpiryInterval: number | null
}

export interface SubscriptionInfo {
  filter: string
  qos: number
  /** the `$share/{group}/{filter}` form for a shared subscription */
  shared: boolean
  noLocal?: boolean
  retainAsPublished?: boolean
  retainHandling?: number
  subscriptionIdentifier?: number
}

export interface WillInfo {
  topic: string
  qos: number
  retain: boolean
  payload: PayloadPreview
  delayInterval?: number
}

export interface ClientDetail extends ClientSummary {
  subscriptionList: SubscriptionInfo[]
  will: WillInfo | null
  /** an offline session's delayed will is published at this time (ms since the epoch) */
  willDelayUntil: number | null
  /** QoS 1/2 messages sent and not yet acknowledged, and messages held for the client's window */
  outboundWindow: number
}

/** A bounded look at a payload: as text, pretty JSON or hex. */
export interface PayloadPreview {
  format: 'text' | 'json' | 'hex' | 'empty'
  preview: string
  bytes: number
  truncated: boolean
}

/** One child of a level of the retained topic tree. */
export interface RetainedNode {
  /** this level's name */
  name: string
  /** the full topic of this node */
  topic: string
  /** retained messages below this node (not counting its own) */
  descendants: number
  /** the node's own retained message */
  message: { qos: number, payload: PayloadPreview } | null
}

export interface RetainedLevel {
  nodes: RetainedNode[]
  /** the scan stopped at its bound: counts are lower bounds */
  truncated: boolean
}

/**
 * A shared group as the API lists it: lib/shared's figures (the work-queue
 * ones when the provider has them, README "Work queues"), the group's two
 * names, `dropped` null when unknown.
 */
export type SharedGroupInfo = Omit<SharedGroupStats, 'dropped'> & {
  shareName: string
  filter: string
  dropped: number | null
  /** work-queue figures (README "Work queues"), when the provider has them */
  abandoned?: number
  timedOut?: number
  poison?: number
  invalidSettles?: number
  delayed?: number
  deadLetteredBy?: { rejected: number, 'max-deliveries': number }
}

export interface AdminSource {
  totals (): Totals
  overview (): Promise<Overview>
  /** connected clients and offline persistent sessions */
  clients (): ClientSummary[]
  client (clientId: string): Promise<ClientDetail | undefined>
  /** DISCONNECT 0x98 Administrative action (3.1.1: the connection is closed); false when not connected */
  disconnect (clientId: string): boolean
  /** the children of `parent` ('' = the root) in the retained tree */
  retainedLevel (parent: string): Promise<RetainedLevel>
  /** false when no message is retained on `topic` */
  deleteRetained (topic: string): Promise<boolean>
  sharedGroups (): SharedGroupInfo[]
  /** moves the dead letters waiting in group `from` back into their groups; undefined when there is no such group */
  replayDeadLetters (from: string, limit: number | undefined): Promise<{ replayed: number, skipped: number } | undefined>
}
