/**
 * The Redis connections of a cluster node (ioredis): one for commands and
 * scripts, one for Pub/Sub notices. Commands fail at once while Redis is
 * unreachable (no offline queue) and after `commandTimeout` when Redis does
 * not answer (a paused server), so nothing waits on Redis unbounded; both
 * connections reconnect by themselves.
 *
 * The URL names one Redis or any node of a Redis Cluster: a server that says
 * `cluster_enabled:1` (INFO cluster) is a Redis Cluster, and the node then
 * talks to it through ioredis' `Cluster` client, which sends each command and
 * script to the master of its keys' slot (the key layout: keys.ts) and
 * subscribes on one node (a classic PUBLISH reaches every node of a Redis
 * Cluster). The rest of lib/cluster sees the same command interface either
 * way, typed as `Redis`; what differs (a second connection, a SCAN of every
 * master) goes through `RedisPair`.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from './ioredis.js'
import { CulexError } from '../errors.js'
import { NODES_KEY } from './keys.js'
import { Script } from './script.js'

/** milliseconds a command may wait for Redis' answer */
export const COMMAND_TIMEOUT_MS = 1000
/** milliseconds a connection attempt may take */
export const CONNECT_TIMEOUT_MS = 2000

/** The URL with its password replaced, for logs and error messages. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(not a URL)'
  }
}

/** PUBLISH from the master of KEYS[1]'s slot */
const PUBLISH = new Script("return redis.call('PUBLISH', ARGV[1], ARGV[2])")

const retryStrategy = (times: number): number => Math.min(50 * times, 500)

function options (): RedisOptions {
  return {
    lazyConnect: true,
    // RESP2: the replies of Lua scripts keep one shape
    protocol: 2,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    keepAlive: 1000,
    retryStrategy
  }
}

/** what a second connection may change of the command connection's options */
export interface ConnectionOverrides {
  commandTimeout?: number
  enableOfflineQueue?: boolean
  enableAutoPipelining?: boolean
  lazyConnect?: boolean
}

export interface RedisPair {
  readonly commands: Redis
  readonly notices: Redis
  /** the URL names a Redis Cluster */
  readonly cluster: boolean
  /** a new connection like `commands` (for blocking reads, or writes kept apart) */
  duplicate (overrides: ConnectionOverrides): Redis
  /** a connection to each master: where a SCAN must go to see every key */
  masters (): Redis[]
  /**
   * A Pub/Sub notice or message, always from the same server, after the
   * notices the scripts publish: on a Redis Cluster, from the master of the
   * `{culex}` slot (a PUBLISH names no key, so ioredis would send each to any
   * node, and two PUBLISHes from two nodes may arrive in either order).
   */
  publish (channel: string, message: string | Buffer): Promise<unknown>
  close (): Promise<void>
}

/** ioredis' Cluster client on the Redis Cluster that `url` names a node of, its per-node connections as `options()`. */
function clusterClient (url: string, overrides: ConnectionOverrides = {}): Cluster {
  const u = new URL(url)
  const { lazyConnect: _l, enableOfflineQueue: _o, retryStrategy: _r, ...perNode } = options()
  const redisOptions: ClusterOptions['redisOptions'] = {
    ...perNode,
    ...(overrides.commandTimeout !== undefined ? { commandTimeout: overrides.commandTimeout } : {}),
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {})
  }
  return new Cluster([{ host: u.hostname, port: u.port === '' ? 6379 : Number(u.port) }], {
    lazyConnect: overrides.lazyConnect ?? true,
    enableOfflineQueue: overrides.enableOfflineQueue ?? false,
    enableAutoPipelining: overrides.enableAutoPipelining ?? false,
    clusterRetryStrategy: retryStrategy,
    slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
    redisOptions
  })
}

/** The typed view the rest of lib/cluster takes: a Cluster client answers the same commands and scripts. */
const asRedis = (cluster: Cluster): Redis => cluster as unknown as Redis

/**
 * Opens both connections; rejects with CULEX_ERR_CLUSTER_UNREACHABLE (one
 * line naming the URL and the cause) when Redis cannot be reached within
 * CONNECT_TIMEOUT_MS or is older than 7.0.
 */
export async function openRedis (url: string): Promise<RedisPair> {
  // errors are reported through availability (membership); without a listener ioredis prints them.
  // The first one is kept: it names the cause ("connect ECONNREFUSED ...") where connect() only says the connection closed
  let firstError: Error | undefined
  const keep = (err: Error): void => { firstError ??= err }
  const opened: Array<{ disconnect: () => void }> = []
  const unreachable = (err: unknown): CulexError => {
    for (const c of opened) c.disconnect()
    const cause = firstError ?? err
    const why = cause instanceof Error ? cause.message : String(cause)
    return new CulexError('CULEX_ERR_CLUSTER_UNREACHABLE', [redactUrl(url), why], { cause: err })
  }
  let cluster: boolean
  const probe = new Redis(url, options())
  probe.on('error', keep)
  opened.push(probe)
  try {
    await probe.connect()
    const info = await probe.info('server')
    const version = /redis_version:(\d+)\.(\d+)/.exec(info)
    if (version === null || Number(version[1]) < 7) {
      throw new Error(`Redis ${version === null ? '(unknown version)' : `${version[1]}.${version[2]}`} is older than 7.0`)
    }
    cluster = /cluster_enabled:1/.test(await probe.info('cluster'))
  } catch (err) {
    throw unreachable(err)
  }
  if (!cluster) {
    const notices = new Redis(url, { ...options(), enableOfflineQueue: true })
    notices.on('error', keep)
    opened.push(notices)
    try {
      await notices.connect()
    } catch (err) {
      throw unreachable(err)
    }
    return {
      commands: probe,
      notices,
      cluster: false,
      duplicate: (overrides) => probe.duplicate(overrides),
      masters: () => [probe],
      publish: async (channel, message) => await probe.publish(channel, message),
      close: async () => { probe.disconnect(); notices.disconnect() }
    }
  }
  probe.disconnect()
  opened.length = 0
  const commands = clusterClient(url)
  const notices = clusterClient(url, { enableOfflineQueue: true })
  commands.on('error', keep)
  notices.on('error', keep)
  opened.push(commands, notices)
  try {
    await Promise.all([commands.connect(), notices.connect()])
  } catch (err) {
    throw unreachable(err)
  }
  return {
    commands: asRedis(commands),
    notices: asRedis(notices),
    cluster: true,
    duplicate: (overrides) => asRedis(clusterClient(url, overrides)),
    masters: () => commands.nodes('master'),
    publish: async (channel, message) => await PUBLISH.run(asRedis(commands), [NODES_KEY], [channel, message]),
    close: async () => { commands.disconnect(); notices.disconnect() }
  }
}
