// A node joining a cluster that holds many persistent sessions (issue 16:
// "a node joining a cluster with 100k persistent sessions is ready in under
// 2 s", memory independent of the cluster's sessions). One node joins the
// empty cluster, then N sessions are left on the three nodes, then another
// node joins; each join is timed from its spawn to its first successful
// CONNACK (culex listens before it has joined and refuses CONNECTs with 0x88
// until then), and its RSS is read once it has gone quiet.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RunningCluster } from '../brokers.js'
import { runSeedJob } from '../lib/loadgen-client.js'
import { rssKiB } from '../lib/procfs.js'
import { connectOptions, MqttConn } from '../loadgen/conn.js'
import { settle } from '../loadgen/window.js'
import { endingNotes, sized } from './common.js'
import { clusterOnly } from './cluster-flow.js'
import { clusterTargetFor, type Scenario, type ScenarioContext } from './types.js'

const PROBE_INTERVAL_MS = 20
const READY_TIMEOUT_MS = 30_000

interface Joined {
  readonly readyMs: number | null
  readonly rssKiB: number
}

/** One more node: from its spawn to a CONNACK 0x00, then its RSS once quiet. */
async function timeJoin (context: ScenarioContext, cluster: RunningCluster, probeId: string): Promise<Joined> {
  const node = await cluster.join()
  const target = { ...clusterTargetFor(context), port: node.port }
  let readyMs: number | null = null
  for (let attempt = 0; performance.now() - node.spawnedAt < READY_TIMEOUT_MS; attempt++) {
    try {
      const { conn } = await MqttConn.open(connectOptions(target, `${probeId}-${attempt}`, 'tcp'))
      readyMs = performance.now() - node.spawnedAt
      conn.destroy()
      break
    } catch {
      await sleep(PROBE_INTERVAL_MS)
    }
  }
  await settle(node.pid, 5_000)
  return { readyMs, rssKiB: rssKiB(node.pid) }
}

export const clusterJoin: Scenario = {
  id: 'cluster-join-sessions',
  title: 'cluster join: a node joining the empty cluster, then one joining after N persistent sessions were left on it',
  metrics: [
    { key: 'readyFull', label: 'join with N sessions: spawn → first CONNACK', unit: 'ms', better: 'lower' },
    { key: 'readyEmpty', label: 'join of the empty cluster: spawn → first CONNACK', unit: 'ms', better: 'lower' },
    { key: 'rssFull', label: 'joined node RSS, N sessions', unit: 'MiB', better: 'lower' },
    { key: 'rssEmpty', label: 'joined node RSS, empty cluster', unit: 'MiB', better: 'lower' },
    { key: 'sessions', label: 'N: persistent sessions in the cluster', unit: 'sessions', better: 'higher' }
  ],
  needsWebsocket: false,
  applicable: clusterOnly,
  run: async (context) => {
    const cluster = context.broker.cluster
    if (cluster === undefined) throw new Error('cluster-join-sessions needs a cluster')
    const { settings } = context
    const sessions = settings.full ? 100_000 : sized(settings, 10_000, 1_000)
    const empty = await timeJoin(context, cluster, 'bench-join-empty')
    const seed = await runSeedJob({
      kind: 'seed',
      target: clusterTargetFor(context),
      sessions,
      concurrency: 200,
      timeoutMs: settings.full ? 600_000 : sized(settings, 120_000, 30_000)
    }, settings.loadgen)
    const full = await timeJoin(context, cluster, 'bench-join-full')
    const mib = (kib: number): number => kib / 1024
    return {
      values: {
        readyFull: full.readyMs,
        readyEmpty: empty.readyMs,
        rssFull: mib(full.rssKiB),
        rssEmpty: mib(empty.rssKiB),
        sessions: seed.seeded
      },
      integrity: null,
      notes: [
        `${seed.seeded} of ${sessions} sessions left on the cluster in ${(seed.wallMs / 1000).toFixed(1)} s`,
        ...(empty.readyMs === null ? [`the first joining node gave no CONNACK within ${READY_TIMEOUT_MS / 1000} s`] : []),
        ...(full.readyMs === null ? [`the node joining ${seed.seeded} sessions gave no CONNACK within ${READY_TIMEOUT_MS / 1000} s`] : []),
        ...endingNotes(seed, 'seeding')
      ],
      raw: [seed]
    }
  }
}
