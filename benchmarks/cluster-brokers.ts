// Cluster runners: three broker nodes as child processes on one private
// redis-server, started afresh for every scenario × repeat like the single
// brokers. culex-cluster is culex with --cluster; aedes-redis-cluster is the
// baseline the issue names, aedes 2.0.0-beta.1 on mqemitter-redis and
// aedes-persistence-redis (benchmarks/fixtures/aedes-redis.mjs).
import { existsSync } from 'node:fs'
import path from 'node:path'
import type { BrokerEnvironment, BrokerName, BrokerRunner, RunningBroker, StartOptions } from './brokers.js'
import { launch, packageVersion, removeDir, tempDir, type Launched } from './lib/launch.js'
import { freePort, LOOPBACK } from './lib/net.js'
import { commandExists } from './lib/processes.js'
import { redisServerVersion, startRedisServer } from './lib/redis.js'

export const CLUSTER_NODES = 3

/** The command line of node `index` of a cluster on the redis-server at `redisPort`. */
type NodeCommand = (index: number, port: number, redisPort: number, dir: string) => { command: string, args: string[] }

const nodeId = (index: number): string => `bench-${String.fromCharCode(97 + index)}`

/** Starts node `index` of the cluster on the redis-server at `redisPort`. */
async function startNode (name: BrokerName, node: NodeCommand, index: number, redisPort: number, options: StartOptions): Promise<Launched> {
  const port = await freePort()
  const dir = await tempDir(`${name}-${index}`)
  const { command, args } = node(index, port, redisPort, dir)
  return await launch({ name: `${name} node ${nodeId(index)}`, command, args, port, wsPort: null, cleanup: removeDir(dir) }, options)
}

/** redis-server, then the nodes (all at once); on any failure everything started is stopped. */
async function startCluster (name: BrokerName, node: NodeCommand, options: StartOptions): Promise<RunningBroker> {
  const redis = await startRedisServer(options.redisAof ?? 'no', options)
  const started: Launched[] = []
  try {
    const launches = Array.from({ length: CLUSTER_NODES }, async (_, index) => {
      const launched = await startNode(name, node, index, redis.port, options)
      started.push(launched)
      return launched
    })
    const settled = await Promise.allSettled(launches)
    const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure !== undefined) throw failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason))
    const nodes = settled.map((r) => (r as PromiseFulfilledResult<Launched>).value)
    return clusterBroker(name, nodes, redis, async (index) => await startNode(name, node, index, redis.port, options))
  } catch (err) {
    await Promise.all(started.map(async (n) => await n.stop()))
    await redis.stop()
    throw err
  }
}

function clusterBroker (name: BrokerName, initial: readonly Launched[], redis: Launched, startMore: (index: number) => Promise<Launched>): RunningBroker {
  const expectedExits = new Set<number>()
  const nodes: Launched[] = [...initial]
  const first = nodes[0]!
  return {
    name,
    pid: first.pid,
    port: first.port,
    wsPort: null,
    stop: async () => {
      await Promise.all(nodes.map(async (n) => await n.stop()))
      await redis.stop()
    },
    alive: () => redis.alive() && nodes.every((n, i) => expectedExits.has(i) || n.alive()),
    output: () => [
      ...nodes.map((n, i) => `[${nodeId(i)}${n.alive() ? '' : ', exited'}] ${n.output()}`),
      `[redis-server${redis.alive() ? '' : ', exited'}] ${redis.output()}`
    ].join('\n'),
    cluster: {
      nodes: initial.map((n) => ({ port: n.port, pid: n.pid })),
      redisPid: redis.pid,
      redisPort: redis.port,
      expectExit: (index) => { expectedExits.add(index) },
      join: async () => {
        const spawnedAt = performance.now()
        const joined = await startMore(nodes.length)
        nodes.push(joined)
        return { pid: joined.pid, port: joined.port, spawnedAt }
      }
    }
  }
}

function culexCluster (env: BrokerEnvironment, redisInstalled: boolean, redis: string): BrokerRunner {
  const bin = path.relative(env.repoRoot, env.culexBin)
  return {
    name: 'culex-cluster',
    features: { mqtt5: true, websocket: false, cluster: true },
    description: `${CLUSTER_NODES} × culex ${packageVersion(env.repoRoot, '.')} (${bin}) --persistence memory --cluster redis://127.0.0.1:<port> on one ${redis}`,
    unavailable: !redisInstalled ? 'redis-server not on PATH (apt-get install redis-server)' : existsSync(env.culexBin) ? null : `${bin} not built yet`,
    start: async (options) => await startCluster('culex-cluster', (index, port, redisPort, dir) => ({
      command: process.execPath,
      // The flags of culex-memory plus --cluster, so a node's local traffic compares with a single node's.
      args: [
        env.culexBin,
        '--host', LOOPBACK,
        '--port', String(port),
        '--ws-port', '0',
        '--tls-port', '0',
        '--wss-port', '0',
        '--persistence', 'memory',
        '--data-dir', dir,
        '--log-level', 'warn',
        '--cluster', `redis://${LOOPBACK}:${redisPort}`,
        '--node-id', nodeId(index)
      ]
    }), options)
  }
}

function aedesRedisCluster (env: BrokerEnvironment, redisInstalled: boolean, redis: string): BrokerRunner {
  const script = path.join(env.repoRoot, 'benchmarks', 'fixtures', 'aedes-redis.mjs')
  const version = (dir: string): string => packageVersion(env.repoRoot, `node_modules/${dir}`)
  return {
    name: 'aedes-redis-cluster',
    features: { mqtt5: true, websocket: false, cluster: true },
    description: `${CLUSTER_NODES} × aedes ${version('aedes')} + mqemitter-redis ${version('mqemitter-redis')} + aedes-persistence-redis ${version('aedes-persistence-redis')} (benchmarks/fixtures/aedes-redis.mjs) on one ${redis}`,
    unavailable: !redisInstalled ? 'redis-server not on PATH (apt-get install redis-server)' : existsSync(script) ? null : `${script} missing`,
    start: async (options) => await startCluster('aedes-redis-cluster', (index, port, redisPort) => ({
      command: process.execPath,
      args: [script, '--host', LOOPBACK, '--port', String(port), '--redis-port', String(redisPort), '--node-id', nodeId(index)]
    }), options)
  }
}

export function clusterRunners (env: BrokerEnvironment): BrokerRunner[] {
  const redisInstalled = commandExists('redis-server')
  const redis = redisInstalled ? `redis-server ${redisServerVersion()}` : 'redis-server'
  return [culexCluster(env, redisInstalled, redis), aedesRedisCluster(env, redisInstalled, redis)]
}
