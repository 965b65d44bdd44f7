/**
 * The Redis connections of a cluster node (ioredis): one for commands and
 * scripts, one for Pub/Sub notices. Commands fail at once while Redis is
 * unreachable (no offline queue) and after `commandTimeout` when Redis does
 * not answer (a paused server), so nothing waits on Redis unbounded; both
 * connections reconnect by themselves.
 */
import { Redis, type RedisOptions } from './ioredis.js'
import { CulexError } from '../errors.js'

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
    retryStrategy: (times) => Math.min(50 * times, 500)
  }
}

export interface RedisPair {
  readonly commands: Redis
  readonly notices: Redis
  close (): Promise<void>
}

/**
 * Opens both connections; rejects with CULEX_ERR_CLUSTER_UNREACHABLE (one
 * line naming the URL and the cause) when Redis cannot be reached within
 * CONNECT_TIMEOUT_MS or is older than 7.0.
 */
export async function openRedis (url: string): Promise<RedisPair> {
  const commands = new Redis(url, options())
  const notices = new Redis(url, { ...options(), enableOfflineQueue: true })
  // errors are reported through availability (membership); without a listener ioredis prints them.
  // The first one is kept: it names the cause ("connect ECONNREFUSED ...") where connect() only says the connection closed
  let firstError: Error | undefined
  const keep = (err: Error): void => { firstError ??= err }
  commands.on('error', keep)
  notices.on('error', keep)
  const close = async (): Promise<void> => {
    commands.disconnect()
    notices.disconnect()
  }
  try {
    await Promise.all([commands.connect(), notices.connect()])
    const info = await commands.info('server')
    const version = /redis_version:(\d+)\.(\d+)/.exec(info)
    if (version === null || Number(version[1]) < 7) {
      throw new Error(`Redis ${version === null ? '(unknown version)' : `${version[1]}.${version[2]}`} is older than 7.0`)
    }
  } catch (err) {
    await close()
    const cause = firstError ?? err
    const why = cause instanceof Error ? cause.message : String(cause)
    throw new CulexError('CULEX_ERR_CLUSTER_UNREACHABLE', [redactUrl(url), why], { cause: err })
  }
  return { commands, notices, close }
}
