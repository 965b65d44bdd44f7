// Where the Redis store writes: one hash per session, `culex:session:{<client
// id>}` (the braces a Redis Cluster hash tag, so every write of a session is
// on one shard), whose fields are the level store's keys of that session
// (parts/keys.ts: s:, q:, qi:, i:, w:, x:), the ids of the routed QoS 2
// messages it got (routed-ids.ts: u:) and `epoch`. The group commit's
// batch becomes one Lua script per session, applied atomically; with fencing
// on, the script refuses the write unless the hash's epoch is the one the
// writer holds: the epoch of the claim (lib/cluster/registry.ts) that loaded
// the session on this node (ADOPT, run by the claiming node right after its
// claim). A node paused past a takeover thus cannot write over the session
// its new node loaded. Keys that belong to no session (retained messages,
// shared subscription groups) are not written: in a cluster the retained
// messages are lib/cluster/retained.ts', and shared groups stay per node.
import type { Redis } from 'ioredis'
import { CulexError } from '../errors.js'
import type { BatchTarget, ChainedBatchLike } from './group-commit.js'
import { clusterWriteRefused } from '../cluster/refusal.js'

export const EPOCH_FIELD = 'epoch'

/** the hash of one session */
export function sessionKey (prefix: string, clientId: string): string {
  return `${prefix}session:{${clientId}}`
}

const CID_THEN_REST = new Set(['s:', 'q:', 'qi:', 'i:', 'u:'])
const CID_ONLY = new Set(['w:', 'x:'])

/** The client id a store key belongs to when it is part of a session; undefined otherwise. */
export function sessionOf (key: string): string | undefined {
  const colon = key.indexOf(':')
  if (colon < 0) return undefined
  const kind = key.slice(0, colon + 1)
  if (CID_ONLY.has(kind)) return decodeURIComponent(key.slice(colon + 1))
  if (!CID_THEN_REST.has(kind)) return undefined
  const end = key.indexOf(':', colon + 1)
  return end < 0 ? undefined : decodeURIComponent(key.slice(colon + 1, end))
}

/**
 * KEYS: the session hash. ARGV: the writer's epoch ('' = not fenced), the
 * number of fields set, then field, value pairs, then the fields deleted.
 * Returns 0, or -1 when refused (the hash names another epoch).
 */
const WRITE = `
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -1 end
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for j = i, #ARGV do redis.call('HDEL', KEYS[1], ARGV[j]) end
return 0
`

/**
 * A claim at ARGV[1] adopts the session: the hash's epoch becomes it, unless
 * a later claim adopted it already (nil). ARGV[2]: 'load' returns every
 * field as it was (`epoch`: the claim that adopted it before), 'wipe'
 * deletes them (Clean Start), 'keep' returns none (this node held the epoch
 * just before). KEYS: the session hash.
 */
const ADOPT = `
local epoch = tonumber(ARGV[1])
if epoch < tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') then return false end
if ARGV[2] == 'wipe' then redis.call('DEL', KEYS[1]) end
local fields = {}
if ARGV[2] == 'load' then fields = redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
return fields
`

export type AdoptMode = 'load' | 'wipe' | 'keep'

/**
 * The second step of a session's expiry (lib/cluster/session-expiry.ts): the
 * hash goes unless a claim at or after the expiry's epoch (ARGV[1]) adopted
 * it since. KEYS: the session hash. Returns 1 when deleted.
 */
export const EXPIRED_WIPE = `
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') >= tonumber(ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[1])
`

/** the scripts as ioredis' defineCommand makes them (EVALSHA, EVAL on NOSCRIPT) */
interface SessionCommands {
  culexSessionWrite (key: string, ...args: Array<string | Buffer>): Promise<number>
  culexSessionAdoptBuffer (key: string, epoch: string, mode: AdoptMode): Promise<Buffer[] | null>
}

function commands (redis: Redis): SessionCommands {
  return redis as unknown as SessionCommands
}

export function defineSessionScripts (redis: Redis): void {
  if (typeof (redis as Partial<SessionCommands>).culexSessionWrite === 'function') return
  redis.defineCommand('culexSessionWrite', { numberOfKeys: 1, lua: WRITE })
  redis.defineCommand('culexSessionAdopt', { numberOfKeys: 1, lua: ADOPT })
}

export interface AdoptedSession {
  /** the session's fields ('load'; none otherwise) */
  fields: Array<[string, Buffer]>
  /** the epoch of the claim that had adopted the hash before ('load'; 0: none) */
  before: number
}

/** Adopts a session for a claim at `epoch`; resolves with its fields ('load'), or null when a later claim adopted it. */
export async function adoptSession (redis: Redis, key: string, epoch: number, mode: AdoptMode): Promise<AdoptedSession | null> {
  const flat = await commands(redis).culexSessionAdoptBuffer(key, String(epoch), mode)
  if (flat === null) return null
  const fields: Array<[string, Buffer]> = []
  let before = 0
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = (flat[i] as Buffer).toString()
    if (field === EPOCH_FIELD) before = Number((flat[i + 1] as Buffer).toString())
    else fields.push([field, flat[i + 1] as Buffer])
  }
  return { fields, before }
}

export interface SessionWriterOptions {
  redis: Redis
  prefix: string
  /** the epoch a session's writes name: '' = not fenced, null = this node holds none (the write is dropped here) */
  epochFor (clientId: string): string | null
  /** sessions whose writes were refused, each with the epoch the write named */
  onRefused (refused: Array<[string, string | null]>): void
  /**
   * the messages newly queued for a session whose write was not made (not
   * held here, or refused: another node holds it), as encoded bodies: the
   * batch's callers wait for it, and a rejection is theirs; undefined when
   * nothing takes them (they are dropped, as what else the copy wrote)
   */
  redirect?: (clientId: string, queued: Buffer[]) => Promise<void> | undefined
}

/**
 * The messages a batch queues anew for a session: its `q:` bodies, except
 * those written with in-flight state (`qi:` of the same sequence number),
 * which rewrite a message the session had already.
 */
function newlyQueued (ops: SessionOps): Buffer[] {
  const states = new Set<string>()
  for (let i = 0; i < ops.puts.length; i += 2) {
    const key = ops.puts[i] as string
    if (key.startsWith('qi:')) states.add('q' + key.slice(2))
  }
  const out: Buffer[] = []
  for (let i = 0; i < ops.puts.length; i += 2) {
    const key = ops.puts[i] as string
    if (key.startsWith('q:') && !states.has(key)) out.push(ops.puts[i + 1] as Buffer)
  }
  return out
}

/**
 * Whether a refused batch wrote what a client is told was kept and the node
 * holding the session now lacks: anything but the queue's delivery state
 * (in-flight and PUBREL state, removals: that node has the messages as they
 * were queued and sends them again at worst) and the session record (its
 * taken-over connection's end writes it, and no client is answered for
 * it), the ids of the routed messages it got (routed-ids.ts: the node
 * holding the session skips no message it lacks), and the messages it
 * queued unless they were redirected.
 */
function keepsState (ops: SessionOps, redirected: boolean): boolean {
  for (let i = 0; i < ops.puts.length; i += 2) {
    const key = ops.puts[i] as string
    if (key.startsWith('qi:') || key.startsWith('x:') || key.startsWith('u:') || (redirected && key.startsWith('q:'))) continue
    return true
  }
  return false
}

interface SessionOps {
  puts: Array<string | Buffer>
  dels: string[]
}

/** The group commit's batch target: one WRITE script per session in the batch. */
export class SessionWriter implements BatchTarget {
  constructor (private readonly opts: SessionWriterOptions) {}

  batch (): ChainedBatchLike {
    const bySession = new Map<string, SessionOps>()
    const opsOf = (key: string): SessionOps | undefined => {
      const cid = sessionOf(key)
      if (cid === undefined) return undefined
      let ops = bySession.get(cid)
      if (ops === undefined) bySession.set(cid, ops = { puts: [], dels: [] })
      return ops
    }
    return {
      put (key: string, value: Uint8Array) { opsOf(key)?.puts.push(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength)) },
      del (key: string) { opsOf(key)?.dels.push(key) },
      write: async () => { await this.#write(bySession) }
    }
  }

  async #write (bySession: Map<string, SessionOps>): Promise<void> {
    const { redis, prefix } = this.opts
    const refused: Array<[string, string | null]> = []
    const writes: Array<Promise<void>> = []
    for (const [cid, ops] of bySession) {
      const epoch = this.opts.epochFor(cid)
      if (epoch === null) {
        refused.push([cid, null])
        continue
      }
      writes.push(commands(redis).culexSessionWrite(sessionKey(prefix, cid), epoch, String(ops.puts.length / 2), ...ops.puts, ...ops.dels)
        .then((done) => { if (done !== 0) refused.push([cid, epoch]) }))
    }
    // every session's script is sent before the first answer is awaited (one round trip)
    const results = await Promise.allSettled(writes)
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (refused.length > 0) this.opts.onRefused(refused)
    // named as a refused cluster write, so the publisher waiting on it gets 0x80 (lib/cluster/refusal.ts), not a guess from Redis' wording
    if (failed !== undefined) throw clusterWriteRefused(failed.reason, 'session state')
    // a message queued in a copy of a session being handed over (or just taken by another node) is the session's all the same:
    // its publisher is acknowledged once it is with the node holding the session [MQTT-4.3.2-4] [MQTT-4.3.3-8]
    const redirect = this.opts.redirect
    const redirected = new Set<string>()
    const moving: Array<Promise<void>> = []
    for (const [cid] of redirect === undefined ? [] : refused) {
      const queued = newlyQueued(bySession.get(cid) as SessionOps)
      // none queued anew: its `q:` writes are rewrites of messages the session has
      const moved = queued.length === 0 ? undefined : redirect?.(cid, queued)
      if (moved !== undefined) moving.push(moved)
      if (moved !== undefined || queued.length === 0) redirected.add(cid)
    }
    const unmoved = moving.length === 0 ? undefined : (await Promise.allSettled(moving)).find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (unmoved !== undefined) throw clusterWriteRefused(unmoved.reason, 'message for a session handed over')
    // anything else for a session this node gave up (handed over) is a leftover of its old connection, owed to nobody;
    // one Redis refused was made by a node that believed it held the session: its callers must not be acknowledged,
    // unless all it kept was the delivery state of the old connection (taken over: the batch's publishers are not failed for it)
    const fenced = refused.filter(([cid, epoch]) => epoch !== null && keepsState(bySession.get(cid) as SessionOps, redirected.has(cid)))
    if (fenced.length > 0) throw new CulexError('CULEX_ERR_SESSION_FENCED', [fenced.map(([cid]) => JSON.stringify(cid)).join(', ')])
  }
}

/** Bodies by store key, from their sessions' hashes (undefined for keys of no session). */
export async function readSessionPackets (redis: Redis, prefix: string, keys: string[]): Promise<Array<Buffer | null>> {
  return await Promise.all(keys.map(async (key) => {
    const cid = sessionOf(key)
    return cid === undefined ? null : await redis.hgetBuffer(sessionKey(prefix, cid), key)
  }))
}
