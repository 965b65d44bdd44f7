/**
 * The benchmark's cluster runners: three nodes and their own redis-server
 * come up on loopback ports, route a message between nodes, tolerate the
 * node a scenario kills on purpose (and only that one), take a node that
 * joins later, and leave no process behind when stopped.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { clusterRunners } from '../../benchmarks/cluster-brokers.js'
import type { RunningBroker } from '../../benchmarks/brokers.js'
import { connectClient } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const runners = clusterRunners({ repoRoot, culexBin: fileURLToPath(new URL('../../dist/bin/culex.js', import.meta.url)) })

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

for (const runner of runners) {
  t.test(`${runner.name}: 3 nodes on a private redis-server, stopped by PID`, async (t) => {
    t.equal(runner.unavailable, null, 'redis-server installed and the broker built')
    let broker: RunningBroker | null = await runner.start({ websocket: false, fdLimit: 1024, cpus: null, redisAof: 'everysec' })
    t.teardown(async () => { await broker?.stop() })
    const cluster = broker.cluster
    if (cluster === undefined) throw new Error('a cluster runner must describe its cluster')
    t.equal(cluster.nodes.length, 3)
    t.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3, 'each node on its own port')
    t.same([broker.port, broker.pid], [cluster.nodes[0]!.port, cluster.nodes[0]!.pid], 'node 0 stands for the cluster')
    t.ok(broker.alive())

    const subscriber = await connectClient(t, `mqtt://127.0.0.1:${cluster.nodes[2]!.port}`, { clientId: 'bench-runner-sub' })
    await subscriber.subscribeAsync('runner/check')
    const received: string[] = []
    subscriber.on('message', (_topic, payload) => received.push(payload.toString()))
    const publisher = await connectClient(t, `mqtt://127.0.0.1:${cluster.nodes[1]!.port}`, { clientId: 'bench-runner-pub' })
    // Subscriptions reach the other nodes shortly after the SUBACK; publish until one gets through.
    await t.resolves(waitFor(() => {
      publisher.publish('runner/check', 'across')
      return received.includes('across')
    }, { step: 100, what: 'a message from node B on node C' }), 'a message published on node B reaches a subscriber on node C')

    process.kill(cluster.nodes[1]!.pid, 'SIGKILL')
    const running = broker
    await t.resolves(waitFor(() => !running.alive(), { what: 'the cluster seen as not alive' }), 'a node that dies unannounced makes the cluster not alive')
    cluster.expectExit(1)
    t.ok(broker.alive(), 'but not when the scenario said it would kill it')

    const joined = await cluster.join()
    t.notOk(cluster.nodes.some((n) => n.port === joined.port), 'a joining node gets a port of its own')
    t.ok(processAlive(joined.pid) && joined.spawnedAt <= performance.now(), 'and runs')
    // culex listens before it has joined and refuses CONNECTs (0x88) until then.
    let attempt = 0
    await t.resolves(waitFor(async () => {
      try {
        (await connectClient(t, `mqtt://127.0.0.1:${joined.port}`, { clientId: `bench-runner-late-${attempt++}` })).end(true)
        return true
      } catch {
        return false
      }
    }, { timeout: 15000, step: 50, what: 'a CONNACK from the joined node' }), 'it takes clients once it has joined')

    const pids = [...cluster.nodes.map((n) => n.pid), joined.pid, cluster.redisPid]
    await broker.stop()
    broker = null
    t.same(pids.filter(processAlive), [], 'every node (the joined one too) and redis-server are gone')
  })
}
