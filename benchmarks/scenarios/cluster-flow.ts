// Cluster throughput (issue 16): three nodes on one Redis, clients spread
// over the nodes so every message crosses between them, and a node's purely
// local traffic against a single culex node. Rates are per CPU-second of ALL
// the cluster's processes (three nodes plus redis-server); the local scenario
// also gives the rate per CPU-second of the one node carrying the traffic,
// and how many Redis commands ran during the window (none belong on that path).
import type { BrokerRunner } from '../brokers.js'
import { runFlowJob } from '../lib/loadgen-client.js'
import { describeCommands, totalCalls, type RedisAof } from '../lib/redis.js'
import type { FlowJob, FlowResult, QoS } from '../loadgen/jobs.js'
import { flowNotes, integrityCounts, perCpuSecond, perWallSecond, sized, warmupFor } from './common.js'
import { clusterTargetFor, type MetricDef, type Scenario, type ScenarioContext } from './types.js'

/** Room for the other nodes to learn a subscription (culex: a notice a few ms after the SUBACK). */
const AFTER_SUBSCRIBE_MS = 500
const PUBLISHERS = 10
const FANOUT_SUBSCRIBERS = 30

export function clusterOnly (runner: BrokerRunner): string | null {
  return runner.features.cluster === true ? null : 'needs a cluster (culex-cluster, aedes-redis-cluster)'
}

/** Redis commands per delivered message, or null without a Redis reading or deliveries. */
export function redisPerMessage (result: FlowResult): number | null {
  if (result.redisCommands === null || result.integrity.unique === 0) return null
  return totalCalls(result.redisCommands) / result.integrity.unique
}

/** QoS 1/2: acknowledged messages that never arrived are the figure the issue asks to be 0. */
export function ackedLossNote (result: FlowResult, qos: QoS): string[] {
  if (qos === 0 || result.integrity.lost <= 0) return []
  return [`${result.integrity.lost} of ${result.integrity.expected} deliveries never arrived, with ${result.acked} messages acknowledged (PUBACK) to their publishers`]
}

export function redisNote (result: FlowResult): string[] {
  if (result.redisCommands === null) return []
  const total = totalCalls(result.redisCommands)
  return [`Redis during the window: ${total === 0 ? 'no commands' : `${total} commands (${describeCommands(result.redisCommands)})`}`]
}

/** The shape every cluster flow shares; each scenario sets who connects where. */
function clusterFlow (context: ScenarioContext, job: Pick<FlowJob, 'publishers' | 'messagesPerPublisher' | 'publishQos' | 'subscribers' | 'subscribeFilter' | 'topicPrefix' | 'publisherNodes' | 'subscriberNodes' | 'persistentSubscribers'>): Promise<FlowResult> {
  return runFlowJob({
    kind: 'flow',
    target: clusterTargetFor(context),
    warmupPerPublisher: warmupFor(job.messagesPerPublisher),
    payloadBytes: 64,
    inflight: 100,
    ratePerSecond: null,
    subscribeQos: job.publishQos,
    subscriberTransport: 'tcp',
    delivery: 'every',
    measureLatency: false,
    keepLatencySamples: false,
    timeoutMs: sized(context.settings, 60_000, 20_000),
    stallMs: 3_000,
    afterSubscribeMs: context.broker.cluster === undefined ? 0 : AFTER_SUBSCRIBE_MS,
    ...job
  }, context.settings.loadgen)
}

const ALL_CPU: MetricDef = { key: 'perCpu', label: 'msgs per CPU-s (all nodes + Redis)', unit: 'msg/cpu-s', better: 'higher' }
const WALL: MetricDef = { key: 'perWall', label: 'msgs per wall s', unit: 'msg/s', better: 'higher' }
const REDIS_PER_MSG: MetricDef = { key: 'redisPerMsg', label: 'Redis commands per delivered msg', unit: 'cmd/msg', better: 'lower' }

interface FanInVariant {
  readonly qos: 0 | 1
  /** The subscriber keeps a session: a PUBACK then promises it the message even across a disconnect. */
  readonly persistent: boolean
  readonly normal: number
  readonly quick: number
  readonly aof: RedisAof
}

const FANIN: Record<'qos0' | 'qos1' | 'persistent-qos1', FanInVariant> = {
  qos0: { qos: 0, persistent: false, normal: 5_000, quick: 2_000, aof: 'no' },
  // Redis' AOF as a deployment that counts on it would run: a PUBACK then
  // means the message reached Redis' log, fsynced within a second.
  qos1: { qos: 1, persistent: false, normal: 2_000, quick: 500, aof: 'everysec' },
  'persistent-qos1': { qos: 1, persistent: true, normal: 2_000, quick: 500, aof: 'everysec' }
}

/** 10 publishers on nodes A and B (alternately) → 1 subscriber on node C. */
export function clusterFanIn (variant: keyof typeof FANIN): Scenario {
  const { qos, persistent, normal, quick, aof } = FANIN[variant]
  return {
    id: `cluster-fanin-${variant}`,
    title: `cluster fan-in QoS ${qos}: ${PUBLISHERS} publishers on nodes A and B → 1 ${persistent ? 'persistent-session ' : ''}subscriber on node C`,
    metrics: [ALL_CPU, WALL, REDIS_PER_MSG],
    needsWebsocket: false,
    redisAof: aof,
    applicable: clusterOnly,
    run: async (context) => {
      const result = await clusterFlow(context, {
        publishers: PUBLISHERS,
        messagesPerPublisher: sized(context.settings, normal, quick),
        publishQos: qos,
        subscribers: 1,
        subscribeFilter: 'cbench/#',
        topicPrefix: 'cbench',
        publisherNodes: [0, 1],
        subscriberNodes: [2],
        persistentSubscribers: persistent
      })
      return {
        values: { perCpu: perCpuSecond(result.integrity.unique, result.window), perWall: perWallSecond(result.integrity.unique, result.window), redisPerMsg: redisPerMessage(result) },
        integrity: integrityCounts(result.integrity),
        notes: [...ackedLossNote(result, qos), ...flowNotes(result), ...redisNote(result)],
        raw: [result]
      }
    }
  }
}

/** 1 publisher on node A → 30 subscribers of its topic, 10 on each node. */
export const clusterFanOut: Scenario = {
  id: 'cluster-fanout-qos0',
  title: `cluster fan-out QoS 0: 1 publisher on node A → ${FANOUT_SUBSCRIBERS} subscribers over nodes A, B and C`,
  metrics: [
    { ...ALL_CPU, label: 'deliveries per CPU-s (all nodes + Redis)' },
    { ...WALL, label: 'deliveries per wall s' },
    REDIS_PER_MSG
  ],
  needsWebsocket: false,
  applicable: clusterOnly,
  run: async (context) => {
    const result = await clusterFlow(context, {
      publishers: 1,
      messagesPerPublisher: sized(context.settings, 3_000, 1_000),
      publishQos: 0,
      subscribers: FANOUT_SUBSCRIBERS,
      subscribeFilter: 'cfan/0',
      topicPrefix: 'cfan',
      publisherNodes: [0],
      subscriberNodes: [0, 1, 2]
    })
    return {
      values: { perCpu: perCpuSecond(result.integrity.unique, result.window), perWall: perWallSecond(result.integrity.unique, result.window), redisPerMsg: redisPerMessage(result) },
      integrity: integrityCounts(result.integrity),
      notes: [...flowNotes(result), ...redisNote(result)],
      raw: [result]
    }
  }
}

const LOCAL_MESSAGES: Record<0 | 1, { normal: number, quick: number }> = {
  0: { normal: 5_000, quick: 2_000 },
  1: { normal: 2_000, quick: 500 }
}

/**
 * Fan-in with every client on node A of a running cluster, against the same
 * load on a single culex node (culex-memory: the same flags but --cluster).
 */
export function clusterLocal (qos: 0 | 1): Scenario {
  const counts = LOCAL_MESSAGES[qos]
  return {
    id: `cluster-local-qos${qos}`,
    title: `cluster node's local traffic QoS ${qos}: ${PUBLISHERS} publishers → 1 subscriber, all on node A (single node: culex-memory)`,
    metrics: [
      { key: 'perNodeCpu', label: 'msgs per CPU-s of node A (single node: of the broker)', unit: 'msg/cpu-s', better: 'higher' },
      ALL_CPU,
      WALL,
      { key: 'redisCmds', label: 'Redis commands during the window (all)', unit: 'commands', better: 'lower' },
      { key: 'redisPublish', label: 'Redis PUBLISH calls during the window', unit: 'commands', better: 'lower' }
    ],
    needsWebsocket: false,
    applicable: (runner) => runner.name === 'culex-memory' ? null : clusterOnly(runner),
    run: async (context) => {
      const result = await clusterFlow(context, {
        publishers: PUBLISHERS,
        messagesPerPublisher: sized(context.settings, counts.normal, counts.quick),
        publishQos: qos,
        subscribers: 1,
        subscribeFilter: 'clocal/#',
        topicPrefix: 'clocal',
        publisherNodes: [0],
        subscriberNodes: [0]
      })
      const nodeCpuS = result.window.cpuByProcessS?.[0] ?? result.window.brokerCpuS
      return {
        values: {
          perNodeCpu: perCpuSecond(result.integrity.unique, { ...result.window, brokerCpuS: nodeCpuS }),
          perCpu: perCpuSecond(result.integrity.unique, result.window),
          perWall: perWallSecond(result.integrity.unique, result.window),
          redisCmds: result.redisCommands === null ? null : totalCalls(result.redisCommands),
          redisPublish: result.redisCommands === null ? null : result.redisCommands['publish'] ?? 0
        },
        integrity: integrityCounts(result.integrity),
        notes: [...ackedLossNote(result, qos), ...flowNotes(result), ...redisNote(result)],
        raw: [result]
      }
    }
  }
}
