/**
 * Prometheus metrics in the text exposition format, with prom-client on a
 * registry of this broker's own (not prom-client's global one), so that
 * several brokers in one process do not collide. Names follow Prometheus
 * conventions: `culex_` prefix, `_total` for counters, base units (seconds,
 * bytes).
 *
 * Counters and gauges are filled at scrape time (`collect`) from
 * TrafficCounters and from what the store and the shared-subscription module
 * report (sources.ts). A family whose source does not exist is not
 * registered at all, so it is absent rather than a fake zero.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CulexBroker } from '../broker.js'
import { version } from '../version.js'
import { registerClusterGroupFamilies } from './cluster-shared.js'
import { PROTOCOL_VERSIONS, TRANSPORTS, hexCode, type TrafficCounters } from './counters.js'
import {
  offlineSessions, readSharedGroups, readStoreStats, storeOf, subscriptionCount,
  type ObservableStore, type SharedGroupStats, type StoreBatchInfo
} from './sources.js'

export interface PrometheusMetrics {
  readonly registry: Registry
  /** registers the families read from the broker, its store and shared groups */
  attach (broker: CulexBroker): void
  /** the exposition text */
  scrape (): Promise<string>
  readonly contentType: string
  close (): void
}

/** Store write latency buckets, seconds: a group commit is sub-millisecond in memory, up to a fsync on disk. */
const WRITE_SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]

export function createPrometheusMetrics (counters: TrafficCounters): PrometheusMetrics {
  const registry = new Registry()
  const registers = [registry]
  // process and runtime metrics, culex_nodejs_eventloop_lag_seconds among them
  collectDefaultMetrics({ register: registry, prefix: 'culex_' })

  new Gauge({
    name: 'culex_build_info',
    help: 'culex version; always 1',
    labelNames: ['version'],
    registers
  }).set({ version }, 1)

  new Gauge({
    name: 'culex_connections',
    help: 'Clients connected now (CONNACK 0x00 sent, connection not closed)',
    labelNames: ['transport', 'protocol_version'],
    registers,
    collect () {
      for (const transport of TRANSPORTS) {
        for (const v of PROTOCOL_VERSIONS) this.set({ transport, protocol_version: String(v) }, counters.connected[transport][v] ?? 0)
      }
    }
  })
  new Counter({
    name: 'culex_connections_total',
    help: 'Client connections accepted (CONNACK 0x00 sent)',
    labelNames: ['transport'],
    registers,
    collect () {
      this.reset()
      for (const transport of TRANSPORTS) this.inc({ transport }, counters.accepted[transport])
    }
  })
  new Counter({
    name: 'culex_sockets_opened_total',
    help: 'Network connections a listener accepted, before any CONNECT',
    labelNames: ['transport'],
    registers,
    collect () {
      this.reset()
      for (const transport of TRANSPORTS) this.inc({ transport }, counters.socketsOpened[transport])
    }
  })
  new Counter({
    name: 'culex_connects_refused_total',
    help: 'CONNECTs refused, by MQTT 5 reason code (3.1.1 return codes counted as the v5 code they map to)',
    labelNames: ['reason'],
    registers,
    collect () {
      this.reset()
      for (const [code, n] of counters.refused) this.inc({ reason: hexCode(code) }, n)
    }
  })
  new Counter({
    name: 'culex_messages_received_total',
    help: 'PUBLISH packets received from clients',
    labelNames: ['qos'],
    registers,
    collect () {
      this.reset()
      counters.received.forEach((n, qos) => this.inc({ qos: String(qos) }, n))
    }
  })
  new Counter({
    name: 'culex_messages_sent_total',
    help: 'PUBLISH packets sent to clients',
    labelNames: ['qos'],
    registers,
    collect () {
      this.reset()
      counters.sent.forEach((n, qos) => this.inc({ qos: String(qos) }, n))
    }
  })
  new Counter({
    name: 'culex_bytes_received_total',
    help: 'Bytes of PUBLISH packets received from clients, fixed header included',
    registers,
    collect () {
      this.reset()
      this.inc(counters.bytesReceived)
    }
  })
  new Counter({
    name: 'culex_bytes_sent_total',
    help: 'Bytes of PUBLISH packets sent to clients, fixed header included',
    registers,
    collect () {
      this.reset()
      this.inc(counters.bytesSent)
    }
  })
  new Counter({
    name: 'culex_messages_dropped_total',
    help: 'Messages not delivered, by reason',
    labelNames: ['reason'],
    registers,
    collect () {
      this.reset()
      for (const [reason, n] of counters.dropped) this.inc({ reason }, n)
    }
  })

  let sharedRegistered = false
  let attachedBroker: CulexBroker | undefined
  const detach: Array<() => void> = []

  return {
    registry,
    contentType: registry.contentType,
    attach (broker) {
      attachedBroker = broker
      const store = storeOf(broker)
      registerStoreFamilies(registry, broker, store)
      registerClusterGroupFamilies(registry, broker)
      const off = registerBatchHistograms(registry, store)
      if (off) detach.push(off)
    },
    async scrape () {
      // the shared-subscription module may attach its provider after us
      if (!sharedRegistered && attachedBroker && readSharedGroups(attachedBroker) !== undefined) {
        registerSharedGroupFamilies(registry, attachedBroker)
        sharedRegistered = true
      }
      return await registry.metrics()
    },
    close () {
      for (const off of detach.splice(0)) off()
    }
  }
}

/** Gauges read from the store at scrape time: only those the store can count. */
function registerStoreFamilies (registry: Registry, broker: CulexBroker, store: ObservableStore | undefined): void {
  const registers = [registry]
  const known = readStoreStats(store) ?? {}

  if (known.retained !== undefined) {
    new Gauge({
      name: 'culex_retained_messages',
      help: 'Retained messages stored',
      registers,
      collect () { setOrNaN(this, readStoreStats(store)?.retained) }
    })
  }
  if (known.queued !== undefined) {
    new Gauge({
      name: 'culex_queued_messages',
      help: 'Messages queued for sessions, in flight included',
      registers,
      collect () { setOrNaN(this, readStoreStats(store)?.queued) }
    })
  }
  if (known.subscriptions !== undefined) {
    new Gauge({
      name: 'culex_subscriptions',
      help: 'Subscriptions of all sessions, online and offline',
      registers,
      collect () { setOrNaN(this, subscriptionCount(broker, store)) }
    })
  }
  // online is always known; offline only when the store can tell (sources.ts)
  new Gauge({
    name: 'culex_sessions',
    help: 'Sessions by state: online (client connected) or offline (kept for a disconnected client)',
    labelNames: ['state'],
    registers,
    async collect () {
      this.reset()
      this.set({ state: 'online' }, broker.aedes.connectedClients)
      const offline = await offlineSessions(broker, store)
      if (offline !== undefined) this.set({ state: 'offline' }, offline)
    }
  })
}

function setOrNaN (gauge: Gauge, value: number | undefined): void {
  // an unlabelled gauge cannot be emptied; a vanished count reads as NaN, never as 0
  gauge.set(value ?? Number.NaN)
}

/** Histograms fed by the store's group commits; registered only when the store reports them. */
function registerBatchHistograms (registry: Registry, store: ObservableStore | undefined): (() => void) | undefined {
  if (typeof store?.onBatch !== 'function') return undefined
  const seconds = new Histogram({
    name: 'culex_store_write_seconds',
    help: 'Duration of a store write batch (group commit), seconds',
    buckets: WRITE_SECONDS_BUCKETS,
    registers: [registry]
  })
  const size = new Histogram({
    name: 'culex_store_batch_size',
    help: 'Operations in a store write batch (group commit)',
    buckets: BATCH_SIZE_BUCKETS,
    registers: [registry]
  })
  let active = true
  const off = store.onBatch((info: StoreBatchInfo) => {
    if (!active) return
    if (Number.isFinite(info.durationMs) && info.durationMs >= 0) seconds.observe(info.durationMs / 1000)
    if (Number.isFinite(info.size) && info.size >= 0) size.observe(info.size)
  })
  return () => {
    active = false
    if (typeof off === 'function') off()
  }
}

function registerSharedGroupFamilies (registry: Registry, broker: CulexBroker): void {
  const registers = [registry]
  const gauge = (name: string, help: string, pick: (g: SharedGroupStats) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['group'],
      registers,
      collect () {
        this.reset()
        for (const g of readSharedGroups(broker) ?? []) this.set({ group: g.group }, pick(g))
      }
    })
  }
  /** a count per group; a provider may leave one out (the work-queue figures, dropped): no sample for its groups then */
  const counter = (name: string, help: string, pick: (g: SharedGroupStats) => number | undefined): void => {
    new Counter({
      name,
      help,
      labelNames: ['group'],
      registers,
      collect () {
        this.reset()
        for (const g of readSharedGroups(broker) ?? []) {
          const v = pick(g)
          if (v !== undefined) this.inc({ group: g.group }, v)
        }
      }
    })
  }
  new Gauge({
    name: 'culex_shared_group_members',
    help: 'Members of a shared subscription group, by state (online: connected; offline: session kept)',
    labelNames: ['group', 'state'],
    registers,
    collect () {
      this.reset()
      for (const g of readSharedGroups(broker) ?? []) {
        this.set({ group: g.group, state: 'online' }, g.membersOnline)
        this.set({ group: g.group, state: 'offline' }, g.membersOffline)
      }
    }
  })
  gauge('culex_shared_group_queued', 'Messages of a shared group waiting for a member', g => g.queued)
  gauge('culex_shared_group_inflight', 'Messages of a shared group sent to a member and not yet acknowledged', g => g.inflight)
  counter('culex_shared_group_delivered_total', 'Messages a shared group delivered to a member', g => g.delivered)
  counter('culex_shared_group_redelivered_total', 'Messages a shared group sent again after a member left without acknowledging', g => g.redelivered)
  counter('culex_shared_group_dead_lettered_total', 'Messages a shared group gave up on', g => g.deadLettered)
  counter('culex_shared_group_abandoned_total', 'Messages a member of a shared group handed back for a later retry (culex-settle: abandon)', g => g.abandoned)
  counter('culex_shared_group_timed_out_total', 'Deliveries a shared group took back after its ackTimeout', g => g.timedOut)
  counter('culex_shared_group_poison_total', 'Messages a shared group gave up on after maxDeliveries deliveries', g => g.poison)
  counter('culex_shared_group_invalid_settles_total', 'Acknowledgements whose culex-settle user properties made no sense (ignored)', g => g.invalidSettles)
  gauge('culex_shared_group_delayed', 'Abandoned messages of a shared group waiting for their backoff', g => g.delayed ?? 0)
  new Counter({
    name: 'culex_shared_group_dead_letters_total',
    help: 'Messages a shared group published to its dead-letter topic, by reason (rejected, max-deliveries)',
    labelNames: ['group', 'reason'],
    registers,
    collect () {
      this.reset()
      for (const g of readSharedGroups(broker) ?? []) {
        for (const [reason, n] of Object.entries(g.deadLetteredBy ?? {})) this.inc({ group: g.group, reason }, n)
      }
    }
  })
  counter('culex_shared_group_dropped_total', 'Messages a shared group discarded (queue full, expired)', g => g.dropped)
}
