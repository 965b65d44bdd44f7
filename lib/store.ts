/** Opens the store `config.persistence` names. */
import type { Logger } from 'pino'
import type { Config } from './config/schema.js'
import type { AedesPersistence } from './broker.js'

export async function openStore (config: Config, logger: Logger): Promise<AedesPersistence | undefined> {
  logger.debug({ persistence: config.persistence, dataDir: config.dataDir }, 'opening store')
  return undefined
}
