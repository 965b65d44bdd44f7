/**
 * Shared subscription groups cluster-wide: one Redis stream per group
 * (`culex:share:{<group key>}`) with one consumer group, in which each node
 * with members of the group is a consumer. A publishing node adds a message
 * once (XADD); a node reads only as many entries as its members have room
 * for (XREADGROUP COUNT), so the dispatch stays window-aware and the nodes
 * with free members take more; an entry stays pending for its node until
 * its member acknowledges it (XACK + XDEL). What a node gives up (its group
 * left, a member's room gone) and what a dead node held (its lease ended:
 * the timer-lock holder's sweep) goes back to the end of the stream as a new
 * entry (REQUEUE: acknowledged, deleted and added again in one step, so it is
 * never both pending and waiting, nor neither). The group keys and their
 * filters are in a hash every node caches, so a node without members
 * knows which groups a message goes to.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisPair } from './redis.js'
import { CLUSTER_PREFIX, ENTITY_PREFIX } from './keys.js'
import { ACK, ADD, DROP_IDLE, LEAVE, REQUEUE, REQUEUE_DEAD, SETTLE_SESSION } from './shared-scripts.js'
import { TurnBatch } from './turn-batch.js'
import { TimerLock } from './timer-lock.js'
import { repeatedLog } from '../repeated-log.js'

const PREFIX = CLUSTER_PREFIX
/** group key → filter, for every group with a member on some node (or a queue kept for its offline members) */
export const SHARE_GROUPS_KEY = `${PREFIX}share:groups`
/** `+ {key}` / `- {key}`: a group came or went */
export const SHARE_CHANNEL = `${PREFIX}share`
/** the group's stream; braces: a Redis Cluster hash tag, so one group's keys are on one master */
export const shareStreamKey = (groupKey: string): string => `${ENTITY_PREFIX}share:{${groupKey}}`
/** a persistent session's memberships, group key → JSON of the member: whichever node the session resumes on joins them */
export const shareMemberKey = (clientId: string): string => `${ENTITY_PREFIX}share:member:{${clientId}}`
const SWEEP_LOCK_KEY = `${PREFIX}share:timer`
/** the consumer of the entries a member's session holds: a QoS 2 message sent to it ('$' and '/' are not in node ids) */
export const SESSION_CONSUMER = '$session/'
/** the consumer group every node reads in */
const CONSUMERS = 'culex'
/** ms a read waits for new entries (on the group's own connection) */
const BLOCK_MS = 1000
/** ms between two rewrites of this node's groups in the hash (heals a lost write or a racing removal) */
const REFRESH_MS = 2000
/** ids acknowledged at most per ACK call (Lua's unpack has a stack limit) */
const ACK_MAX = 1000
/** entries read at most per XREADGROUP */
const READ_MAX = 1000

/** a shared group's figure among a node's figures (figures.ts): `share\u0000{group key}\u0000{figure}` */
export const SHARE_FIGURE_PREFIX = 'share\u0000'

/** A group queue's limit, as on a single node (`sharedMaxQueued`, `sharedOverflow`), applied to its stream's waiting entries by ADD. */
export interface GroupQueueLimit {
  max: number
  overflow: 'drop-oldest' | 'refuse'
}

/** One entry read for this node: `m` the encoded message, `n` deliveries made by nodes that died before counting them. */
export interface StreamEntry { id: string, message: Buffer, uncounted: number }

/** What a node's group offers its reader. */
export interface GroupReader {
  /** entries the group's members here have room for */
  room (): number
  /** entries read here and not finished yet */
  held (): number
  /** entries read for the group: this node's until acknowledged or handed back */
  take (entries: StreamEntry[]): void
}

interface OpenGroup {
  readonly key: string
  readonly stream: string
  readonly filter: string
  readonly reader: GroupReader
  conn: Redis
  closed: boolean
  wake: (() => void) | undefined
}

export class ClusterShareStreams {
  /** every group of the cluster: key → filter */
  private readonly known = new Map<string, string>()
  private readonly open = new Map<string, OpenGroup>()
  private readonly listeners: Array<() => void> = []
  private readonly lock: TimerLock
  private live: () => string[] = () => []
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  /**
   * the adds and acknowledgements, on a connection of their own; already one
   * call per group and turn (TurnBatch), so without ioredis'
   * auto-pipelining, whose pipeline per turn cost more than it saved here
   * (one group: about 8% of the cluster's CPU per delivery)
   */
  private readonly writes: Redis
  /** the messages of one turn for a group: one ADD call (an XADD each, the group queue's limit applied) */
  private readonly adds = new TurnBatch<Buffer>(async (key, messages) => {
    this.overflowed(key, await ADD.run(this.writes, [shareStreamKey(key)], [CONSUMERS, this.queue.max, this.queue.overflow, ...messages]))
  })
  /** per group, the messages the group queue's limit cost on this node (ADD's drops): summed over the nodes as the group's `dropped` */
  private readonly drops = new Map<string, number>()
  /** the acknowledgements of one turn for a group: one ACK call (XACK + XDEL); a failed one is logged, and its entries are delivered again */
  private readonly acks = new TurnBatch<string>((key, ids) => ACK.run(this.writes, [shareStreamKey(key)], [CONSUMERS, ...ids]).catch((err: unknown) => {
    this.logger.warn({ err, group: key }, 'cluster: acknowledging shared messages in Redis failed; they are delivered again')
  }), ACK_MAX)
  /** per group, the entries no node has read yet, as the last sweep saw them (on the lock holder) */
  private waiting = new Map<string, number>()

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly queue: GroupQueueLimit,
    lockMs = 3000,
    renewMs = 1000
  ) {
    this.lock = new TimerLock(redis, SWEEP_LOCK_KEY, nodeId, logger, lockMs, renewMs)
    this.writes = redis.duplicate({ enableAutoPipelining: false })
    this.writes.on('error', () => {})
  }

  async start (liveNodes: () => string[]): Promise<void> {
    this.live = liveNodes
    // no offline queue, as the commands connection: a write Redis cannot take fails at once, and its publisher is told
    await this.writes.connect()
    this.redis.notices.on('message', this.onNotice)
    await this.redis.notices.subscribe(SHARE_CHANNEL)
    await this.reload()
    const tick = (): void => {
      if (this.stopped) return
      this.timer = setTimeout(() => { this.refresh().catch(() => {}).finally(tick) }, REFRESH_MS)
    }
    tick()
    this.lock.start((held) => {
      if (held) this.sweep().catch((err: unknown) => { this.logger.debug({ err }, 'cluster: sweeping the shared groups of dead nodes failed; next sweep retries') })
    })
  }

  /** A node's lease ended: what it held goes back now, not at the next sweep (on the lock holder; the sweep covers a missed one). */
  nodeLeft (nodeId: string): void {
    if (nodeId === this.nodeId || !this.lock.holds()) return
    this.sweep().catch((err: unknown) => { this.logger.debug({ err, node: nodeId }, 'cluster: sweeping the shared groups of a dead node failed; next sweep retries') })
  }

  /** the cluster's groups, key → filter */
  groups (): ReadonlyMap<string, string> {
    return this.known
  }

  /** `listener` runs when the set of the cluster's groups changed */
  onGroups (listener: () => void): void {
    this.listeners.push(listener)
  }

  /** A persistent session's membership, kept for the node it resumes on; resolves once Redis has it. */
  async putMember (clientId: string, groupKey: string, record: string): Promise<void> {
    await this.redis.commands.hset(shareMemberKey(clientId), groupKey, record)
  }

  async delMember (clientId: string, groupKey: string): Promise<void> {
    await this.redis.commands.hdel(shareMemberKey(clientId), groupKey)
  }

  /**
   * A session that ended (its Session Expiry, on the node running the
   * cluster's expiry): its memberships go, and the QoS 2 messages it held in
   * any group are settled, never sent to another member [MQTT-4.8.2-5].
   */
  async sessionEnded (clientId: string): Promise<void> {
    await this.redis.commands.del(shareMemberKey(clientId))
    await this.settleSession(clientId)
  }

  /**
   * A Clean Start for `clientId` ended its previous session: as sessionEnded,
   * but the groups' streams are looked at only when Redis held memberships
   * of it (a persistent member; the rest, nearly every connection, costs
   * one DEL).
   */
  async sessionRestarted (clientId: string): Promise<void> {
    if (await this.redis.commands.del(shareMemberKey(clientId)) === 0) return
    await this.settleSession(clientId)
  }

  /** The session's persistent memberships, as JSON records. */
  async members (clientId: string): Promise<string[]> {
    return Object.values(await this.redis.commands.hgetall(shareMemberKey(clientId)))
  }

  private async settleSession (clientId: string): Promise<void> {
    for (const key of this.known.keys()) {
      const n = Number(await SETTLE_SESSION.run(this.redis.commands, [shareStreamKey(key)], [CONSUMERS, SESSION_CONSUMER + clientId]))
      if (n > 0) this.logger.info({ group: key, clientId, entries: n }, 'cluster: the QoS 2 messages an ended session held in a shared group were discarded [MQTT-4.8.2-5]')
    }
  }

  /** Adds a message to the group's queue (with the others of this turn, in order); resolves once Redis has it. */
  add (key: string, message: Buffer): Promise<void> {
    return this.adds.add(key, message)
  }

  /** This node has members of the group: it is announced, and read for as they have room. */
  openGroup (key: string, filter: string, reader: GroupReader): void {
    if (this.open.has(key)) return
    const g: OpenGroup = { key, stream: shareStreamKey(key), filter, reader, conn: this.blockingConnection(), closed: false, wake: undefined }
    this.open.set(key, g)
    this.learn(key, filter)
    this.read(g).catch((err: unknown) => { this.logger.warn({ err, group: key }, 'cluster: reading a shared group stopped') })
  }

  /** Room may have appeared in the group here: a reader waiting for it reads. */
  poke (key: string): void {
    const g = this.open.get(key)
    if (g?.wake === undefined) return
    const wake = g.wake
    g.wake = undefined
    wake()
  }

  /** The member acknowledged the entry (batched per tick). */
  ack (key: string, id: string): void {
    if (this.open.has(key)) void this.acks.add(key, id)
  }

  /**
   * A QoS 2 entry went out to a persistent member: it is pending for the
   * member's session from now on (a consumer of its own, `SESSION_CONSUMER`),
   * not for this node, so neither this node's leaving nor its death hands it
   * to another member [MQTT-4.8.2-4]; whichever node the session resumes on
   * settles it at the member's PUBREC. Written before any acknowledgement of
   * it (the same connection).
   */
  holdForSession (key: string, id: string, clientId: string): void {
    this.writes.xclaim(shareStreamKey(key), CONSUMERS, SESSION_CONSUMER + clientId, 0, id, 'JUSTID').catch((err: unknown) => {
      this.logger.warn({ err, group: key, clientId }, 'cluster: a QoS 2 shared message sent to a session stays this node\'s in Redis; if this node dies it goes back to the group')
    })
  }

  /** An entry finished on this node that another node read (a QoS 2 message a session brought here). */
  settle (key: string, id: string): void {
    void this.acks.add(key, id)
  }

  /** Entries this node read and gives up: back to the end of the stream, with their messages as they are now. */
  async handBack (key: string, entries: ReadonlyArray<{ id: string, message: Buffer | undefined }>): Promise<void> {
    if (entries.length === 0) return
    const args: Array<string | Buffer> = [CONSUMERS]
    for (const e of entries) args.push(e.id, e.message ?? '')
    await REQUEUE.run(this.redis.commands, [shareStreamKey(key)], args)
  }

  /** The group's last member here left: what it held goes back, and the group is gone when no node reads it. */
  async closeGroup (key: string, unfinished: ReadonlyArray<{ id: string, message: Buffer | undefined }>): Promise<void> {
    const g = this.open.get(key)
    if (g === undefined) return
    this.open.delete(key)
    g.closed = true
    g.conn.disconnect()
    // its finished entries acknowledged before LEAVE hands back what is still pending: none goes to another member
    await this.acks.flushKey(key)
    await this.handBack(key, unfinished)
    const gone = Number(await LEAVE.run(this.redis.commands, [g.stream], [CONSUMERS, this.nodeId])) === 1
    if (gone && !this.open.has(key)) {
      await this.redis.commands.hdel(SHARE_GROUPS_KEY, key)
      await this.redis.publish(SHARE_CHANNEL, '- ' + key)
    }
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.redis.notices.off('message', this.onNotice)
    void this.lock.stop()
    this.adds.flush()
    this.acks.flush()
    for (const g of this.open.values()) { g.closed = true; g.conn.disconnect(); g.wake?.() }
    this.open.clear()
    this.writes.disconnect()
  }

  private blockingConnection (): Redis {
    // a read blocks its connection: each group has its own, with room for the block in its timeout
    const conn = this.redis.duplicate({ commandTimeout: BLOCK_MS + 2000, enableOfflineQueue: true })
    conn.on('error', () => {})
    return conn
  }

  private learn (key: string, filter: string): void {
    const before = this.known.get(key)
    this.known.set(key, filter)
    if (before === undefined) for (const l of this.listeners) l()
    this.announce(key, filter).catch((err: unknown) => { this.logger.debug({ err, group: key }, 'cluster: announcing a shared group failed; the next refresh retries') })
  }

  private async announce (key: string, filter: string): Promise<void> {
    await this.ensureStream(key)
    if (await this.redis.commands.hset(SHARE_GROUPS_KEY, key, filter) === 1) await this.redis.publish(SHARE_CHANNEL, '+ ' + key)
  }

  private async ensureStream (key: string): Promise<void> {
    // from the stream's first entry: what was added while no node read waits for the first member
    await this.redis.commands.xgroup('CREATE', shareStreamKey(key), CONSUMERS, '0', 'MKSTREAM').catch((err: unknown) => {
      if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err
    })
  }

  private async read (g: OpenGroup): Promise<void> {
    await this.ensureStream(g.key).catch(() => {})
    // what this node's previous instance read and did not finish: the dispatcher here knows nothing of it
    await this.requeueOwn(g).catch((err: unknown) => { this.logger.debug({ err, group: g.key }, 'cluster: handing back a previous instance\'s entries failed') })
    // a consumer from now on, not only once a blocked read is served: the sweep and the last one out see it
    await this.redis.commands.xgroup('CREATECONSUMER', g.stream, CONSUMERS, this.nodeId).catch(() => {})
    while (!g.closed) {
      const room = g.reader.room()
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => { g.wake = undefined; resolve() }, 250)
          g.wake = () => { clearTimeout(timer); resolve() }
        })
        continue
      }
      let reply: unknown
      try {
        reply = await g.conn.xreadgroupBuffer('GROUP', CONSUMERS, this.nodeId, 'COUNT', Math.min(room, READ_MAX), 'BLOCK', BLOCK_MS, 'STREAMS', g.stream, '>')
      } catch (err) {
        if (g.closed) return
        if (err instanceof Error && err.message.startsWith('NOGROUP')) await this.announce(g.key, g.filter).catch(() => {})
        else await new Promise((resolve) => setTimeout(resolve, 200))
        continue
      }
      if (g.closed) return
      const entries = parseRead(reply)
      if (entries.length > 0) g.reader.take(entries)
    }
  }

  private async requeueOwn (g: OpenGroup): Promise<void> {
    let n: number
    do {
      n = Number(await REQUEUE_DEAD.run(this.redis.commands, [g.stream], [CONSUMERS, this.nodeId, 1000]))
    } while (n >= 1000)
  }

  private readonly onNotice = (channel: string, message: string): void => {
    if (channel !== SHARE_CHANNEL) return
    const key = message.slice(2)
    if (message.startsWith('+ ')) {
      if (!this.known.has(key)) { this.known.set(key, filterOfKey(key)); for (const l of this.listeners) l() }
    } else if (message.startsWith('- ') && !this.open.has(key)) {
      if (this.known.delete(key)) for (const l of this.listeners) l()
    }
  }

  /**
   * This node's groups written again, then every group read; an entry left
   * pending for this node in a group it does not read (a read answered after
   * the group closed here) goes back to its stream.
   */
  private async refresh (): Promise<void> {
    for (const g of this.open.values()) await this.announce(g.key, g.filter)
    await this.reload()
    for (const key of this.known.keys()) {
      if (this.open.has(key)) continue
      const n = Number(await REQUEUE_DEAD.run(this.redis.commands, [shareStreamKey(key)], [CONSUMERS, this.nodeId, 1000]).catch(() => 0))
      if (n > 0) this.logger.info({ group: key, entries: n }, 'cluster: shared messages read for a group this node no longer reads went back to their group')
    }
  }

  private async reload (): Promise<void> {
    const all = await this.redis.commands.hgetall(SHARE_GROUPS_KEY)
    let changed = false
    for (const [key, filter] of Object.entries(all)) if (!this.known.has(key)) { this.known.set(key, filter); changed = true }
    for (const key of this.known.keys()) if (!(key in all) && !this.open.has(key)) { this.known.delete(key); changed = true }
    if (changed) for (const l of this.listeners) l()
  }

  /**
   * The messages the groups' limits cost on this node (`overflow`), and, on
   * the lock holder only, the entries waiting in each group's stream (the
   * figures are summed over the nodes).
   */
  figures (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [key, n] of this.drops) out[SHARE_FIGURE_PREFIX + key + '\u0000overflow'] = n
    if (!this.lock.holds()) return out
    for (const [key, n] of this.waiting) out[SHARE_FIGURE_PREFIX + key + '\u0000waiting'] = n
    return out
  }

  /** The entries of `stream` no node read yet: its length less those in flight (as ADD counts them against the limit). */
  private async waitingIn (stream: string): Promise<number> {
    const [len, groups] = await Promise.all([this.redis.commands.xlen(stream), this.redis.commands.xinfo('GROUPS', stream)])
    return Math.max(0, len - pendingOf(groups))
  }

  /** ADD's answer for `key`: what its limit dropped or refused is counted and logged (a count per interval). */
  private overflowed (key: string, reply: unknown): void {
    const dropped = Array.isArray(reply) ? Number(reply[1]) : 0
    if (!(dropped > 0)) return
    this.drops.set(key, (this.drops.get(key) ?? 0) + dropped)
    const refused = this.queue.overflow === 'refuse'
    repeatedLog.log(this.logger, 'warn', 'cluster full ' + key, { group: key, limit: this.queue.max }, refused ? 'cluster: shared group queue full: messages refused' : 'cluster: shared group queue full: oldest messages dropped', dropped)
  }

  /** On the lock holder: the entries of consumers whose node is not alive go back to their streams. */
  private async sweep (): Promise<void> {
    const live = new Set(this.live())
    const waiting = new Map<string, number>()
    for (const key of this.known.keys()) {
      const stream = shareStreamKey(key)
      waiting.set(key, await this.waitingIn(stream).catch(() => 0))
      let consumers: unknown
      try {
        consumers = await this.redis.commands.xinfo('CONSUMERS', stream, CONSUMERS)
      } catch {
        continue
      }
      for (const [name, pending] of consumerPending(consumers)) {
        if (name.startsWith(SESSION_CONSUMER)) {
          // a session's consumer holds nothing once its QoS 2 messages were settled
          if (pending === 0) await DROP_IDLE.run(this.redis.commands, [stream], [CONSUMERS, name]).catch(() => 0)
          continue
        }
        if (live.has(name)) continue
        const n = Number(await REQUEUE_DEAD.run(this.redis.commands, [stream], [CONSUMERS, name, 1000]))
        if (n > 0) this.logger.info({ group: key, node: name, entries: n }, 'cluster: a dead node\'s shared messages went back to their group')
      }
    }
    this.waiting = waiting
  }
}

function filterOfKey (key: string): string {
  return key.slice(key.indexOf('/', 7) + 1)
}

/**
 * XINFO GROUPS: the pending count (`pending`) of the consumer group. Its
 * `lag` cannot serve: Redis answers nil once entries were deleted (XDEL),
 * which acknowledged entries always are.
 */
function pendingOf (reply: unknown): number {
  if (!Array.isArray(reply)) return 0
  for (const g of reply) {
    if (!Array.isArray(g) || g[g.indexOf('name') + 1] !== CONSUMERS) continue
    const pending: unknown = g[g.indexOf('pending') + 1]
    if (typeof pending === 'number') return pending
  }
  return 0
}

/** XINFO CONSUMERS: each consumer's name and pending count */
function consumerPending (reply: unknown): Array<[string, number]> {
  if (!Array.isArray(reply)) return []
  const out: Array<[string, number]> = []
  for (const c of reply) {
    if (!Array.isArray(c)) continue
    const name: unknown = c[c.indexOf('name') + 1]
    const pending: unknown = c[c.indexOf('pending') + 1]
    if (typeof name === 'string') out.push([name, typeof pending === 'number' ? pending : 0])
  }
  return out
}

/** XREADGROUP's reply (buffers): [[stream, [[id, [field, value, ...]], ...]]] */
function parseRead (reply: unknown): StreamEntry[] {
  const out: StreamEntry[] = []
  if (!Array.isArray(reply)) return out
  for (const stream of reply) {
    const entries: unknown = Array.isArray(stream) ? stream[1] : undefined
    if (!Array.isArray(entries)) continue
    for (const e of entries) {
      if (!Array.isArray(e) || !Buffer.isBuffer(e[0]) || !Array.isArray(e[1])) continue
      const fields = e[1] as Buffer[]
      let message: Buffer | undefined
      let uncounted = 0
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const f = fields[i]?.toString()
        if (f === 'm') message = fields[i + 1]
        else if (f === 'n') uncounted = Number(fields[i + 1]?.toString() ?? 0)
      }
      if (message !== undefined) out.push({ id: e[0].toString(), message, uncounted })
    }
  }
  return out
}
