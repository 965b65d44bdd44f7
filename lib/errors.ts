/**
 * The one table of internal error codes. Every error culex raises itself is
 * a CulexError with a stable code from this table, so logs, the CLI and tests
 * match on the code instead of a message. Each code's message is built from
 * typed arguments, so a caller cannot leave a slot empty. The README's
 * "Error codes" section says when each happens and what to do, and
 * test/errors.test.ts keeps the table, the sources and the README in step.
 */
const MESSAGES = {
  CULEX_ERR_CONFIG_INVALID: (detail: string) => `invalid configuration: ${detail}`,
  CULEX_ERR_CONFIG_FILE: (detail: string) => `cannot read the configuration file: ${detail}`,
  CULEX_ERR_LISTEN_FAILED: (detail: string) => `a listener could not be opened: ${detail}`,
  CULEX_ERR_TLS_CONFIG: (detail: string) => `TLS needs both a key and a certificate: ${detail}`,

  CULEX_ERR_DATA_DIR_REQUIRED: () => 'the level store needs a data directory (dataDir)',
  CULEX_ERR_DATA_DIR_LOCKED: (dir: string) => `data directory ${dir} is in use by another culex process`,
  CULEX_ERR_DATA_DIR_OPEN: (dir: string, why: string) => `cannot open data directory ${dir}: ${why}`,
  CULEX_ERR_DATA_FORMAT_TOO_NEW: (dir: string, found: number, supported: number) =>
    `data directory ${dir} was written in store format ${found}, newer than the format ${supported} this culex reads; upgrade culex`,
  CULEX_ERR_DATA_DIR_FOREIGN: (dir: string) =>
    `data directory ${dir} holds data that culex did not write (no format record); refusing to use it`,
  CULEX_ERR_STORE_DAMAGED: (dir: string, what: string) =>
    `data directory ${dir} is damaged: ${what}; run \`culex repair --data-dir ${dir}\` to keep what can be kept, or restore a backup`,
  CULEX_ERR_REPAIR_NO_STORE: (dir: string) => `data directory ${dir} holds no LevelDB store to repair`,
  CULEX_ERR_REPAIR_FAILED: (dir: string, why: string) =>
    `repairing data directory ${dir} failed: ${why}; restore a backup (the files LevelDB could not use are in ${dir}/lost)`,
  CULEX_ERR_PERSISTENCE_CLOSED: () => 'the persistence store is closed',
  CULEX_ERR_NO_SUCH_PACKET: () => 'no such packet',
  CULEX_ERR_CLUSTER_UNREACHABLE: (url: string, why: string) => `cannot reach the cluster's Redis at ${url}: ${why}`,
  CULEX_ERR_CLUSTER_NODE_ID_IN_USE: (id: string) => `node id ${id} is held by another live node of the cluster; give this node another --node-id`,
  CULEX_ERR_CLUSTER_NOT_DURABLE: (url: string, found: string) =>
    `--fsync needs the cluster's Redis at ${url} to have appendonly yes and appendfsync always, and ${found}; set them (CONFIG SET appendonly yes, CONFIG SET appendfsync always, and in redis.conf), or run without --fsync`,
  CULEX_ERR_SESSION_FENCED: (clientIds: string) =>
    `session write refused: a later claim of client id ${clientIds} on another node owns the session (stale epoch)`,

  CULEX_ERR_PASSWORD_FILE_SYNTAX: (detail: string) => detail,
  CULEX_ERR_INVALID_USERNAME: (detail: string) => detail,
  CULEX_ERR_INVALID_PASSWORD: (detail: string) => detail,
  CULEX_ERR_INVALID_HASH_PARAMETERS: (detail: string) => detail,
  CULEX_ERR_ACL_SYNTAX: (detail: string) => detail
} as const satisfies Record<`CULEX_ERR_${string}`, (...args: never) => string>

export type ErrorCode = keyof typeof MESSAGES

/** The arguments of one code's message, in order. */
export type ErrorArgs<C extends ErrorCode> = Parameters<typeof MESSAGES[C]>

export interface CulexErrorOptions {
  cause?: unknown
  /** 1-based line of the file being parsed, when the error is about one line. */
  line?: number
}

/** Every code, for documentation and tests. */
export const ErrorCodes = Object.freeze(Object.keys(MESSAGES) as ErrorCode[])

/** A code without message arguments may leave them out. */
type ConstructorRest<C extends ErrorCode> = ErrorArgs<C> extends []
  ? [args?: [], options?: CulexErrorOptions]
  : [args: ErrorArgs<C>, options?: CulexErrorOptions]

export class CulexError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C
  readonly line: number | undefined

  constructor (code: C, ...[args, options]: ConstructorRest<C>) {
    const message = (MESSAGES[code] as (...a: readonly unknown[]) => string)(...(args ?? []))
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CulexError'
    this.code = code
    this.line = options?.line
  }
}

export function isCulexError<C extends ErrorCode = ErrorCode> (err: unknown, code?: C): err is CulexError<C> {
  return err instanceof CulexError && (code === undefined || err.code === code)
}
