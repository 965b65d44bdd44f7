/**
 * A private Redis Cluster of three masters for a test: three redis-server
 * processes with --cluster-enabled yes on free loopback ports in one
 * temporary directory (no RDB, no AOF), joined by `redis-cli --cluster
 * create` with no replicas; ready once every node says cluster_state:ok.
 * Stopped by PID and the directory removed at teardown (as redis.ts does
 * for a single server).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort, pingRedis } from './redis.js'
import { waitFor } from './wait.js'

export interface RedisClusterProcess {
  /** the masters' ports, in the order created (slots 0-5460, 5461-10922, 10923-16383) */
  ports: number[]
  /** a URL naming the first master: culex finds the others */
  url: string
  children: ChildProcess[]
}

/** A redis-cli command against one node (no redirection), its output trimmed. */
export function clusterCli (port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), '--raw', ...args], { encoding: 'utf8', timeout: 5000 }).trim()
}

/** The port of the master serving `key`'s slot. */
export function masterOf (cluster: RedisClusterProcess, key: string): number {
  const slot = Number(clusterCli(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', key))
  for (const line of clusterCli(cluster.ports[0] as number, 'CLUSTER', 'NODES').split('\n')) {
    const fields = line.split(' ')
    if (!(fields[2] ?? '').includes('master')) continue
    const port = Number(/:(\d+)@/.exec(fields[1] ?? '')?.[1])
    for (const range of fields.slice(8)) {
      const [from, to] = range.split('-').map(Number)
      if (from !== undefined && slot >= from && slot <= (to ?? from)) return port
    }
  }
  throw new Error(`no master serves slot ${slot} of ${key}`)
}

/** Every key of the cluster matching `pattern`, by the master holding it (KEYS on each: a test's few keys). */
export function keysByMaster (cluster: RedisClusterProcess, pattern: string): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const port of cluster.ports) out.set(port, clusterCli(port, 'KEYS', pattern).split('\n').filter((k) => k !== ''))
  return out
}

export async function startRedisCluster (t: Test, masters = 3): Promise<RedisClusterProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'culex-rcluster-'))
  const ports: number[] = []
  const children: ChildProcess[] = []
  const stderr: string[] = []
  let failed: Error | undefined
  const exits: Array<Promise<unknown>> = []
  t.teardown(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    await Promise.all(exits)
    rmSync(dir, { recursive: true, force: true })
  })
  for (let i = 0; i < masters; i++) {
    const port = await freePort()
    ports.push(port)
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] })
    stderr[i] = ''
    child.stderr?.on('data', (d: Buffer) => { stderr[i] += d.toString() })
    child.on('error', (err) => { failed = err })
    exits.push(once(child, 'exit').catch(() => undefined))
    children.push(child)
  }
  for (const port of ports) {
    await waitFor(async () => {
      if (failed !== undefined) throw new Error(`cannot run redis-server (apt-get install redis-server): ${failed.message}`)
      return await pingRedis(port)
    }, { timeout: 10000, step: 20, what: () => `redis-server on port ${port} answering PING (${stderr.join(' ')})` })
  }
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    { encoding: 'utf8', timeout: 20000, stdio: ['ignore', 'pipe', 'pipe'] })
  await waitFor(() => ports.every((p) => clusterCli(p, 'CLUSTER', 'INFO').includes('cluster_state:ok')),
    { timeout: 15000, step: 100, what: 'every node of the Redis Cluster saying cluster_state:ok' })
  return { ports, url: `redis://127.0.0.1:${ports[0] as number}`, children }
}
