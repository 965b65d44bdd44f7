/**
 * What observability reads from other components, each optional and read
 * defensively: the store's statistics, write batches and writability, the
 * shared-subscription module's per-group statistics. A capability a component
 * does not offer is reported as unknown (metric or $SYS topic omitted), never
 * as a made-up number.
 */
import type { CulexBroker } from '../broker.js'
import { clientSubscriptions, persistenceOf } from '../aedes-internals.js'
import { topicLevel } from './topic.js'
import type { GroupStats } from '../shared/dispatcher.js'

/** Counts a store may offer through `stats()`; every field optional. */
export interface StoreStats {
  /** retained messages stored */
  retained?: number
  /** messages in offline queues, in flight included */
  queued?: number
  /** stored subscriptions, of online and offline sessions */
  subscriptions?: number
  /** sessions stored, online and offline */
  sessions?: number
  /** sessions whose client is not connected */
  offlineSessions?: number
}

/** One group commit of the store: how long the write took and how many operations it held. */
export interface StoreBatchInfo {
  durationMs: number
  size: number
}

/** The optional parts of a store observability uses, beside aedes' persistence interface. */
export interface ObservableStore {
  stats?: () => StoreStats
  /** registers a listener for each write batch; may return a function that removes it */
  onBatch?: (listener: (info: StoreBatchInfo) => void) => (() => void) | void
  /** resolves true when the store accepts writes */
  isWritable?: () => Promise<boolean>
  /** registers a listener for messages the store dropped; returns a function that removes it */
  onDrop?: (listener: (event: { reason: string, count: number }) => void) => (() => void) | void
  /** aedes' persistence interface: clients with stored subscriptions, and qos>0 subscriptions */
  countOffline?: () => Promise<{ subsCount: number, clientsCount: number }>
  storeRetained?: (packet: { cmd: 'publish', topic: string, payload: Buffer, qos: 0, retain: true, dup: false }) => Promise<void>
}

/**
 * One shared subscription group as lib/shared reports it (`GroupStats`);
 * `dropped` is optional, so other providers may leave it out.
 */
/** The work-queue figures (lib/shared/policy.ts) a provider may leave out. */
type QueueFigures = 'dropped' | 'abandoned' | 'timedOut' | 'poison' | 'invalidSettles' | 'delayed' | 'deadLetteredBy'
export type SharedGroupStats = Omit<GroupStats, QueueFigures> & Partial<Pick<GroupStats, QueueFigures>>

/** Offered by the shared-subscription module as `broker.sharedGroups`. */
export interface SharedGroupStatsProvider {
  stats (): SharedGroupStats[]
}

/** The store aedes uses (culex's or aedes' in-memory fallback). */
export function storeOf (broker: CulexBroker): ObservableStore | undefined {
  return persistenceOf(broker.aedes) as ObservableStore | undefined
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0

/** `stats()` with only the fields that are real counts; undefined when the store has none or it throws. */
export function readStoreStats (store: ObservableStore | undefined): StoreStats | undefined {
  if (typeof store?.stats !== 'function') return undefined
  let raw: unknown
  try {
    raw = store.stats()
  } catch {
    return undefined
  }
  if (typeof raw !== 'object' || raw === null) return undefined
  const r = raw as Record<string, unknown>
  const out: StoreStats = {}
  for (const key of ['retained', 'queued', 'subscriptions', 'sessions', 'offlineSessions'] as const) {
    const v = r[key]
    if (isCount(v)) out[key] = v
  }
  return out
}

/**
 * Sessions whose client is offline. The store's own `offlineSessions` when it
 * counts them; otherwise derived from aedes' `countOffline()`, whose
 * `clientsCount` is every client with stored subscriptions, connected or not
 * (aedes stores the subscriptions of persistent sessions only, those with a
 * Session Expiry Interval: `client.clean === false`): minus the connected
 * persistent clients holding subscriptions, what remains are the offline
 * sessions that hold subscriptions (an offline session without any holds no
 * messages either). Undefined when the store offers neither.
 */
export async function offlineSessions (broker: CulexBroker, store: ObservableStore | undefined): Promise<number | undefined> {
  const stats = readStoreStats(store)
  if (stats?.offlineSessions !== undefined) return stats.offlineSessions
  if (typeof store?.countOffline !== 'function') return undefined
  let withSubs: number
  try {
    const counted = await store.countOffline()
    if (!isCount(counted?.clientsCount)) return undefined
    withSubs = counted.clientsCount
  } catch {
    return undefined
  }
  let onlineWithSubs = 0
  for (const conn of broker.connections) {
    if (!conn.isAccepted || conn.client.clean) continue
    for (const _ in clientSubscriptions(conn.client)) { onlineWithSubs++; break }
  }
  return Math.max(0, withSubs - onlineWithSubs)
}

/**
 * Subscriptions of every session, online and offline, as mosquitto counts
 * them: the store's count, which holds persistent sessions only (aedes does
 * not store the subscriptions of a clean session), plus the live
 * subscriptions of the connected clean clients. Undefined when the store does
 * not count its subscriptions.
 */
export function subscriptionCount (broker: CulexBroker, store: ObservableStore | undefined): number | undefined {
  const stored = readStoreStats(store)?.subscriptions
  if (stored === undefined) return undefined
  let live = 0
  for (const conn of broker.connections) {
    if (!conn.isAccepted || !conn.client.clean) continue
    for (const _ in clientSubscriptions(conn.client)) live++
  }
  return stored + live
}

/** `broker.sharedGroups.stats()` with malformed entries left out; undefined when no provider is attached. */
export function readSharedGroups (broker: CulexBroker): SharedGroupStats[] | undefined {
  const provider = (broker as { sharedGroups?: SharedGroupStatsProvider }).sharedGroups
  if (typeof provider?.stats !== 'function') return undefined
  let raw: unknown
  try {
    raw = provider.stats()
  } catch {
    return undefined
  }
  if (!Array.isArray(raw)) return undefined
  const out: SharedGroupStats[] = []
  for (const item of raw as unknown[]) {
    if (typeof item !== 'object' || item === null) continue
    const g = item as Record<string, unknown>
    if (typeof g.group !== 'string' || g.group.length === 0) continue
    const fields = ['membersOnline', 'membersOffline', 'queued', 'inflight', 'delivered', 'redelivered', 'deadLettered'] as const
    if (!fields.every(f => isCount(g[f]))) continue
    const stats = {} as SharedGroupStats
    stats.group = g.group
    for (const f of fields) stats[f] = g[f] as number
    for (const f of ['dropped', 'abandoned', 'timedOut', 'poison', 'invalidSettles', 'delayed'] as const) {
      const v = g[f]
      if (isCount(v)) stats[f] = v
    }
    const by = g.deadLetteredBy as Record<string, unknown> | undefined
    if (typeof by === 'object' && by !== null && isCount(by.rejected) && isCount(by['max-deliveries'])) {
      stats.deadLetteredBy = { rejected: by.rejected, 'max-deliveries': by['max-deliveries'] }
    }
    out.push(stats)
  }
  return out
}

/**
 * A group as topic levels under `$SYS/broker/shared/`: `{ShareName}/{filter}`
 * with the filter as one level (its `/`, `+`, `#` percent-encoded), e.g.
 * `$share/workers/jobs/#` → `workers/jobs%2F%23`; a bare name is one level.
 */
export function sharedGroupLevels (group: string): string {
  if (!group.startsWith('$share/')) return topicLevel(group)
  const rest = group.slice('$share/'.length)
  const slash = rest.indexOf('/')
  if (slash < 0) return topicLevel(rest)
  return `${topicLevel(rest.slice(0, slash))}/${topicLevel(rest.slice(slash + 1))}`
}
