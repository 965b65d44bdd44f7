/**
 * Observability: Prometheus `/metrics` (prometheus.ts), `$SYS` topics
 * (sys.ts), `/healthz` and `/readyz` (health.ts) and client lifecycle
 * CloudEvents (lifecycle.ts), all fed by one set of counters the protocol
 * gateway increments (counters.ts).
 *
 * server.ts creates this before the broker (the broker needs `observer`),
 * attaches it once the broker and listeners exist, and closes it when
 * shutdown begins.
 */
import { localGroupFigures } from './cluster-shared.js'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { CulexBroker } from '../broker.js'
import type { HttpListener } from '../transports/http.js'
import type { Listener } from '../transports/listener.js'
import { noopObserver, type BrokerObserver } from '../observer.js'
import { TrafficCounters } from './counters.js'
import { createPrometheusMetrics, type PrometheusMetrics } from './prometheus.js'
import { startSysTopics, type SysTopics } from './sys.js'
import { healthRoutes, readiness, type HealthOptions, type ReadinessReport } from './health.js'
import { attachLifecycleEvents, type LifecycleEvents } from './lifecycle.js'
import { storeOf, subscriptionCount } from './sources.js'

export type { SharedGroupStats, SharedGroupStatsProvider, StoreStats, StoreBatchInfo, ObservableStore } from './sources.js'
export type { ReadinessReport } from './health.js'
export type { CloudEventAttributes, LifecycleEventName } from './lifecycle.js'
export { TrafficCounters } from './counters.js'

export interface ObservabilityTargets {
  broker: CulexBroker
  /** HTTP servers (ws, wss) that serve /metrics, /healthz, /readyz */
  http: HttpListener[]
  /** every listener, for /readyz; default: `http` */
  listeners?: readonly Listener[]
}

export interface Observability {
  /** handed to createBroker before the broker exists */
  readonly observer: BrokerObserver
  /** the totals behind `observer`, for $SYS and /metrics */
  readonly counters: TrafficCounters
  /** starts $SYS, lifecycle events and HTTP routes once the broker and listeners exist */
  attach (targets: ObservabilityTargets): void
  /** the Prometheus exposition text; undefined when `metrics` is off */
  scrape (): Promise<string | undefined>
  /** what /readyz answers; undefined before attach */
  readiness (): Promise<ReadinessReport | undefined>
  close (): Promise<void>
}

export function createObservability (config: Config, logger: Logger): Observability {
  const counters = new TrafficCounters()
  const prometheus: PrometheusMetrics | undefined = config.metrics ? createPrometheusMetrics(counters) : undefined
  let sys: SysTopics | undefined
  let lifecycle: LifecycleEvents | undefined
  let detachDrops: (() => void) | undefined
  let health: HealthOptions | undefined
  let closing = false

  // nothing reads the totals with metrics, $SYS and the dashboard off: the gateway then counts nothing
  const observer: BrokerObserver = config.metrics || config.sysInterval > 0 || config.dashboard ? counters : noopObserver

  return {
    observer,
    counters,
    attach ({ broker, http, listeners }) {
      if (health !== undefined) throw new Error('observability is already attached')
      health = { broker, listeners: listeners ?? http, closing: () => closing }
      detachDrops = countStoreDrops(broker, counters)
      prometheus?.attach(broker)
      // a cluster node's share of the cluster totals ($SYS/cluster/...): written to Redis with its lease
      broker.cluster?.reportFigures(() => ({
        connections: broker.aedes.connectedClients,
        received: counters.messagesReceived,
        sent: counters.messagesSent,
        subscriptions: subscriptionCount(broker, storeOf(broker)) ?? 0,
        ...localGroupFigures(broker, broker.cluster?.nodeId ?? '')
      }))

      const routes = healthRoutes(health)
      for (const server of http) {
        if (config.wsHealth) {
          server.route('/healthz', routes.healthz)
          server.route('/readyz', routes.readyz)
        }
        if (prometheus) {
          const metrics = prometheus
          server.route('/metrics', async (_req, res) => {
            const body = await metrics.scrape()
            res.writeHead(200, { 'content-type': metrics.contentType }).end(body)
          })
        }
      }

      if (config.sysInterval > 0) sys = startSysTopics({ broker, counters, intervalSeconds: config.sysInterval, logger })
      if (config.lifecycleEvents) lifecycle = attachLifecycleEvents(broker, logger)
      logger.debug({ metrics: config.metrics, sysInterval: config.sysInterval, lifecycleEvents: config.lifecycleEvents }, 'observability attached')
    },
    async scrape () {
      return await prometheus?.scrape()
    },
    async readiness () {
      return health === undefined ? undefined : await readiness(health)
    },
    async close () {
      // /readyz answers 503 from here on, while listeners finish closing
      closing = true
      sys?.stop()
      lifecycle?.detach()
      detachDrops?.()
      prometheus?.close()
    }
  }
}

/**
 * Messages the store drops (offline queue full, expired, retained limit)
 * count in culex_messages_dropped_total beside the gateway's own drops, when
 * the store reports them through `onDrop`.
 */
function countStoreDrops (broker: CulexBroker, counters: TrafficCounters): (() => void) | undefined {
  const store = storeOf(broker)
  if (typeof store?.onDrop !== 'function') return undefined
  const off = store.onDrop((event) => {
    if (typeof event?.reason === 'string' && Number.isFinite(event.count) && event.count > 0) counters.drop(event.reason, event.count)
  })
  return typeof off === 'function' ? off : undefined
}
