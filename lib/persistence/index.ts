// culex persistence: the aedes async persistence interface plus session
// metadata, stats and drop events, over memory, LevelDB or Redis.
import { CulexError } from '../errors.js'
import { LevelPersistence } from './level.js'
import { MemoryPersistence } from './memory.js'
import { RedisPersistence } from './redis.js'
import type { CulexPersistence, PersistenceOptions } from './types.js'

export type * from './types.js'
export { CulexError, ErrorCodes, isCulexError, type ErrorCode } from '../errors.js'
export { MemoryPersistence } from './memory.js'
export { LevelPersistence, STORE_FORMAT } from './level.js'
export { RedisPersistence } from './redis.js'
export { DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES } from './store.js'
export { attachSessionExpiry, type SessionExpiryHandle, type SessionExpiryOptions, type SessionBroker } from './session-expiry.js'

export function createPersistence (opts: PersistenceOptions): CulexPersistence {
  switch (opts.kind) {
    case 'memory':
      return new MemoryPersistence({ limits: opts.limits, logger: opts.logger })
    case 'level':
      if (typeof opts.dataDir !== 'string' || opts.dataDir.length === 0) throw new CulexError('CULEX_ERR_DATA_DIR_REQUIRED')
      return new LevelPersistence({
        dataDir: opts.dataDir,
        fsync: opts.fsync,
        limits: opts.limits,
        logger: opts.logger,
        cacheBytes: opts.cacheBytes
      })
    case 'redis':
      if (opts.redis === undefined) throw new TypeError('the redis store needs opts.redis (a connection or a URL)')
      return new RedisPersistence({
        ...(opts.redis.client !== undefined ? { redis: opts.redis.client } : {}),
        ...(opts.redis.url !== undefined ? { url: opts.redis.url } : {}),
        ...(opts.redis.prefix !== undefined ? { prefix: opts.redis.prefix } : {}),
        fenced: opts.redis.fenced ?? false,
        limits: opts.limits,
        logger: opts.logger
      })
    default:
      throw new TypeError(`unknown persistence kind ${JSON.stringify((opts as { kind?: unknown }).kind)}`)
  }
}
