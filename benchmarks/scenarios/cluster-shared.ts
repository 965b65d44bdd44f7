// Shared-group dispatch cluster-wide (issue 17): 1 QoS 1 publisher on node A
// → a `$share/g/cshare/#` group of 10 QoS 1 members spread over nodes A, B
// and C (each message to exactly one member, duplicates counted across the
// group), against the same group on a single culex node (culex-memory).
// Rates are per CPU-second of all the cluster's processes (three nodes plus
// redis-server); the target is at least 0.7x the single node's.
import { runFlowJob } from '../lib/loadgen-client.js'
import { flowNotes, integrityCounts, perCpuSecond, perWallSecond, sized, warmupFor } from './common.js'
import { ackedLossNote, clusterOnly, redisNote, redisPerMessage } from './cluster-flow.js'
import { clusterTargetFor, type Scenario } from './types.js'

const GROUP_SIZE = 10
/** Room for the other nodes to learn of the group (a notice a few ms after the first SUBACK). */
const AFTER_SUBSCRIBE_MS = 500

export const clusterShared: Scenario = {
  id: 'cluster-shared-dispatch',
  title: `cluster shared-group dispatch QoS 1: 1 publisher on node A → $share/g/cshare/# (${GROUP_SIZE} members over nodes A, B and C) (single node: culex-memory)`,
  metrics: [
    { key: 'perCpu', label: 'group deliveries per CPU-s (all nodes + Redis; single node: the broker)', unit: 'msg/cpu-s', better: 'higher' },
    { key: 'perWall', label: 'group deliveries per wall s', unit: 'msg/s', better: 'higher' },
    { key: 'redisPerMsg', label: 'Redis commands per delivered msg', unit: 'cmd/msg', better: 'lower' }
  ],
  needsWebsocket: false,
  redisAof: 'everysec',
  applicable: (runner) => runner.name === 'culex-memory' ? null : clusterOnly(runner),
  run: async (context) => {
    const messages = sized(context.settings, 20_000, 3_000)
    const result = await runFlowJob({
      kind: 'flow',
      target: clusterTargetFor(context),
      publishers: 1,
      messagesPerPublisher: messages,
      warmupPerPublisher: warmupFor(messages),
      payloadBytes: 64,
      publishQos: 1,
      inflight: 100,
      topicPrefix: 'cshare',
      ratePerSecond: null,
      subscribers: GROUP_SIZE,
      subscribeFilter: '$share/g/cshare/#',
      subscribeQos: 1,
      subscriberTransport: 'tcp',
      delivery: 'one',
      measureLatency: false,
      keepLatencySamples: false,
      timeoutMs: sized(context.settings, 60_000, 20_000),
      stallMs: 3_000,
      afterSubscribeMs: context.broker.cluster === undefined ? 0 : AFTER_SUBSCRIBE_MS,
      publisherNodes: [0],
      subscriberNodes: [0, 1, 2]
    }, context.settings.loadgen)
    return {
      values: { perCpu: perCpuSecond(result.integrity.unique, result.window), perWall: perWallSecond(result.integrity.unique, result.window), redisPerMsg: redisPerMessage(result) },
      integrity: integrityCounts(result.integrity),
      notes: [...ackedLossNote(result, 1), ...flowNotes(result, 'group'), ...redisNote(result)],
      raw: [result]
    }
  }
}
