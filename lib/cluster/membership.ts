/**
 * Node membership: each node holds a lease in Redis (a key with its instance
 * token, `leaseMs` long, renewed every `renewMs`) and a score in the sorted
 * set of live nodes. Nodes learn of joins and leaves by a Pub/Sub notice and
 * re-read the set at every renewal, so a lost notice heals within `renewMs`.
 *
 * The node is *available* while its last renewal succeeded: a failed or
 * unanswered renewal makes it unavailable at once (it then refuses new
 * CONNECTs and /readyz is false), and the next successful one makes it
 * available again, so a node recovers by itself when Redis returns.
 */
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { CulexError } from '../errors.js'
import { NODES_CHANNEL, NODES_KEY, leaseKey } from './keys.js'
import type { RedisPair } from './redis.js'
import { Script } from './script.js'

/**
 * Renews (or takes) this node's lease unless another instance holds it, and
 * returns the live nodes. Expired members are pruned and announced as leaves.
 * KEYS: lease, nodes set, nodes channel. ARGV: token, lease ms, node id.
 * Returns {status, members...}: status 1 = the lease was taken anew (first
 * join, or it had expired), 0 = renewed, -1 = another instance holds it.
 */
const RENEW = new Script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return {-1} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, id in ipairs(expired) do redis.call('PUBLISH', KEYS[3], 'leave ' .. id) end
end
local status = 0
if not held then
  status = 1
  redis.call('PUBLISH', KEYS[3], 'join ' .. ARGV[3])
end
local out = {status}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do out[#out + 1] = id end
return out
`)

/** The live nodes by their lease deadline (Redis' clock). KEYS: nodes set. */
const LIVE = new Script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

/** Gives the lease up if it is still this instance's. KEYS: lease, nodes set, channel. ARGV: token, node id. */
const LEAVE = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('PUBLISH', KEYS[3], 'leave ' .. ARGV[2])
end
return 1
`)

export interface MembershipOptions {
  redis: RedisPair
  nodeId: string
  logger: Logger
  /** milliseconds a lease lasts unless renewed; default 3000 */
  leaseMs?: number
  /** milliseconds between renewals; default 1000 */
  renewMs?: number
}

export interface MembershipEvents {
  join: [nodeId: string]
  leave: [nodeId: string]
  /** availability changed */
  available: [available: boolean]
  /** the lease had expired (a pause or a Redis restart) and was taken anew: what this node owned may be stale */
  leaseLost: []
}

export class Membership extends EventEmitter<MembershipEvents> {
  readonly nodeId: string
  readonly leaseMs: number
  readonly renewMs: number
  private readonly redis: RedisPair
  private readonly logger: Logger
  private readonly token = randomBytes(12).toString('hex')
  private live = new Set<string>()
  private isAvailable = false
  private joined = false
  private stopped = false
  private timer: NodeJS.Timeout | undefined
  private lastProblem: string | undefined

  constructor (options: MembershipOptions) {
    super()
    this.redis = options.redis
    this.nodeId = options.nodeId
    this.logger = options.logger
    this.leaseMs = options.leaseMs ?? 3000
    this.renewMs = options.renewMs ?? 1000
  }

  /**
   * Takes the lease, waiting out at most one lease time for the lease of a
   * previous instance of this node (a restart after a crash); rejects with
   * CULEX_ERR_CLUSTER_NODE_ID_IN_USE when another live instance keeps it.
   */
  async start (): Promise<void> {
    const deadline = Date.now() + this.leaseMs + this.renewMs
    for (;;) {
      const status = await this.renew()
      if (status >= 0) break
      if (Date.now() > deadline) throw new CulexError('CULEX_ERR_CLUSTER_NODE_ID_IN_USE', [this.nodeId])
      await new Promise((resolve) => setTimeout(resolve, this.renewMs / 4))
    }
    this.joined = true
    this.setAvailable(true)
    this.redis.notices.on('message', this.onNotice)
    await this.redis.notices.subscribe(NODES_CHANNEL)
    // a lost connection makes the node unavailable at once, not at the next renewal
    this.redis.commands.on('close', this.onConnectionLost)
    this.schedule()
  }

  available (): boolean {
    return this.isAvailable && !this.stopped
  }

  /** why the node is unavailable, for /readyz; undefined when available */
  problem (): string | undefined {
    return this.available() ? undefined : (this.lastProblem ?? 'not joined')
  }

  /** the live nodes as last read, this one included */
  nodes (): string[] {
    return [...this.live].sort()
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    this.redis.notices.off('message', this.onNotice)
    this.redis.commands.off('close', this.onConnectionLost)
    if (this.joined) {
      await LEAVE.run(this.redis.commands, [leaseKey(this.nodeId), NODES_KEY, NODES_CHANNEL], [this.token, this.nodeId]).catch(() => {})
    }
  }

  private schedule (): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.renew().catch(() => {}).finally(() => this.schedule())
    }, this.renewMs)
  }

  /** one renewal: the status of RENEW, or -2 when Redis did not answer */
  private async renew (): Promise<number> {
    let reply: unknown
    try {
      reply = await RENEW.run(this.redis.commands, [leaseKey(this.nodeId), NODES_KEY, NODES_CHANNEL], [this.token, this.leaseMs, this.nodeId])
    } catch (err) {
      this.setAvailable(false, `Redis: ${err instanceof Error ? err.message : String(err)}`)
      return -2
    }
    const [status, ...members] = reply as [number, ...string[]]
    if (status < 0) {
      if (this.joined) this.setAvailable(false, `another instance holds node id ${this.nodeId}`)
      return status
    }
    if (status === 1 && this.joined) {
      this.logger.warn({ nodeId: this.nodeId }, 'this node\'s lease had expired (a pause or a Redis restart); taken anew: re-checking the client ids it owns')
      this.emit('leaseLost')
    }
    this.setAvailable(true)
    this.update(members)
    return status
  }

  private readonly onNotice = (channel: string): void => {
    if (channel !== NODES_CHANNEL) return
    LIVE.run(this.redis.commands, [NODES_KEY], []).then((members) => { this.update(members as string[]) }, () => {})
  }

  private readonly onConnectionLost = (): void => {
    if (!this.stopped) this.setAvailable(false, 'Redis: connection lost')
  }

  private update (members: readonly string[]): void {
    if (this.stopped) return
    const next = new Set(members)
    for (const id of next) if (!this.live.has(id)) { this.live.add(id); this.logger.info({ node: id }, `cluster: node ${id} joined`); this.emit('join', id) }
    for (const id of [...this.live]) if (!next.has(id)) { this.live.delete(id); this.logger.info({ node: id }, `cluster: node ${id} left`); this.emit('leave', id) }
  }

  private setAvailable (available: boolean, problem?: string): void {
    if (!available) this.lastProblem = problem
    if (available === this.isAvailable) return
    this.isAvailable = available
    if (!this.joined && available) return
    if (available) this.logger.info({ nodeId: this.nodeId }, 'cluster: Redis reachable; accepting new connections')
    else this.logger.warn({ nodeId: this.nodeId, problem }, `cluster: cannot reach Redis (${problem ?? 'unknown'}); refusing new connections until it is back`)
    this.emit('available', available)
  }
}
