/**
 * `$SYS` topics with mosquitto's names and formats (mosquitto(8), "Broker
 * Status"), published by the broker itself every `sysInterval` seconds as
 * retained QoS 0 messages. As in mosquitto, a value is published when it
 * changed since the last publication (all of them on the first), so idle
 * brokers stay quiet; `uptime` changes every time. Subscribers see them
 * through `$SYS/#`, not `#` [MQTT-4.7.2-1].
 *
 * Differences from mosquitto, because culex counts PUBLISH packets only (the
 * gateway's observer reports no other packet type):
 * `$SYS/broker/messages/{received,sent}` and their loads count PUBLISH
 * packets, the same as `publish/messages/*`; there is no `bytes/*` beside
 * `publish/bytes/*`.
 *
 * A cluster node (lib/cluster/) publishes every value under
 * `$SYS/brokers/{node id}/` as well, and `cluster/nodes`: the live nodes it
 * sees. Every interval it routes that whole tree, changed or not, to the
 * nodes with a subscriber matching it: a node that joined, or whose first
 * `$SYS` subscriber came, after a value last changed gets it too, within
 * one interval. Those nodes keep the values as retained messages of their
 * own and pass on only the changes (lib/broker/cluster-sys.ts); nothing of
 * `$SYS` goes to Redis' retained messages. It also publishes the cluster
 * totals under `$SYS/cluster/`: the figures every live node writes to Redis
 * with its lease, summed.
 */
import { clusterGroupTopics } from './cluster-shared.js'
import type { Logger } from 'pino'
import type { CulexBroker } from '../broker.js'
import { version } from '../version.js'
import { nodeSysPrefix } from '../protocol/topic.js'
import type { TrafficCounters } from './counters.js'
import { offlineSessions, readSharedGroups, readStoreStats, sharedGroupLevels, storeOf, subscriptionCount } from './sources.js'

export interface SysTopicsOptions {
  broker: CulexBroker
  counters: TrafficCounters
  /** seconds between publications; > 0 */
  intervalSeconds: number
  logger: Logger
}

export interface SysTopics {
  stop (): void
}

export const SYS_PREFIX = '$SYS/broker/'
/** The cluster's totals, the same on every node. */
export const CLUSTER_SYS_PREFIX = '$SYS/cluster/'
/** which summed node figure (lib/cluster/figures.ts) each total publishes */
const CLUSTER_TOTALS = [['clients/connected', 'connections'], ['messages/received', 'received'], ['messages/sent', 'sent'], ['subscriptions/count', 'subscriptions']] as const
const SHARED_LEAVES = ['members', 'members/online', 'queued', 'inflight', 'delivered', 'redelivered', 'abandoned', 'timedout', 'poison', 'deadlettered'] as const

/** The exponentially damped moving averages mosquitto publishes under `load/`, over 1, 5 and 15 minutes. */
const LOAD_WINDOWS = [['1min', 60], ['5min', 300], ['15min', 900]] as const

/**
 * mosquitto's load: each update turns the messages counted since the last
 * one into a rate per minute, and moves the average towards it by
 * 1 - exp(-elapsed / window), like the Unix load average.
 */
export class DampedLoad {
  private readonly values: number[] = LOAD_WINDOWS.map(() => 0)
  private lastCount: number

  constructor (count: number) {
    this.lastCount = count
  }

  update (count: number, elapsedSeconds: number): number[] {
    const perMinute = ((count - this.lastCount) * 60) / elapsedSeconds
    this.lastCount = count
    LOAD_WINDOWS.forEach(([, window], i) => {
      const exponent = Math.exp(-elapsedSeconds / window)
      this.values[i] = perMinute + exponent * ((this.values[i] ?? 0) - perMinute)
    })
    return [...this.values]
  }

  current (): number[] { return [...this.values] }
}

export function startSysTopics (opts: SysTopicsOptions): SysTopics {
  const { broker, counters, logger } = opts
  const aedes = broker.aedes
  const store = storeOf(broker)
  const startedAt = Date.now()
  const published = new Map<string, string>()
  /** shared groups published last time, to clear the topics of groups that are gone */
  let groups = new Set<string>()
  /** the cluster-wide group topics published last time (`$SYS/cluster/shared/...`), likewise */
  let clusterGroups = new Set<string>()
  const receivedLoad = new DampedLoad(counters.messagesReceived)
  const sentLoad = new DampedLoad(counters.messagesSent)
  let lastTick = startedAt
  let first = true
  let running = false
  let stopped = false

  const send = (topic: string, value: string): void => {
    aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(value), qos: 0, retain: true, dup: false }, (err) => {
      if (err) logger.debug({ err, topic }, '$SYS publication failed')
    })
  }
  const publish = (topic: string, value: string): void => {
    published.set(topic, value)
    send(topic, value)
    // a cluster node publishes each value under its own name as well, so a fleet's figures stay apart
    const nodeId = broker.cluster?.nodeId
    if (nodeId && topic.startsWith(SYS_PREFIX)) send(nodeSysPrefix(nodeId) + topic.slice(SYS_PREFIX.length), value)
  }
  const publishIfChanged = (topic: string, value: string): void => {
    if (published.get(topic) !== value) publish(topic, value)
  }
  // [MQTT-3.3.1-6] an empty retained message removes the stale value of a group that is gone
  const clear = (topic: string): void => {
    publish(topic, '')
    published.delete(topic)
    toCluster(topic, '')
  }
  /** a `$SYS/broker/` value, under this node's name, to the other nodes with a matching subscriber */
  const toCluster = (topic: string, value: string): void => {
    const cluster = broker.cluster
    if (cluster === undefined || cluster.nodeId === '' || !topic.startsWith(SYS_PREFIX)) return
    cluster.route({ topic: nodeSysPrefix(cluster.nodeId) + topic.slice(SYS_PREFIX.length), payload: Buffer.from(value), retain: true })
  }

  const tick = async (): Promise<void> => {
    if (running || stopped || aedes.closed) return
    running = true
    try {
      const values = new Map<string, string>()
      const set = (name: string, value: number | string): void => { values.set(SYS_PREFIX + name, String(value)) }
      const now = Date.now()

      set('version', `culex version ${version}`)
      set('uptime', `${Math.floor((now - startedAt) / 1000)} seconds`)

      const offline = await offlineSessions(broker, store)
      set('clients/connected', counters.connectedNow)
      set('clients/maximum', counters.maxConnected)
      if (offline !== undefined) {
        set('clients/disconnected', offline)
        set('clients/total', counters.connectedNow + offline)
      }

      for (const [name, n] of [
        ['messages/received', counters.messagesReceived],
        ['messages/sent', counters.messagesSent],
        ['publish/messages/received', counters.messagesReceived],
        ['publish/messages/sent', counters.messagesSent],
        ['publish/messages/dropped', counters.messagesDropped],
        ['publish/bytes/received', counters.bytesReceived],
        ['publish/bytes/sent', counters.bytesSent]
      ] as const) set(name, n)

      const elapsed = (now - lastTick) / 1000
      lastTick = now
      const loads = first || elapsed <= 0
        ? [['received', receivedLoad.current()], ['sent', sentLoad.current()]] as const
        : [['received', receivedLoad.update(counters.messagesReceived, elapsed)], ['sent', sentLoad.update(counters.messagesSent, elapsed)]] as const
      for (const [direction, averages] of loads) {
        LOAD_WINDOWS.forEach(([window], i) => {
          const topic = `${SYS_PREFIX}load/messages/${direction}/${window}`
          const value = averages[i] ?? 0
          // mosquitto: "%.2f", published when it moved by 0.01 or more
          const previous = published.get(topic)
          if (previous === undefined || Math.abs(Number(previous) - value) >= 0.01) values.set(topic, value.toFixed(2))
        })
      }

      if (broker.cluster !== undefined) {
        const nodes = broker.cluster.nodes().length
        set('cluster/nodes', nodes)
        values.set(`${CLUSTER_SYS_PREFIX}nodes`, String(nodes))
        try {
          const totals = await broker.cluster.totals()
          for (const [name, figure] of CLUSTER_TOTALS) values.set(CLUSTER_SYS_PREFIX + name, String(totals[figure] ?? 0))
          const seenCluster = new Set<string>()
          for (const [topic, value] of clusterGroupTopics(totals)) {
            seenCluster.add(CLUSTER_SYS_PREFIX + topic)
            values.set(CLUSTER_SYS_PREFIX + topic, String(value))
          }
          // the values of a group gone from every node
          for (const topic of clusterGroups) if (!seenCluster.has(topic)) clear(topic)
          clusterGroups = seenCluster
        } catch (err) {
          // Redis unreachable: the totals wait for the next interval, the node's own values go out
          logger.debug({ err }, '$SYS: reading the cluster totals failed')
        }
      }

      const stats = readStoreStats(store)
      if (stats?.retained !== undefined) set('retained messages/count', stats.retained)
      const subscriptions = subscriptionCount(broker, store)
      if (subscriptions !== undefined) set('subscriptions/count', subscriptions)

      const shared = readSharedGroups(broker)
      const seen = new Set<string>()
      for (const g of shared ?? []) {
        const level = sharedGroupLevels(g.group)
        seen.add(level)
        set(`shared/${level}/members`, g.membersOnline + g.membersOffline)
        set(`shared/${level}/members/online`, g.membersOnline)
        set(`shared/${level}/queued`, g.queued)
        set(`shared/${level}/inflight`, g.inflight)
        set(`shared/${level}/delivered`, g.delivered)
        set(`shared/${level}/redelivered`, g.redelivered)
        set(`shared/${level}/deadlettered`, g.deadLettered)
        if (g.abandoned !== undefined) set(`shared/${level}/abandoned`, g.abandoned)
        if (g.timedOut !== undefined) set(`shared/${level}/timedout`, g.timedOut)
        if (g.poison !== undefined) set(`shared/${level}/poison`, g.poison)
      }
      if (stopped || aedes.closed) return
      for (const level of groups) {
        if (seen.has(level)) continue
        for (const leaf of SHARED_LEAVES) clear(`${SYS_PREFIX}shared/${level}/${leaf}`)
      }
      groups = seen
      for (const [topic, value] of values) publishIfChanged(topic, value)
      for (const [topic, value] of published) toCluster(topic, value)
      first = false
    } catch (err) {
      logger.warn({ err }, '$SYS update failed')
    } finally {
      running = false
    }
  }

  const timer = setInterval(() => { void tick() }, opts.intervalSeconds * 1000)
  timer.unref()
  const stop = (): void => {
    stopped = true
    clearInterval(timer)
  }
  aedes.once('closed', stop)
  // mosquitto publishes the whole tree once at start, then every interval
  void tick()
  return { stop }
}
