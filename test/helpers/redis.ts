/**
 * A private redis-server for a test, and culex nodes joined to it as child
 * processes. Redis listens on a free loopback port with a temporary --dir and
 * no RDB snapshots; everything is stopped by its PID in teardown.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { startCulex, type CulexProcess } from './cli.js'
import { waitFor } from './wait.js'

export interface RedisOptions {
  /** --appendonly yes with this --appendfsync; unset: no AOF */
  appendfsync?: 'always' | 'everysec' | 'no'
  /** listen on this port (a restart on the same port); default: a free one */
  port?: number
  /** reuse this --dir (a restart that reads its AOF back); default: a new temporary one */
  dir?: string
  /** more redis-server arguments, e.g. ['--maxmemory', '2mb'] */
  args?: string[]
}

export interface RedisProcess {
  child: ChildProcess
  port: number
  url: string
  dir: string
  /** SIGKILL, and the exit */
  kill (): Promise<void>
  /** a new redis-server on the same port and directory */
  restart (): Promise<RedisProcess>
}

/** A loopback port nobody listens on now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Sends PING over a raw socket; true on +PONG (no Redis client needed here). */
export async function pingRedis (port: number, timeoutMs = 500): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (d: Buffer) => done(d.toString().startsWith('+PONG')))
  })
}

/** Starts redis-server; `t.teardown` kills it (if still running) and removes its directory. */
export async function startRedis (t: Test, options: RedisOptions = {}): Promise<RedisProcess> {
  const ownDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'culex-redis-'))
  const port = options.port ?? await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning',
    ...(options.appendfsync !== undefined ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync] : ['--appendonly', 'no']), ...(options.args ?? [])]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  let failed: Error | undefined
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  // without redis-server installed spawn fails: say so instead of an unhandled 'error'
  child.on('error', (err) => { failed = err })
  const exit = once(child, 'exit').catch(() => undefined)
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      // a SIGSTOPped server ignores SIGKILL's exit until continued on some kernels' accounting; SIGCONT first is harmless
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await exit
    }
  }
  t.teardown(async () => {
    await stop()
    if (ownDir) rmSync(dir, { recursive: true, force: true })
  })
  await waitFor(async () => {
    if (failed !== undefined) throw new Error(`cannot run redis-server (apt-get install redis-server): ${failed.message}`)
    return await pingRedis(port)
  }, { timeout: 10000, step: 20, what: () => `redis-server on port ${port} answering PING (${stderr})` })
  const redis: RedisProcess = {
    child,
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill: stop,
    restart: () => startRedis(t, { ...options, port, dir })
  }
  return redis
}

/** The arguments every test node gets: ephemeral ports, memory store, quiet, short lease. */
export function nodeArgs (redis: Pick<RedisProcess, 'url'>, extra: string[] = []): string[] {
  return ['--port', 'auto', '--ws-port', 'auto', '--persistence', 'memory', '--sys-interval', '0', '--log-level', 'info', '--cluster', redis.url, ...extra]
}

/** A culex node of the cluster at `redis` as a child process; `t.teardown` kills it by PID. */
export async function startNode (t: Test, redis: Pick<RedisProcess, 'url'>, extra: string[] = [], env: Record<string, string> = {}): Promise<CulexProcess> {
  const node = await startCulex(nodeArgs(redis, extra), env)
  t.teardown(async () => {
    if (node.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill('SIGCONT')
      node.child.kill('SIGKILL')
      await node.exit
    }
  })
  return node
}

export interface ClusterOptions {
  /** the Redis the nodes join */
  redis?: RedisOptions
  /** more arguments for every node, after its --node-id */
  args?: string[]
  /** more arguments for one node, by its id, after `args` */
  nodeArgs?: Record<string, string[]>
  /** environment for every node */
  env?: Record<string, string>
}

/**
 * A private Redis and one node per id of `ids` joined to it (`--node-id`
 * the id), started one after the other in that order; everything is
 * stopped by `t.teardown`.
 */
export async function startCluster<const Ids extends readonly string[]> (t: Test, ids: Ids, options: ClusterOptions = {}): Promise<{ redis: RedisProcess, nodes: { [K in keyof Ids]: CulexProcess } }> {
  const redis = await startRedis(t, options.redis)
  const nodes: CulexProcess[] = []
  for (const id of ids) nodes.push(await startNode(t, redis, ['--node-id', id, ...(options.args ?? []), ...(options.nodeArgs?.[id] ?? [])], options.env))
  return { redis, nodes: nodes as unknown as { [K in keyof Ids]: CulexProcess } }
}

/**
 * Every retained change any node writes to Redis, as announced on
 * `{culex}:retained` (lib/cluster/retained.ts), from now on; the watching
 * connection closes at teardown.
 */
export async function retainedNotices (t: Test, redis: Pick<RedisProcess, 'url'>): Promise<string[]> {
  const notices = new Redis(redis.url, { lazyConnect: true })
  t.teardown(() => { notices.disconnect() })
  await notices.connect()
  const changes: string[] = []
  notices.on('messageBuffer', (_channel: Buffer, bytes: Buffer) => { changes.push(bytes.toString('latin1')) })
  await notices.subscribe('{culex}:retained')
  return changes
}

/** A redis-cli command against `redis`, its output trimmed. */
export function redisCli (redis: Pick<RedisProcess, 'port'>, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(redis.port), '--no-raw', ...args], { encoding: 'utf8', timeout: 5000 }).trim()
}

/** A node's /readyz on its WebSocket listener: the HTTP status and the JSON body. */
export async function readyz (node: CulexProcess): Promise<{ status: number, body: { status: string, reasons?: string[] } }> {
  const ws = node.logs.find((l) => l.listener === 'ws')?.url
  if (typeof ws !== 'string') throw new Error('the node has no WebSocket listener')
  const url = new URL(ws)
  const res = await fetch(`http://${url.host}/readyz`, { signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: await res.json() as { status: string, reasons?: string[] } }
}

/** Resolves when a log line of `node` satisfies `match`; rejects after `timeout` ms. */
export async function waitForLog (node: CulexProcess, match: (l: Record<string, unknown>) => boolean, what: string, timeout = 10000): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined
  await waitFor(() => (found = node.logs.find(match)) !== undefined, { timeout, step: 20, what })
  return found as Record<string, unknown>
}

/** Something that publishes (an MQTT.js client). */
interface Publisher { publishAsync: (topic: string, message: string, opts: { qos: 0 | 1 }) => Promise<unknown> }

/**
 * Publishes a probe to `topic` until `seen()`: the routes of the
 * subscriptions made on other nodes have reached the publisher's node.
 */
export async function routeReady (publisher: Publisher, topic: string, seen: () => boolean, opts: { qos?: 0 | 1, timeout?: number, step?: number } = {}): Promise<void> {
  await waitFor(async () => {
    if (seen()) return true
    await publisher.publishAsync(topic, 'probe', { qos: opts.qos ?? 0 })
    return seen()
  }, { timeout: opts.timeout ?? 5000, step: opts.step ?? 20, what: `the route for ${topic}` })
}
