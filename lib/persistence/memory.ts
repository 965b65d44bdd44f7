// In-memory store (tests, benchmarks, `--persistence memory`): the shared
// store logic with no backend. Nothing survives the process.
import type { Logger } from 'pino'
import { CulexError } from '../errors.js'
import { BaseStore } from './store.js'
import type { PersistenceLimits } from './types.js'

export interface MemoryPersistenceOptions {
  limits?: PersistenceLimits
  logger?: Logger
}

export class MemoryPersistence extends BaseStore {
  readonly kind = 'memory' as const

  constructor (opts: MemoryPersistenceOptions = {}) {
    super(opts)
  }

  async open (): Promise<void> {
    if (this.closed) throw new CulexError('CULEX_ERR_PERSISTENCE_CLOSED')
  }

  protected async closeBackend (): Promise<void> {}
}
