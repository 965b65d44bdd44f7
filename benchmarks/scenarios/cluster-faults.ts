// Cluster scenarios that move or lose a node's clients (issue 16): takeover
// latency of a client id between two live nodes, and the time from a node's
// SIGKILL to its clients' wills reaching a subscriber on another node. A
// takeover that does not complete, or a will that does not come, is counted
// and reported within a bound: the run goes on.
import { runTakeoverJob, runWillJob } from '../lib/loadgen-client.js'
import type { LatencySummary } from '../loadgen/jobs.js'
import { endingNotes, sized } from './common.js'
import { clusterOnly } from './cluster-flow.js'
import { clusterTargetFor, type Scenario } from './types.js'

const ROUND_TIMEOUT_MS = 5_000

const percentile = (summary: LatencySummary, key: 'p50Ms' | 'p99Ms' | 'maxMs'): number | null =>
  summary.count > 0 && Number.isFinite(summary[key]) ? summary[key] : null

export const clusterTakeover: Scenario = {
  id: 'cluster-takeover',
  title: 'cluster takeover: one client id moved back and forth between nodes A and B, both alive',
  metrics: [
    { key: 'p50', label: 'takeover p50 (CONNECT → CONNACK and old connection closed)', unit: 'ms', better: 'lower' },
    { key: 'p99', label: 'takeover p99', unit: 'ms', better: 'lower' },
    { key: 'max', label: 'takeover max', unit: 'ms', better: 'lower' },
    { key: 'connackP99', label: 'CONNECT → CONNACK p99', unit: 'ms', better: 'lower' }
  ],
  needsWebsocket: false,
  applicable: clusterOnly,
  run: async (context) => {
    const result = await runTakeoverJob({
      kind: 'takeover',
      target: clusterTargetFor(context),
      rounds: sized(context.settings, 500, 100),
      warmupRounds: sized(context.settings, 50, 20),
      roundTimeoutMs: ROUND_TIMEOUT_MS,
      timeoutMs: sized(context.settings, 120_000, 40_000)
    }, context.settings.loadgen)
    const endings = Object.entries(result.endings).map(([how, count]) => `${count}× ${how}`).join(', ')
    return {
      values: {
        p50: percentile(result.takeover, 'p50Ms'),
        p99: percentile(result.takeover, 'p99Ms'),
        max: percentile(result.takeover, 'maxMs'),
        connackP99: percentile(result.connack, 'p99Ms')
      },
      // A takeover whose old connection stays open leaves two connections for one id: counted as a duplicate.
      integrity: { lost: result.failed, duplicated: result.notClosed, reordered: 0, refused: 0 },
      notes: [
        `${result.completed}/${result.rounds} takeovers completed${endings === '' ? '' : ` (old connections ended: ${endings})`}`,
        ...(result.failed > 0 ? [`${result.failed} new CONNECTs failed (counted as lost)`] : []),
        ...(result.notClosed > 0 ? [`${result.notClosed} old connections still open ${ROUND_TIMEOUT_MS} ms after the takeover (counted as duplicated)`] : []),
        ...endingNotes(result)
      ],
      raw: [result]
    }
  }
}

const WILL_CLIENTS = 20
/** culex's node lease is 3 s; the issue's target is lease + 2 s, so this leaves room to see a late will. */
const WILL_TIMEOUT_MS = 12_000

export const clusterWill: Scenario = {
  id: 'cluster-will-sigkill',
  title: `cluster wills of a dead node: ${WILL_CLIENTS} clients with QoS 1 wills on node A, subscriber on node B, node A SIGKILLed`,
  metrics: [
    { key: 'allS', label: 'SIGKILL → every will delivered', unit: 's', better: 'lower' },
    { key: 'firstS', label: 'SIGKILL → first will', unit: 's', better: 'lower' }
  ],
  needsWebsocket: false,
  applicable: clusterOnly,
  run: async (context) => {
    const clientNode = 0
    context.broker.cluster?.expectExit(clientNode)
    const result = await runWillJob({
      kind: 'will',
      target: clusterTargetFor(context),
      clients: WILL_CLIENTS,
      clientNode,
      subscriberNode: 1,
      willQos: 1,
      beforeKillMs: 1_000,
      timeoutMs: WILL_TIMEOUT_MS
    }, context.settings.loadgen)
    const missing = result.connected - result.delivered
    return {
      values: {
        allS: result.allMs === null ? null : result.allMs / 1000,
        firstS: result.firstMs === null ? null : result.firstMs / 1000
      },
      integrity: { lost: missing + (result.clients - result.connected), duplicated: result.duplicated, reordered: 0, refused: 0 },
      notes: [
        ...(missing > 0 ? [`${missing} of ${result.connected} wills not delivered within ${WILL_TIMEOUT_MS / 1000} s of the SIGKILL`] : []),
        ...(result.connected < result.clients ? [`only ${result.connected} of ${result.clients} will clients connected`] : []),
        ...endingNotes({ ...result, timedOut: false })
      ],
      raw: [result]
    }
  }
}
