/**
 * What "acknowledged" is worth with the cluster's Redis (README "Cluster",
 * durability): a PUBACK means the write is in Redis, and what Redis keeps of
 * it through a crash or a power loss is decided by its own persistence
 * settings. At start a node reads them (CONFIG GET), says in one log line
 * what a Redis crash or power loss can lose with them, and with `--fsync`
 * refuses to run unless nothing acknowledged can be lost: `appendonly yes`
 * with `appendfsync always` (Redis 7.0 has no WAITAOF to ask per write).
 */
import type { Redis } from 'ioredis'
import { CulexError } from '../errors.js'

/** Redis' persistence settings, or why they could not be read. */
export type RedisDurability =
  | { known: true, appendonly: string, appendfsync: string, save: string }
  | { known: false, why: string }

/** Reads appendonly, appendfsync and save; a refused CONFIG (renamed, or denied by an ACL) is reported, not thrown. */
export async function readDurability (redis: Pick<Redis, 'config'>): Promise<RedisDurability> {
  try {
    const reply = await redis.config('GET', 'appendonly') as string[]
    const fsync = await redis.config('GET', 'appendfsync') as string[]
    const save = await redis.config('GET', 'save') as string[]
    return { known: true, appendonly: reply[1] ?? '', appendfsync: fsync[1] ?? '', save: save[1] ?? '' }
  } catch (err) {
    return { known: false, why: err instanceof Error ? err.message : String(err) }
  }
}

/** True when a Redis crash or power loss loses nothing Redis acknowledged. */
export function losesNothing (d: RedisDurability): boolean {
  return d.known && d.appendonly === 'yes' && d.appendfsync === 'always'
}

/** The one log line: the settings, and what a Redis crash or power loss can lose with them. */
export function describeDurability (d: RedisDurability): string {
  if (!d.known) {
    return `Redis durability unknown: CONFIG GET was refused (${d.why}); culex cannot tell what a Redis crash or power loss can lose`
  }
  const settings = `appendonly ${d.appendonly}, appendfsync ${d.appendfsync}`
  if (d.appendonly !== 'yes') {
    const snapshots = d.save.trim() === ''
      ? 'no RDB snapshots either (save ""): a Redis crash or restart loses everything culex acknowledged'
      : `a Redis crash or power loss loses everything acknowledged since the last RDB snapshot (save "${d.save}")`
    return `Redis durability: ${settings}: ${snapshots}`
  }
  switch (d.appendfsync) {
    case 'always':
      return `Redis durability: ${settings}: every write is on disk before Redis answers; a Redis crash or power loss loses nothing acknowledged`
    case 'everysec':
      return `Redis durability: ${settings}: a Redis crash or power loss can lose up to about a second of acknowledged writes (2 s when the disk is slow)`
    default:
      return `Redis durability: ${settings}: a crash of redis-server alone loses nothing acknowledged, a power loss whatever the OS had not yet written (typically up to 30 s)`
  }
}

/** With `--fsync`: throws CULEX_ERR_CLUSTER_NOT_DURABLE unless Redis loses nothing acknowledged. */
export function requireFsync (d: RedisDurability, url: string): void {
  if (losesNothing(d)) return
  const found = d.known ? `it has appendonly ${d.appendonly}, appendfsync ${d.appendfsync}` : `culex cannot read them: CONFIG GET was refused (${d.why})`
  throw new CulexError('CULEX_ERR_CLUSTER_NOT_DURABLE', [url, found])
}
