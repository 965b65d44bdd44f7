/**
 * Session Expiry cluster-wide [MQTT-3.1.2-23]: a session ends once its
 * Session Expiry Interval has passed since its connection ended, on exactly
 * one node (the holder of the lock `{culex}:expiry:timer`), whichever node held
 * it and whether or not that node is still alive.
 *
 * - A live connection whose session must end (MQTT 5 with an interval below
 *   "never", 3.1.1 with Clean Session) is recorded in its node's hash
 *   `{culex}:expiry:{node}` (LIVE), so that the session's clock starts when
 *   the node dies (REAP, by a survivor once the node's lease is gone).
 * - A connection that ended with an interval > 0 puts the session in the due
 *   set, scored by Redis' clock plus the interval (ENDED).
 * - The lock holder takes the due sessions (EXPIRE): unless a later claim
 *   took the id (its epoch moved on: the session lives again) or its will is
 *   still waiting (a will is published before its session ends,
 *   [MQTT-3.1.3-9]), the id's epoch is raised (and recorded as `ended`), so
 *   that the node holding a copy loads it afresh at its next claim and its
 *   stale writes are refused; that node is told as by a takeover and drops
 *   it. Then the session's hash is deleted (WIPE), a second step because on a
 *   Redis Cluster the hash is in the session's slot, not the registry's; a
 *   claim that comes between the two steps deletes it itself (the Redis
 *   store's ADOPT, given `ended`), so it never loads an expired session.
 */
import type { Logger } from 'pino'
import { CLUSTER_PREFIX, ENDED_FIELD, leaseKey, nodeChannel, ownerKey, sessionHashKey } from './keys.js'
import { EXPIRED_WIPE } from '../persistence/redis-sessions.js'
import type { RedisPair } from './redis.js'
import { Script } from './script.js'
import { TimerLock } from './timer-lock.js'
import { PENDING_KEY as PENDING_WILLS_KEY } from './wills.js'

const PREFIX = `${CLUSTER_PREFIX}expiry:`
/** live connections of a node whose sessions end: client id → "{epoch} {interval ms}" */
export const nodeExpiryKey = (nodeId: string): string => `${PREFIX}{${nodeId}}`
/** the nodes with such a hash, for the sweep of nodes no survivor reaped */
export const EXPIRY_NODES_KEY = `${PREFIX}nodes`
/** sessions waiting for their end: "{epoch} {client id}" scored by the deadline (Redis' clock, ms) */
export const EXPIRY_DUE_KEY = `${PREFIX}due`
export const EXPIRY_TIMER_KEY = `${PREFIX}timer`
/** "never expires" (MQTT 5 §3.1.2.11.2), in ms */
export const NEVER_MS = 0xFFFFFFFF * 1000
const TAKE_LIMIT = 200
const SWEEP_MS = 10000

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

/** KEYS: node hash, nodes set. ARGV: client id, epoch, interval ms (-1: nothing ends), node id. */
const LIVE = new Script(`
if ARGV[3] == '-1' then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
`)

/** KEYS: node hash, due set. ARGV: client id, epoch, interval ms (-1: nothing ends here). */
const ENDED = new Script(`${NOW}
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record and tonumber(string.match(record, '^(%d+)')) <= tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], ARGV[1]) end
if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2] .. ' ' .. ARGV[1]) end
return 1
`)

/** KEYS: node hash, due set, node lease, nodes set. ARGV: node id. Refused (-1) while the node holds its lease. */
const REAP = new Script(`${NOW}
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local records = redis.call('HGETALL', KEYS[1])
for i = 1, #records, 2 do
  local epoch, interval = string.match(records[i + 1], '^(%d+) (%d+)$')
  if epoch then redis.call('ZADD', KEYS[2], now + tonumber(interval), epoch .. ' ' .. records[i]) end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
return #records / 2
`)

/**
 * KEYS: owner hash, pending wills, due set (one slot), and on one Redis the
 * session hash. ARGV: epoch, client id, member, this node, channel prefix.
 * Returns {1, the node that held it, the new epoch} (ended: the record's
 * \`ended\` names the new epoch; the session's hash is deleted here, or on a
 * Redis Cluster by WIPE next, in its own slot), {0} (a later claim: dropped
 * from the due set), {-1} (its will is still waiting: tried again).
 */
const EXPIRE = new Script(`
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return {0}
end
local will = redis.call('HGET', KEYS[2], ARGV[2])
if will and string.match(will, '^(%d+)') == ARGV[1] then return {-1} end
local holder = redis.call('HGET', KEYS[1], 'node') or redis.call('HGET', KEYS[1], 'last')
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HDEL', KEYS[1], 'node')
redis.call('HSET', KEYS[1], 'last', ARGV[4], '${ENDED_FIELD}', epoch)
redis.call('ZREM', KEYS[3], ARGV[3])
if KEYS[4] then redis.call('DEL', KEYS[4]) end
if holder and holder ~= ARGV[4] then
  redis.call('PUBLISH', ARGV[5] .. holder, epoch .. ' ' .. ARGV[4] .. ' ' .. ARGV[2])
end
return {1, holder or '', epoch}
`)

/** EXPIRE's second step, in the session's slot (persistence/redis-sessions.ts). */
const WIPE = new Script(EXPIRED_WIPE)

export interface ExpiryHost {
  /** this node held the session that ended at `epoch`: its copy goes (another holder is told by a notice) */
  expiredHere (clientId: string, epoch: number): void
  /** the session ended, whichever node held it (called on the node that ended it) */
  ended?: (clientId: string) => void
}

/**
 * How long a session lives after its connection ends, in ms; -1 when that
 * does not end it here (never expires).
 */
export function sessionLifetimeMs (client: { version?: number, clean?: boolean, sessionExpiryInterval?: number }): number {
  if (client.version !== 5) return client.clean === true ? 0 : -1
  const interval = client.sessionExpiryInterval ?? 0
  return interval * 1000 >= NEVER_MS ? -1 : interval * 1000
}

/**
 * What is left of a session's life from its record (an adopted session: the
 * adopter starts its clock anew), in ms; -1 when it never expires.
 */
export function remainingLifetimeMs (record: { expiresAt: number | null, expiryInterval?: number } | undefined, now: number): number {
  if (record === undefined) return -1
  // at least 1 ms, so that a session already due is put in the due set and ended there
  if (record.expiresAt !== null) return Math.max(1, record.expiresAt - now)
  const interval = record.expiryInterval
  if (interval === undefined || interval * 1000 >= NEVER_MS) return -1
  return Math.max(1, interval * 1000)
}

export class ClusterSessionExpiry {
  private readonly lock: TimerLock
  private live: () => string[] = () => []
  private host: ExpiryHost | undefined
  private lastSweep = 0
  private taking = false
  private stopped = false
  /** sessions this node ended, for tests and figures */
  expired = 0

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    lockMs = 3000,
    renewMs = 1000
  ) {
    this.lock = new TimerLock(redis, EXPIRY_TIMER_KEY, nodeId, logger, lockMs, renewMs)
  }

  /** Starts the clocks of this node's previous instance's connections (they died with it), then runs the due set on the lock holder. */
  async start (liveNodes: () => string[], host: ExpiryHost): Promise<void> {
    this.live = liveNodes
    this.host = host
    await this.reap(this.nodeId, true)
    this.lock.start((held) => {
      if (!held) return
      this.take()
      if (Date.now() - this.lastSweep >= SWEEP_MS) {
        this.lastSweep = Date.now()
        this.sweep().catch((err: unknown) => { this.logger.debug({ err }, 'cluster: sweeping the session clocks of dead nodes failed; next sweep retries') })
      }
    })
  }

  /** A connection that claimed its id at `epoch` is live here; `lifetimeMs` as `sessionLifetimeMs`. */
  connected (clientId: string, epoch: number, lifetimeMs: number): void {
    LIVE.run(this.redis.commands, [nodeExpiryKey(this.nodeId), EXPIRY_NODES_KEY], [clientId, epoch, lifetimeMs, this.nodeId]).catch((err: unknown) => {
      this.logger.debug({ err, clientId }, 'cluster: recording a session clock failed')
    })
  }

  /** That connection ended and the registry took this node's release: the session's clock starts. */
  async ended (clientId: string, epoch: number, lifetimeMs: number): Promise<void> {
    await ENDED.run(this.redis.commands, [nodeExpiryKey(this.nodeId), EXPIRY_DUE_KEY], [clientId, epoch, lifetimeMs])
  }

  /** A node left: the sessions of its live connections start their clocks now. */
  nodeLeft (nodeId: string): void {
    if (nodeId === this.nodeId) return
    this.reap(nodeId, false).catch((err: unknown) => {
      this.logger.warn({ err, node: nodeId }, 'cluster: starting the session clocks of a dead node failed; the next sweep retries')
    })
  }

  async stop (): Promise<void> {
    this.stopped = true
    await this.lock.stop()
  }

  private async reap (nodeId: string, own: boolean): Promise<void> {
    // this node's own previous instance: its lease is this instance's now, so the check is skipped by naming no lease
    const lease = own ? `${PREFIX}no-lease` : leaseKey(nodeId)
    const moved = Number(await REAP.run(this.redis.commands, [nodeExpiryKey(nodeId), EXPIRY_DUE_KEY, lease, EXPIRY_NODES_KEY], [nodeId]))
    if (moved > 0) this.logger.info({ node: nodeId, sessions: moved }, `cluster: the session clocks of ${moved} connection(s) of node ${nodeId} started (its lease expired)`)
  }

  /** Nodes gone with a hash no survivor reaped (e.g. every node died). */
  private async sweep (): Promise<void> {
    const live = new Set(this.live())
    for (const nodeId of await this.redis.commands.smembers(EXPIRY_NODES_KEY)) {
      if (!live.has(nodeId) && nodeId !== this.nodeId) await this.reap(nodeId, false)
    }
  }

  private take (): void {
    if (this.stopped || this.taking) return
    this.taking = true
    this.takeOnce().catch((err: unknown) => {
      this.logger.debug({ err }, 'cluster: ending due sessions failed; the next tick retries')
    }).finally(() => { this.taking = false })
  }

  private async takeOnce (): Promise<void> {
    const [seconds, micros] = await this.redis.commands.time()
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
    const due = await this.redis.commands.zrangebyscore(EXPIRY_DUE_KEY, '-inf', now, 'LIMIT', 0, TAKE_LIMIT)
    for (const member of due) {
      if (this.stopped || !this.lock.holds()) return
      const space = member.indexOf(' ')
      const epoch = member.slice(0, space)
      const clientId = member.slice(space + 1)
      const [ended, holder, endedAt] = await EXPIRE.run(this.redis.commands,
        [ownerKey(clientId), PENDING_WILLS_KEY, EXPIRY_DUE_KEY, ...(this.redis.cluster ? [] : [sessionHashKey(clientId)])],
        [epoch, clientId, member, this.nodeId, nodeChannel('')]) as [number, string?, number?]
      if (ended !== 1) continue
      if (this.redis.cluster) {
        // a failure here leaves the hash to the next claim's adoption, which deletes it (the record's `ended`)
        await WIPE.run(this.redis.commands, [sessionHashKey(clientId)], [String(endedAt)]).catch((err: unknown) => {
          this.logger.debug({ err, clientId }, 'cluster: deleting an expired session\'s hash failed; its next claim deletes it')
        })
      }
      this.expired++
      if (holder === this.nodeId) this.host?.expiredHere(clientId, Number(epoch))
      this.host?.ended?.(clientId)
      this.logger.info({ clientId }, `cluster: the session of ${clientId} expired [MQTT-3.1.2-23]`)
    }
  }
}
