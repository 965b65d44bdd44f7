// Internal error codes of the persistence layer (re-exported by lib/errors.ts).
// Each entry is the code and a message template; `%s` slots are filled in
// order by persistenceError().

export const PersistenceErrors = {
  CULEX_ERR_DATA_DIR_REQUIRED: 'the level store needs a data directory (dataDir)',
  CULEX_ERR_DATA_DIR_LOCKED: 'data directory %s is in use by another culex process',
  CULEX_ERR_DATA_DIR_OPEN: 'cannot open data directory %s: %s',
  CULEX_ERR_DATA_FORMAT_TOO_NEW: 'data directory %s was written in store format %s, newer than the format %s this culex reads; upgrade culex',
  CULEX_ERR_STORE_DAMAGED: 'data directory %s is damaged: %s; run `culex repair --data-dir %s` to keep what can be kept, or restore a backup',
  CULEX_ERR_REPAIR_NO_STORE: 'data directory %s holds no LevelDB store to repair',
  CULEX_ERR_REPAIR_FAILED: 'repairing data directory %s failed: %s; restore a backup (the files LevelDB could not use are in %s/lost)',
  CULEX_ERR_DATA_DIR_FOREIGN: 'data directory %s holds data that culex did not write (no format record); refusing to use it',
  CULEX_ERR_PERSISTENCE_CLOSED: 'the persistence store is closed',
  CULEX_ERR_PERSISTENCE_NOT_OPEN: 'the persistence store is not open; call setup() or open() first',
  CULEX_ERR_NO_SUCH_PACKET: 'no such packet',
  CULEX_ERR_WRITE_FAILED: 'writing to the data directory failed: %s'
} as const

export type PersistenceErrorCode = keyof typeof PersistenceErrors

export class CulexPersistenceError extends Error {
  readonly code: PersistenceErrorCode

  constructor (code: PersistenceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CulexPersistenceError'
    this.code = code
  }
}

export function persistenceError (code: PersistenceErrorCode, args: ReadonlyArray<string | number> = [], cause?: unknown): CulexPersistenceError {
  let i = 0
  const message = PersistenceErrors[code].replace(/%s/g, () => String(args[i++] ?? ''))
  return new CulexPersistenceError(code, message, cause === undefined ? undefined : { cause })
}
