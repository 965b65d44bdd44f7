// `culex repair`: LevelDB's own repair of a damaged data directory, then a
// check that culex's store opens on what was kept and what it holds.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { encodeRecord } from './codec.js'
import { listStoreFiles } from './damage.js'
import { CulexError } from '../errors.js'
import { LevelPersistence, STORE_FORMAT } from './level.js'
import { KEY } from './store.js'

/** level's Node.js export is classic-level's ClassicLevel, whose static repair() level's types leave out. */
const LevelWithRepair = Level as unknown as { repair: (location: string) => Promise<void> }

/** Key prefixes of culex's store layout (store.ts KEY). */
const CULEX_KEY = /^(?:r|s|q|qi|i|w|x|gm|gq):/

export interface RepairReport {
  dataDir: string
  /** files LevelDB moved to DIR/lost: the ones it replaced and the ones it could not read */
  lost: string[]
  /** the format record was lost with a damaged table and written again */
  formatRestored: boolean
  /** what culex's store holds once opened on the repaired directory */
  holds: { sessions: number, subscriptions: number, retained: number, queued: number, wills: number }
  /** stored values that could not be decoded; culex skips them */
  undecodable: number
}

async function lostFiles (dir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(join(dir, 'lost')))
  } catch {
    return new Set()
  }
}

function isLocked (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    if ((e as { code?: unknown }).code === 'LEVEL_LOCKED') return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

/**
 * LevelDB's repairer takes no lock, so a culex still running on the
 * directory must be ruled out first: opening it takes the lock, and
 * `createIfMissing: false` keeps the probe from starting an empty store in a
 * directory whose CURRENT is missing.
 */
async function refuseIfInUse (dir: string): Promise<void> {
  const probe = new Level(dir, { createIfMissing: false })
  try {
    await probe.open()
  } catch (err) {
    if (isLocked(err)) throw new CulexError('CULEX_ERR_DATA_DIR_LOCKED', [dir], { cause: err })
    return // damaged: what the repair is for
  }
  await probe.close()
}

/**
 * A culex store whose format record was in a table the repair could not
 * keep would be refused as not culex's: write the record again when every
 * key left is in culex's layout.
 */
async function restoreFormat (dir: string): Promise<boolean> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false })
  await db.open()
  try {
    if (await db.get(KEY.format) !== undefined) return false
    let any = false
    for await (const key of db.keys()) {
      if (!CULEX_KEY.test(key)) return false
      any = true
    }
    if (!any) return false
    await db.put(KEY.format, encodeRecord({ format: STORE_FORMAT }), { sync: true })
    return true
  } finally {
    await db.close()
  }
}

export async function repairStore (dataDir: string): Promise<RepairReport> {
  const listing = await listStoreFiles(dataDir)
  if (!listing.hasCurrent && listing.dataFiles.length === 0) throw new CulexError('CULEX_ERR_REPAIR_NO_STORE', [dataDir])
  await refuseIfInUse(dataDir)
  const lostBefore = await lostFiles(dataDir)
  let formatRestored: boolean
  try {
    await LevelWithRepair.repair(dataDir)
    formatRestored = await restoreFormat(dataDir)
  } catch (err) {
    throw new CulexError('CULEX_ERR_REPAIR_FAILED', [dataDir, err instanceof Error ? err.message : String(err)], { cause: err })
  }
  const lost = [...await lostFiles(dataDir)].filter((f) => !lostBefore.has(f)).sort()
  const store = new LevelPersistence({ dataDir })
  try {
    await store.open()
  } catch (err) {
    throw new CulexError('CULEX_ERR_REPAIR_FAILED', [dataDir, `the store still does not open (${err instanceof Error ? err.message : String(err)})`], { cause: err })
  }
  const stats = store.stats()
  await store.close()
  return {
    dataDir,
    lost,
    formatRestored,
    holds: { sessions: stats.sessions, subscriptions: stats.subscriptions, retained: stats.retained, queued: stats.queued, wills: stats.wills },
    undecodable: stats.corrupt
  }
}
