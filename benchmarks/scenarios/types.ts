// What a scenario is, to the harness: a set of metric definitions and a run
// function that produces one value per metric for one broker and one repeat.
import type { BrokerRunner, RunningBroker } from '../brokers.js'
import type { LoadgenSettings } from '../lib/loadgen-client.js'
import type { JobResult, ProtocolVersion, Target } from '../loadgen/jobs.js'
import { LOOPBACK } from '../lib/net.js'
import type { RedisAof } from '../lib/redis.js'
import type { BrokerTls } from '../lib/tls-setup.js'

export interface ScenarioSettings {
  readonly quick: boolean
  readonly full: boolean
  readonly protocolVersion: ProtocolVersion
  readonly keepLatencySamples: boolean
  readonly loadgen: LoadgenSettings
  /** The run's certificate; set when a selected scenario needs TLS. */
  readonly tls?: BrokerTls
}

export interface ScenarioContext {
  readonly broker: RunningBroker
  readonly runner: BrokerRunner
  readonly settings: ScenarioSettings
}

export type Better = 'higher' | 'lower'

export interface MetricDef {
  readonly key: string
  readonly label: string
  readonly unit: string
  readonly better: Better
}

export interface IntegrityCounts {
  readonly lost: number
  readonly duplicated: number
  readonly reordered: number
  /** Deliveries not attempted because the broker refused the PUBLISH (told the publisher). */
  readonly refused: number
}

export interface Outcome {
  /** metric key → value; null means not applicable or not measurable this time. */
  readonly values: Readonly<Record<string, number | null>>
  readonly integrity: IntegrityCounts | null
  /** Things a reader of the table must know (n/a reasons, timeouts, stalls). */
  readonly notes: readonly string[]
  /** Raw load-generator results, kept in the JSON output. */
  readonly raw: readonly JobResult[]
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly metrics: readonly MetricDef[]
  readonly needsWebsocket: boolean
  /** Brokers are started with the run's certificate and a TLS listener. */
  readonly needsTls?: boolean
  /** Cluster scenarios: the redis-server's AOF setting for this scenario (default no AOF). */
  readonly redisAof?: RedisAof
  /** null when this broker takes part; otherwise the reason it is skipped. */
  applicable: (runner: BrokerRunner, settings: ScenarioSettings) => string | null
  run: (context: ScenarioContext) => Promise<Outcome>
}

export function targetFor (context: ScenarioContext, protocolVersion: ProtocolVersion = context.settings.protocolVersion): Target {
  return {
    host: LOOPBACK,
    port: context.broker.port,
    wsPort: context.broker.wsPort,
    wsPath: '/mqtt',
    brokerPid: context.broker.pid,
    protocolVersion,
    tlsPort: context.broker.tlsPort ?? null
  }
}

/** The target of a cluster run: node 0's port and pid, plus every node and redis-server. */
export function clusterTargetFor (context: ScenarioContext): Target {
  const cluster = context.broker.cluster
  if (cluster === undefined) return targetFor(context)
  return {
    ...targetFor(context),
    cluster: { nodes: cluster.nodes, redisPid: cluster.redisPid, redisPort: cluster.redisPort }
  }
}
