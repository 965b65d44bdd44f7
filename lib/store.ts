/**
 * Opens the store `config.persistence` names: LevelDB in `dataDir` (durable,
 * the default) or memory; a cluster node's store is Redis, on the node's own
 * connection, whatever `persistence` says. aedes opens it in `setup()` when
 * the broker starts.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from './config/schema.js'
import { createPersistence, type CulexPersistence } from './persistence/index.js'

export function openStore (config: Config, logger: Logger, cluster?: { commands: Redis }): CulexPersistence {
  logger.debug({ persistence: cluster !== undefined ? 'redis' : config.persistence, dataDir: config.dataDir }, 'opening store')
  if (cluster !== undefined && config.persistence === 'level') {
    logger.info('a cluster node keeps its sessions in the cluster\'s Redis: the data directory is not used')
  }
  return createPersistence({
    kind: cluster !== undefined ? 'redis' : config.persistence,
    ...(cluster !== undefined ? { redis: { client: cluster.commands, fenced: true } } : {}),
    dataDir: config.dataDir,
    fsync: config.fsync,
    logger: logger.child({ module: 'store' }),
    limits: {
      maxQueuedMessages: config.maxQueuedMessages,
      maxQueuedBytes: config.maxQueuedBytes,
      overflow: config.queueOverflow,
      ...(config.maxRetained !== undefined ? { maxRetained: config.maxRetained } : {}),
      ...(config.maxRetainedPayload !== undefined ? { maxRetainedPayload: config.maxRetainedPayload } : {})
    }
  })
}
