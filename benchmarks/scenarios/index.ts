// The scenario registry, in run order.
import { clusterTakeover, clusterWill } from './cluster-faults.js'
import { clusterFanIn, clusterFanOut, clusterLocal } from './cluster-flow.js'
import { clusterJoin } from './cluster-join.js'
import { connectsTls } from './connects-tls.js'
import { clusterShared } from './cluster-shared.js'
import { drain } from './drain.js'
import { fanIn } from './fan-in.js'
import { fanOut } from './fan-out.js'
import { idle } from './idle.js'
import { latency } from './latency.js'
import { retained } from './retained.js'
import { shared } from './shared.js'
import { storm } from './storm.js'
import type { Scenario } from './types.js'
import { websocket } from './websocket.js'

export function scenarios (full: boolean): Scenario[] {
  return [
    fanIn(0),
    fanIn(1),
    fanIn(2),
    fanOut,
    latency,
    idle,
    connectsTls,
    drain,
    storm,
    shared,
    retained(100_000, 20_000),
    // 1M retained messages takes minutes per broker: only on request.
    ...(full ? [retained(1_000_000, 1_000_000)] : []),
    websocket,
    // Issue 16: three nodes on one Redis (culex-cluster, aedes-redis-cluster).
    clusterFanIn('qos0'),
    clusterFanIn('qos1'),
    clusterFanIn('persistent-qos1'),
    clusterFanOut,
    clusterLocal(0),
    clusterLocal(1),
    clusterTakeover,
    clusterWill,
    clusterJoin,
    // Issue 17: one shared group's queue across three nodes
    clusterShared
  ]
}

/** The cluster runners take part in these only. */
export function isClusterScenario (scenario: Scenario): boolean {
  return scenario.id.startsWith('cluster-')
}
