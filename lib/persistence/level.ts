// LevelDB store on `level` (classic-level) in a data directory. At open it
// checks the format record, then loads every record into its part's index in
// memory (parts/keys.ts has the key layout); afterwards LevelDB is written
// through group commit and read only for message bodies outside the cache
// budget.
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { StoredMember } from './parts/group-log.js'
import type { Logger } from 'pino'
import { decodePacket, decodeRecord, encodeRecord } from './codec.js'
import { CulexError } from '../errors.js'
import { describeDamage, listStoreFiles, missingCurrent } from './damage.js'
import { GroupCommit } from './group-commit.js'
import { repeatedLog } from '../repeated-log.js'
import { BaseStore, KEY, type SubRecord } from './store.js'
import type { PersistenceLimits, SessionMeta, StoredPacket } from './types.js'

/** The on-disk format this code writes; a directory with a higher one is refused. */
export const STORE_FORMAT = 1
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
/** how long an acknowledged message's delete may wait for a batch to join (GroupCommit.delLater) */
const DELETE_LATER_MS = 100

export interface LevelPersistenceOptions {
  dataDir: string
  fsync?: boolean
  limits?: PersistenceLimits
  logger?: Logger
  cacheBytes?: number
}

type Db = Level<string, Uint8Array>

interface InflightState { m?: number | null, p?: StoredPacket }

function errorCode (err: unknown): string | undefined {
  if (err !== null && typeof err === 'object' && 'code' in err) {
    const code = (err as { code: unknown }).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

function isLocked (err: unknown): boolean {
  if (errorCode(err) === 'LEVEL_LOCKED') return true
  const cause = err !== null && typeof err === 'object' && 'cause' in err ? (err as { cause: unknown }).cause : undefined
  return errorCode(cause) === 'LEVEL_LOCKED'
}

function describe (err: unknown): string {
  const cause = err !== null && typeof err === 'object' && 'cause' in err ? (err as { cause: unknown }).cause : undefined
  const base = err instanceof Error ? err.message : String(err)
  return cause instanceof Error ? `${base}: ${cause.message}` : base
}

/** splits `<encoded cid>:<rest>` */
function splitClientKey (rest: string): [string, string] {
  const at = rest.indexOf(':')
  if (at < 0) throw new Error('malformed key')
  return [decodeURIComponent(rest.slice(0, at)), rest.slice(at + 1)]
}

export class LevelPersistence extends BaseStore {
  readonly kind = 'level' as const
  readonly dataDir: string
  readonly #fsync: boolean
  #db: Db | undefined
  #opening: Promise<void> | undefined

  constructor (opts: LevelPersistenceOptions) {
    super({ limits: opts.limits, logger: opts.logger, cacheBytes: opts.cacheBytes ?? DEFAULT_CACHE_BYTES })
    if (typeof opts.dataDir !== 'string' || opts.dataDir.length === 0) {
      throw new CulexError('CULEX_ERR_DATA_DIR_REQUIRED')
    }
    this.dataDir = opts.dataDir
    this.#fsync = opts.fsync ?? false
  }

  /** group-commit counters: batches written and operations in them */
  get writeCounters (): { batches: number, ops: number } {
    return this.backend?.writer.counters ?? { batches: 0, ops: 0 }
  }

  open (): Promise<void> {
    if (this.closed) return Promise.reject(new CulexError('CULEX_ERR_PERSISTENCE_CLOSED'))
    this.#opening ??= this.#open()
    return this.#opening
  }

  async #open (): Promise<void> {
    const dir = this.dataDir
    try {
      await mkdir(dir, { recursive: true })
    } catch (err) {
      throw new CulexError('CULEX_ERR_DATA_DIR_OPEN', [dir, describe(err)], { cause: err })
    }
    let listing
    try {
      listing = await listStoreFiles(dir)
    } catch (err) {
      throw new CulexError('CULEX_ERR_DATA_DIR_OPEN', [dir, describe(err)], { cause: err })
    }
    const noCurrent = missingCurrent(dir, listing)
    if (noCurrent !== undefined) throw noCurrent
    const db: Db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: !listing.hasCurrent })
    try {
      await db.open()
    } catch (err) {
      if (isLocked(err)) throw new CulexError('CULEX_ERR_DATA_DIR_LOCKED', [dir], { cause: err })
      throw await describeDamage(dir, err) ?? new CulexError('CULEX_ERR_DATA_DIR_OPEN', [dir, describe(err)], { cause: err })
    }
    try {
      await this.#checkFormat(db)
      await this.#load(db)
    } catch (err) {
      await db.close().catch(() => {})
      // LevelDB opens a store without reading its tables: a damaged one shows here
      throw await describeDamage(dir, err) ?? err
    }
    this.#db = db
    this.backend = {
      writer: new GroupCommit(db, this.#fsync, (err) => {
        // a full or failing disk fails every batch: a line per interval with the count, not one per batch
        if (this.logger !== undefined) repeatedLog.log(this.logger, 'error', 'write failed\u0000' + dir, { err, dataDir: dir }, 'persistence write failed')
      }, DELETE_LATER_MS),
      readPackets: (keys) => this.#readPackets(keys)
    }
    if (this.corrupt > 0) {
      this.logger?.warn({ dataDir: dir, corrupt: this.corrupt }, 'skipped values that could not be decoded')
    }
  }

  async #checkFormat (db: Db): Promise<void> {
    const raw = await db.get(KEY.format) as Uint8Array | undefined
    if (raw === undefined) {
      // a fresh directory gets the format record; anything else without one
      // was not written by culex (e.g. aedes-persistence-level)
      for await (const key of db.keys({ limit: 1 })) {
        throw new CulexError('CULEX_ERR_DATA_DIR_FOREIGN', [this.dataDir], { cause: new Error(`first key ${JSON.stringify(key)}`) })
      }
      await db.put(KEY.format, encodeRecord({ format: STORE_FORMAT }), { sync: true })
      return
    }
    let format: unknown
    try {
      format = (decodeRecord(raw) as { format?: unknown }).format
    } catch (err) {
      throw new CulexError('CULEX_ERR_DATA_DIR_FOREIGN', [this.dataDir], { cause: err })
    }
    if (typeof format !== 'number') throw new CulexError('CULEX_ERR_DATA_DIR_FOREIGN', [this.dataDir])
    if (format > STORE_FORMAT) {
      throw new CulexError('CULEX_ERR_DATA_FORMAT_TOO_NEW', [this.dataDir, format, STORE_FORMAT])
    }
  }

  #skip (key: string, err: unknown): void {
    this.corrupt++
    this.#undecodable(key, err)
  }

  /**
   * One line for the first damaged value of a kind of record (retained,
   * queue, subscription...), the next ones counted into a line per interval
   * (lib/repeated-log.ts): a damaged store read at open or message by message
   * would otherwise write a line per value.
   */
  #undecodable (key: string, err: unknown): void {
    if (this.logger === undefined) return
    const kind = key.slice(0, key.indexOf(':') + 1)
    repeatedLog.log(this.logger, 'warn', 'undecodable\u0000' + this.dataDir + '\u0000' + kind,
      { dataDir: this.dataDir, kind, key, err: err instanceof Error ? err.message : String(err) }, 'skipping a stored value that cannot be decoded')
  }

  async * #range (db: Db, prefix: string): AsyncGenerator<[string, Uint8Array]> {
    // ';' is the character after ':'
    const upper = prefix.slice(0, -1) + ';'
    for await (const [key, value] of db.iterator({ gte: prefix, lt: upper })) yield [key, value]
  }

  async #load (db: Db): Promise<void> {
    for await (const [key, value] of this.#range(db, 'r:')) {
      try {
        this.retained.restore(key.slice(2), decodePacket(value))
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 's:')) {
      try {
        const [cid, filter] = splitClientKey(key.slice(2))
        const record = decodeRecord(value) as SubRecord
        if (typeof record?.qos !== 'number') throw new Error('subscription without qos')
        this.subscriptions.restore(cid, filter, record)
      } catch (err) { this.#skip(key, err) }
    }
    // in-flight state first (small records), then the bodies in key order
    const states = new Map<string, InflightState>()
    for await (const [key, value] of this.#range(db, 'qi:')) {
      try {
        const state = decodeRecord(value) as InflightState
        if (state === null || typeof state !== 'object') throw new Error('in-flight state is not an object')
        splitClientKey(key.slice(3))
        states.set(key.slice(3), state)
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 'q:')) {
      const rest = key.slice(2)
      try {
        const [cid, seqHex] = splitClientKey(rest)
        const seq = parseInt(seqHex, 16)
        if (!Number.isSafeInteger(seq)) throw new Error('malformed sequence number')
        this.queues.noteSeq(seq)
        const state = states.get(rest)
        states.delete(rest)
        this.queues.restoreQueued(cid, seq, decodePacket(value), state?.p === undefined ? state : undefined)
      } catch (err) { this.#skip(key, err) }
    }
    for (const [rest, state] of states) {
      // PUBREL state has no body; any other leftover lost its body
      try {
        const [cid, seqHex] = splitClientKey(rest)
        const seq = parseInt(seqHex, 16)
        if (!Number.isSafeInteger(seq)) throw new Error('malformed sequence number')
        this.queues.noteSeq(seq)
        if (state.p !== undefined && state.p !== null && typeof state.p === 'object') this.queues.restorePubrel(cid, seq, state.p)
      } catch (err) { this.#skip('qi:' + rest, err) }
    }
    for await (const [key, value] of this.#range(db, 'i:')) {
      try {
        const [cid, id] = splitClientKey(key.slice(2))
        const messageId = parseInt(id, 10)
        if (!Number.isInteger(messageId)) throw new Error('malformed packet id')
        this.incoming.restore(cid, messageId, decodePacket(value))
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 'w:')) {
      try {
        this.wills.restore(decodeURIComponent(key.slice(2)), decodePacket(value))
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 'gm:')) {
      try {
        const member = decodeRecord(value) as StoredMember
        if (member === null || typeof member !== 'object' || typeof member.group !== 'string' || typeof member.clientId !== 'string') {
          throw new Error('malformed shared member')
        }
        this.groupLog.restoreMember(member)
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 'gq:')) {
      try {
        const rest = key.slice(3)
        const at = rest.lastIndexOf(':')
        const seq = parseInt(rest.slice(at + 1), 16)
        if (at < 0 || !Number.isSafeInteger(seq)) throw new Error('malformed shared message key')
        this.groupLog.restoreMessage(decodeURIComponent(rest.slice(0, at)), seq, decodePacket(value))
      } catch (err) { this.#skip(key, err) }
    }
    for await (const [key, value] of this.#range(db, 'x:')) {
      try {
        const meta = decodeRecord(value) as SessionMeta
        if (meta === null || typeof meta !== 'object' || (meta.expiresAt !== null && typeof meta.expiresAt !== 'number') ||
          (meta.owner !== undefined && meta.owner !== null && typeof meta.owner !== 'string')) {
          throw new Error('malformed session metadata')
        }
        this.sessions.restore(decodeURIComponent(key.slice(2)), meta)
      } catch (err) { this.#skip(key, err) }
    }
  }

  async #readPackets (keys: string[]): Promise<Array<StoredPacket | undefined>> {
    const db = this.#db
    if (db === undefined || db.status !== 'open') return keys.map(() => undefined)
    const values = await db.getMany(keys)
    return values.map((value, i) => {
      if (value === undefined) return undefined
      try {
        return decodePacket(value)
      } catch (err) {
        this.#undecodable(keys[i] ?? '', err)
        return undefined
      }
    })
  }

  protected async closeBackend (): Promise<void> {
    const opening = this.#opening
    if (opening !== undefined) await opening.catch(() => {})
    const db = this.#db
    this.#db = undefined
    if (db !== undefined && db.status === 'open') await db.close()
  }
}
