// What LevelDB's errors say about a damaged data directory, in words an
// operator can act on: which file is damaged and how, instead of a raw
// LevelDB message. Used at open (level.ts) and by `culex repair`.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CulexError } from '../errors.js'

/** Files LevelDB writes: tables, write-ahead logs, manifests. */
const LEVELDB_DATA_FILE = /^(?:\d+\.(?:ldb|sst|log)|MANIFEST-\d+)$/

export interface DirListing {
  hasCurrent: boolean
  /** tables, logs and manifests */
  dataFiles: string[]
}

/** What a data directory holds; an absent directory holds nothing. */
export async function listStoreFiles (dir: string): Promise<DirListing> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { hasCurrent: false, dataFiles: [] }
    throw err
  }
  return { hasCurrent: names.includes('CURRENT'), dataFiles: names.filter((n) => LEVELDB_DATA_FILE.test(n)) }
}

/**
 * A directory with LevelDB files but no CURRENT: LevelDB, asked to create a
 * store there, would start an empty one and delete the old tables as
 * obsolete, so this is refused before LevelDB ever sees it.
 */
export function missingCurrent (dir: string, listing: DirListing): CulexError | undefined {
  if (listing.hasCurrent || listing.dataFiles.length === 0) return undefined
  return damaged(dir, 'the CURRENT file is missing, so LevelDB cannot tell which MANIFEST describes the store')
}

function damaged (dir: string, what: string, cause?: unknown): CulexError {
  return new CulexError('CULEX_ERR_STORE_DAMAGED', [dir, what], { cause })
}

interface LevelFailure { code: 'LEVEL_CORRUPTION' | 'LEVEL_IO_ERROR', message: string }

/** The LevelDB corruption or I/O error in an error's cause chain, if any. */
function levelFailure (err: unknown): LevelFailure | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code
    if ((code === 'LEVEL_CORRUPTION' || code === 'LEVEL_IO_ERROR') && e instanceof Error) return { code, message: e.message.replace(/\s+/g, ' ') }
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** I/O errors that say nothing about the files' contents: the operator fixes the machine, not the store. */
const NOT_DAMAGE = /Permission denied|No space left|Read-only file system|Too many open files/i

async function currentManifest (dir: string): Promise<string | undefined> {
  try {
    const name = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim()
    return /^MANIFEST-\d+$/.test(name) ? name : undefined
  } catch {
    return undefined
  }
}

/**
 * The store-damage error for a LevelDB failure at open or while reading the
 * store, or undefined when the failure is not damage to the files (a lock, a
 * permission, a full disk).
 */
export async function describeDamage (dir: string, err: unknown): Promise<CulexError | undefined> {
  const failure = levelFailure(err)
  if (failure === undefined || NOT_DAMAGE.test(failure.message)) return undefined
  const leveldb = `LevelDB: ${failure.message}`
  const table = /(\d+\.(?:ldb|sst))\b/.exec(failure.message)?.[1]
  if (table !== undefined) {
    const how = failure.code === 'LEVEL_IO_ERROR' ? 'cannot be read (truncated, emptied or missing)' : 'is corrupt'
    return damaged(dir, `table file ${table} ${how} (${leveldb})`, err)
  }
  if (/CURRENT/.test(failure.message)) return damaged(dir, `the CURRENT file is damaged (${leveldb})`, err)
  if (/descriptor|MANIFEST/i.test(failure.message)) {
    const manifest = await currentManifest(dir) ?? 'the MANIFEST file'
    return damaged(dir, `${manifest} is damaged (${leveldb})`, err)
  }
  if (/\d+\.log\b/.test(failure.message)) return damaged(dir, `the write-ahead log is damaged (${leveldb})`, err)
  if (failure.code === 'LEVEL_CORRUPTION') return damaged(dir, `LevelDB reports corruption (${leveldb})`, err)
  return undefined
}
