/**
 * Opens the store `config.persistence` names: LevelDB in `dataDir` (durable,
 * the default) or memory. aedes opens it in `setup()` when the broker starts.
 */
import type { Logger } from 'pino'
import type { Config } from './config/schema.js'
import { createPersistence, type CulexPersistence } from './persistence/index.js'

export function openStore (config: Config, logger: Logger): CulexPersistence {
  logger.debug({ persistence: config.persistence, dataDir: config.dataDir }, 'opening store')
  return createPersistence({
    kind: config.persistence,
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
