/**
 * The AdminSource of a running culex: reads the broker's connections, the
 * traffic counters, the store and the shared-subscription groups through
 * their public parts (and lib/aedes-internals.ts for a client's live
 * subscriptions and will). Nothing here runs unless the API is asked.
 */
import { hostname } from 'node:os'
import type { Readable } from 'node:stream'
import type { CulexBroker } from '../broker.js'
import type { Connection } from '../protocol/connection.js'
import { ReasonCode } from '../protocol/reason-codes.js'
import { clientSubscriptions, clientWill } from '../aedes-internals.js'
import { TRANSPORTS, type TrafficCounters } from '../metrics/counters.js'
import { offlineSessions, readSharedGroups, readStoreStats, storeOf, subscriptionCount } from '../metrics/sources.js'
import type { ReadinessReport } from '../metrics/health.js'
import type { ClientSubscription, StoredPacket, StoredSession } from '../persistence/index.js'
import { version } from '../version.js'
import { previewPayload } from './preview.js'
import type {
  AdminSource, ClientDetail, ClientSummary, Overview, ProtocolName, RetainedLevel, RetainedNode, SharedGroupInfo, SubscriptionInfo, Totals, WillInfo
} from './source.js'

/** retained messages looked at, at most, to list one level of the tree */
export const RETAINED_SCAN_LIMIT = 100000

const PROTOCOLS: Record<number, ProtocolName> = { 3: '3.1', 4: '3.1.1', 5: '5' }

export interface BrokerSourceOptions {
  broker: CulexBroker
  counters: TrafficCounters
  readiness: () => Promise<ReadinessReport | undefined>
  startedAt?: number
}

interface RetainedStore {
  createRetainedStream?: (pattern: string) => Readable
  storeRetained?: (packet: object) => Promise<void> | void
}

interface RetainedPacket { topic: string, payload?: Buffer | string, qos?: number }

/** What culex's stores offer about persistent sessions (aedes' in-memory store: none of it). */
interface SessionStore {
  storedSessions?: () => StoredSession[]
  storedSession?: (clientId: string) => StoredSession | undefined
  subscriptionsByClient?: (client: { id: string }) => Promise<ClientSubscription[]>
  getWill?: (client: { id: string }) => Promise<StoredPacket | undefined>
}

/** a live client's will (aedes) or an offline session's stored one */
function willInfo (will: { topic?: string, qos?: number, retain?: boolean, payload?: Buffer | string, properties?: { willDelayInterval?: number } } | undefined): WillInfo | null {
  if (will === undefined || typeof will.topic !== 'string') return null
  return {
    topic: will.topic,
    qos: will.qos ?? 0,
    retain: will.retain ?? false,
    payload: previewPayload(will.payload),
    ...(will.properties?.willDelayInterval !== undefined ? { delayInterval: will.properties.willDelayInterval } : {})
  }
}

/** stored and live subscriptions plus `$share` memberships, which live in the groups: what the client list adds up to */
function withMemberships (subscriptions: number | undefined, groups: ReadonlyArray<{ membersOnline: number, membersOffline: number }>): number | null {
  if (subscriptions === undefined) return null
  let members = 0
  for (const g of groups) members += g.membersOnline + g.membersOffline
  return subscriptions + members
}

const byFilter = (a: SubscriptionInfo, b: SubscriptionInfo): number => a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0

export function createBrokerSource (opts: BrokerSourceOptions): AdminSource {
  const { broker, counters } = opts
  const startedAt = opts.startedAt ?? Date.now()

  function find (clientId: string): Connection | undefined {
    for (const conn of broker.connections) if (conn.client.id === clientId) return conn
    return undefined
  }

  function summary (conn: Connection): ClientSummary {
    const subs = clientSubscriptions(conn.client)
    let count = 0
    for (const _ in subs) count++
    count += broker.sharedGroups?.membershipCount(conn.client.id) ?? 0
    return {
      clientId: conn.client.id ?? conn.connectClientId ?? '',
      username: conn.username ?? null,
      state: conn.isAccepted ? 'connected' : 'connecting',
      transport: conn.meta.transport,
      protocol: conn.version === undefined ? null : PROTOCOLS[conn.version] ?? null,
      remoteAddress: conn.meta.remoteAddress ?? null,
      cleanStart: !conn.resumesSession,
      subscriptions: count,
      inflight: conn.inflightOutbound,
      queued: conn.queuedOutbound,
      sessionExpiresAt: null,
      sessionExpiryInterval: sessionStore().storedSession?.(conn.client.id)?.meta.expiryInterval ?? null
    }
  }

  function sessionStore (): SessionStore {
    return (storeOf(broker) ?? {}) as SessionStore
  }

  /** client ids with a connection, accepted or not: their sessions are not offline */
  function liveIds (): Set<string> {
    const ids = new Set<string>()
    for (const conn of broker.connections) {
      const id = conn.client.id ?? conn.connectClientId
      if (id !== undefined) ids.add(id)
    }
    return ids
  }

  function offlineSummary (s: StoredSession): ClientSummary {
    return {
      clientId: s.clientId,
      username: s.meta.owner ?? null,
      state: 'offline',
      transport: null,
      protocol: null,
      remoteAddress: null,
      cleanStart: false,
      subscriptions: s.subscriptions + (broker.sharedGroups?.membershipCount(s.clientId) ?? 0),
      inflight: 0,
      queued: s.queued,
      sessionExpiresAt: s.meta.expiresAt,
      sessionExpiryInterval: s.meta.expiryInterval ?? null
    }
  }

  function sharedSubscriptions (clientId: string): SubscriptionInfo[] {
    return (broker.sharedGroups?.membershipsOf(clientId) ?? []).map((m) => {
      const info: SubscriptionInfo = { filter: m.group, qos: m.qos, shared: true, retainAsPublished: m.retainAsPublished }
      if (m.subscriptionIdentifier !== undefined) info.subscriptionIdentifier = m.subscriptionIdentifier
      return info
    })
  }

  async function offlineDetail (clientId: string): Promise<ClientDetail | undefined> {
    const store = sessionStore()
    const stored = store.storedSession?.(clientId)
    if (stored === undefined) return undefined
    const subs = await store.subscriptionsByClient?.({ id: clientId }) ?? []
    const list: SubscriptionInfo[] = subs.map((s) => {
      const info: SubscriptionInfo = { filter: s.topic, qos: s.qos, shared: false }
      if (s.nl !== undefined) info.noLocal = Boolean(s.nl)
      if (s.rap !== undefined) info.retainAsPublished = Boolean(s.rap)
      if (s.rh !== undefined) info.retainHandling = s.rh
      if (s.subscriptionIdentifier !== undefined) info.subscriptionIdentifier = s.subscriptionIdentifier
      return info
    })
    list.push(...sharedSubscriptions(clientId))
    const will = await store.getWill?.({ id: clientId })
    return {
      ...offlineSummary(stored),
      subscriptionList: list.sort(byFilter),
      will: willInfo(will),
      willDelayUntil: stored.meta.willDelayUntil ?? null,
      outboundWindow: 0
    }
  }

  function subscriptionList (conn: Connection): SubscriptionInfo[] {
    const out: SubscriptionInfo[] = []
    for (const [filter, s] of Object.entries(clientSubscriptions(conn.client))) {
      const info: SubscriptionInfo = { filter, qos: s.qos, shared: false }
      if (s.nl !== undefined) info.noLocal = Boolean(s.nl)
      if (s.rap !== undefined) info.retainAsPublished = Boolean(s.rap)
      if (s.rh !== undefined) info.retainHandling = s.rh
      if (s.si !== undefined) info.subscriptionIdentifier = s.si
      out.push(info)
    }
    out.push(...sharedSubscriptions(conn.client.id))
    return out.sort(byFilter)
  }

  function retainedStore (): RetainedStore {
    return (storeOf(broker) ?? {}) as RetainedStore
  }

  async function scanRetained (pattern: string, visit: (p: RetainedPacket) => boolean): Promise<void> {
    const stream = retainedStore().createRetainedStream?.(pattern)
    if (stream === undefined) return
    try {
      for await (const packet of stream as AsyncIterable<RetainedPacket>) {
        if (!visit(packet)) break
      }
    } finally {
      stream.destroy()
    }
  }

  /** offline sessions: the store's records without a connection (as the client list shows them), else derived as for /metrics */
  async function offlineCount (): Promise<number | null> {
    const stored = sessionStore().storedSessions?.()
    if (stored === undefined) return await offlineSessions(broker, storeOf(broker)) ?? null
    const live = liveIds()
    let n = 0
    for (const s of stored) if (!live.has(s.clientId)) n++
    return n
  }

  return {
    totals (): Totals {
      let connects = 0
      for (const t of TRANSPORTS) connects += counters.accepted[t]
      return {
        messagesIn: counters.messagesReceived,
        messagesOut: counters.messagesSent,
        bytesIn: counters.bytesReceived,
        bytesOut: counters.bytesSent,
        dropped: counters.messagesDropped,
        connects,
        connections: counters.connectedNow
      }
    },

    async overview (): Promise<Overview> {
      const store = storeOf(broker)
      const stats = readStoreStats(store)
      const byTransport: Record<string, number> = {}
      const byProtocol: Record<ProtocolName, number> = { '3.1': 0, '3.1.1': 0, 5: 0 }
      for (const t of TRANSPORTS) {
        const perVersion = counters.connected[t]
        byTransport[t] = (perVersion[3] ?? 0) + (perVersion[4] ?? 0) + (perVersion[5] ?? 0)
        byProtocol['3.1'] += perVersion[3] ?? 0
        byProtocol['3.1.1'] += perVersion[4] ?? 0
        byProtocol['5'] += perVersion[5] ?? 0
      }
      const report = await opts.readiness()
      const groups = readSharedGroups(broker) ?? []
      return {
        node: hostname(),
        version,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        ready: report?.status === 'ready',
        readiness: report?.reasons ?? [],
        connections: { total: counters.connectedNow, max: counters.maxConnected, byTransport, byProtocol },
        sessions: { online: counters.connectedNow, offline: await offlineCount() },
        subscriptions: withMemberships(subscriptionCount(broker, store), groups),
        retained: stats?.retained ?? null,
        queued: stats?.queued ?? null,
        queuedInGroups: groups.reduce((n, g) => n + g.queued, 0),
        sharedGroups: groups.length,
        messages: {
          received: counters.messagesReceived,
          sent: counters.messagesSent,
          dropped: counters.messagesDropped,
          droppedByReason: Object.fromEntries(counters.dropped)
        },
        bytes: { received: counters.bytesReceived, sent: counters.bytesSent }
      }
    },

    clients () {
      const out: ClientSummary[] = []
      for (const conn of broker.connections) {
        if (conn.client.id === undefined && conn.connectClientId === undefined) continue
        out.push(summary(conn))
      }
      const stored = sessionStore().storedSessions?.()
      if (stored !== undefined && stored.length > 0) {
        const live = liveIds()
        for (const s of stored) if (!live.has(s.clientId)) out.push(offlineSummary(s))
      }
      return out
    },

    async client (clientId) {
      const conn = find(clientId)
      if (conn === undefined) return await offlineDetail(clientId)
      const detail: ClientDetail = {
        ...summary(conn),
        subscriptionList: subscriptionList(conn),
        will: willInfo(clientWill(conn.client)),
        willDelayUntil: null,
        outboundWindow: conn.outboundWindow
      }
      return detail
    },

    disconnect (clientId) {
      const conn = find(clientId)
      if (conn === undefined) return false
      conn.disconnect(ReasonCode.AdministrativeAction, 'disconnected by an administrator')
      return true
    },

    async retainedLevel (parent) {
      const nodes = new Map<string, RetainedNode>()
      let seen = 0
      let truncated = false
      const skip = parent === '' ? 0 : parent.length + 1
      await scanRetained(parent === '' ? '#' : parent + '/#', (packet) => {
        if (++seen > RETAINED_SCAN_LIMIT) { truncated = true; return false }
        if (packet.topic === parent) return true
        const rest = packet.topic.slice(skip)
        const slash = rest.indexOf('/')
        const name = slash < 0 ? rest : rest.slice(0, slash)
        let node = nodes.get(name)
        if (node === undefined) {
          node = { name, topic: parent === '' ? name : `${parent}/${name}`, descendants: 0, message: null }
          nodes.set(name, node)
        }
        if (slash < 0) node.message = { qos: packet.qos ?? 0, payload: previewPayload(packet.payload) }
        else node.descendants++
        return true
      })
      const level: RetainedLevel = { nodes: [...nodes.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0), truncated }
      return level
    },

    async deleteRetained (topic) {
      let found = false
      await scanRetained(topic, (packet) => { found = packet.topic === topic; return !found })
      const store = retainedStore()
      if (!found || typeof store.storeRetained !== 'function') return false
      // an empty retained payload removes the retained message [MQTT-3.3.1-6]
      await store.storeRetained({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })
      return true
    },

    sharedGroups () {
      return (readSharedGroups(broker) ?? []).map((g): SharedGroupInfo => {
        const rest = g.group.startsWith('$share/') ? g.group.slice('$share/'.length) : g.group
        const slash = rest.indexOf('/')
        return {
          ...g,
          shareName: slash < 0 ? rest : rest.slice(0, slash),
          filter: slash < 0 ? '' : rest.slice(slash + 1),
          dropped: g.dropped ?? null
        }
      }).sort((a, b) => a.group < b.group ? -1 : a.group > b.group ? 1 : 0)
    },

    async replayDeadLetters (from, limit) {
      return await broker.sharedGroups?.replayDeadLetters(from, limit)
    }
  }
}
