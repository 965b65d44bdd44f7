/**
 * How the load generator spreads clients over a cluster's nodes, which
 * processes it measures, and how it reads a will's topic back.
 */
import t from 'tap'
import { nodeTarget } from '../../../benchmarks/loadgen/flow.js'
import type { Target } from '../../../benchmarks/loadgen/jobs.js'
import { willIndex } from '../../../benchmarks/loadgen/will.js'
import { measuredPids } from '../../../benchmarks/loadgen/window.js'

const single: Target = { host: '127.0.0.1', port: 1000, wsPort: null, wsPath: '/mqtt', brokerPid: 11, protocolVersion: 5 }
const cluster: Target = {
  ...single,
  cluster: { nodes: [{ port: 1000, pid: 11 }, { port: 2000, pid: 22 }, { port: 3000, pid: 33 }], redisPid: 44, redisPort: 6379 }
}

t.test('nodeTarget: client i goes to node nodes[i % length]', async (t) => {
  t.same([0, 1, 2, 3].map((i) => nodeTarget(cluster, [0, 1], i).port), [1000, 2000, 1000, 2000], 'publishers alternate over A and B')
  t.equal(nodeTarget(cluster, [2], 5).port, 3000, 'every subscriber on C')
  t.equal(nodeTarget(cluster, [1], 0).brokerPid, 11, 'only the port changes')
  t.equal(nodeTarget(cluster, undefined, 3), cluster, 'no node list: node 0 (the target itself)')
  t.equal(nodeTarget(single, [2], 0), single, 'a single broker ignores node lists')
  t.throws(() => nodeTarget(cluster, [5], 0), /no cluster node 5/)
})

t.test('measuredPids: the broker, or every node then redis-server', async (t) => {
  t.same(measuredPids(single), [11])
  t.same(measuredPids(cluster), [11, 22, 33, 44])
})

t.test('willIndex reads the client index from its own will topics only', async (t) => {
  t.equal(willIndex('cwill-ab/7', 'cwill-ab', 20), 7)
  t.equal(willIndex('cwill-ab/0', 'cwill-ab', 20), 0)
  t.equal(willIndex('cwill-ab/20', 'cwill-ab', 20), null, 'beyond the client count')
  t.equal(willIndex('cwill-cd/7', 'cwill-ab', 20), null, 'another run')
  t.equal(willIndex('cwill-ab/7/x', 'cwill-ab', 20), null)
  t.equal(willIndex('cwill-ab/', 'cwill-ab', 20), null)
})
