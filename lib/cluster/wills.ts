/**
 * Wills cluster-wide: the wills of a node that dies are published by the
 * survivors, and every Will Delay Interval runs on one node of the cluster.
 *
 * - Each node mirrors the wills of its live connections in a hash
 *   `{culex}:wills:{<node>}` (client id → record: the claim's epoch, the delay
 *   and the will as an MQTT 5 PUBLISH), written when a connection with a
 *   will becomes live and removed when it ends without one to send later
 *   (published at once, or discarded by DISCONNECT 0x00 [MQTT-3.14.4-3]).
 * - A will whose delay runs after its connection ended goes (DEFER) to the
 *   cluster-wide due set: a sorted set by due time plus a hash of records.
 * - When a node's lease expires, the survivors each try REAP: one script
 *   moves the dead node's wills to the due set, due after their delay
 *   [MQTT-3.1.3-9], so the first survivor to run it moves them and the
 *   others find nothing: no duplicates and no lock needed.
 * - The node holding the lock `{culex}:wills:timer` (timer-lock.ts) takes due
 *   wills (TAKE, atomically, so each once) and publishes them through its
 *   own broker. TAKE drops a will whose client id was claimed again after
 *   the will's epoch (the client reconnected on any node before the delay
 *   ran out [MQTT-3.1.3-9]) and one its node holds again (a node paused past
 *   its lease that resumed with the connection still live).
 */
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { decodeBuffer, encode } from '../protocol/codec.js'
import type { RedisPair } from './redis.js'
import { CLUSTER_PREFIX } from './keys.js'
import { Script } from './script.js'
import { TimerLock } from './timer-lock.js'

const PREFIX = CLUSTER_PREFIX
export const WILLS_PREFIX = `${PREFIX}wills:`
/** the wills of one node's live connections */
export const nodeWillsKey = (nodeId: string): string => `${WILLS_PREFIX}{${nodeId}}`
/** the ids of the nodes that have a wills hash, for the sweep */
export const WILL_NODES_KEY = `${WILLS_PREFIX}nodes`
/** wills waiting for their delay: client id → record */
export const PENDING_KEY = `${WILLS_PREFIX}pending`
/** the same client ids scored by due time (Redis' clock, ms) */
export const DUE_KEY = `${WILLS_PREFIX}due`
/** a will published by the timer holder: its epoch, kept an hour (RESTORE tells published from lost) */
export const sentKey = (clientId: string): string => `${WILLS_PREFIX}sent:${clientId}`
const SENT_TTL_MS = 3600000
/** the lock of the node that publishes due wills */
export const TIMER_KEY = `${WILLS_PREFIX}timer`
/** Pub/Sub channel: `due` when a will entered the due set */
export const WILLS_CHANNEL = `${PREFIX}wills`

/** Wills taken per TAKE; more are taken at once after. */
const TAKE_LIMIT = 100
/** milliseconds between two sweeps for the will hashes of nodes no survivor reaped */
export const SWEEP_MS = 10000

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`
const EPOCH_OF = `
local function epochOf (record) return tonumber(string.match(record, '^(%d+) ')) end
`
/** puts a record in the due set unless a record of a later epoch waits there. KEYS[2] pending, KEYS[3] due */
const SCHEDULE = `${EPOCH_OF}
local function schedule (id, record, due)
  local waiting = redis.call('HGET', KEYS[2], id)
  if waiting and epochOf(waiting) > epochOf(record) then return 0 end
  redis.call('HSET', KEYS[2], id, record)
  redis.call('ZADD', KEYS[3], due, id)
  return 1
end
`

/** KEYS: node hash, nodes set. ARGV: client id, epoch, record, node id. Older epochs never overwrite newer ones. */
const HOLD = new Script(`${EPOCH_OF}
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and epochOf(held) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
`)

/**
 * After this node's lease was lost (a pause, or Redis restarted): puts its
 * live connections' wills back. KEYS: node hash, pending, due, nodes set.
 * ARGV: node id, owner key prefix, sent key prefix, then {client id,
 * epoch, record} each. A will a survivor moved and that still waits goes
 * back to the node; one published meanwhile (TAKE marked it sent): its id
 * is returned, so that the node does not publish it a second time. Any
 * other (Redis lost the write, or all its data) is held again.
 */
const RESTORE = new Script(`${EPOCH_OF}
local published = {}
for i = 4, #ARGV, 3 do
  local id, epoch, record = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local owner = tonumber(redis.call('HGET', ARGV[2] .. id, 'epoch'))
  local held = redis.call('HGET', KEYS[1], id)
  if (owner == nil or owner == epoch) and not (held and epochOf(held) >= epoch) then
    if tonumber(redis.call('GET', ARGV[3] .. id)) == epoch then
      published[#published + 1] = id
    else
      local waiting = redis.call('HGET', KEYS[2], id)
      if waiting and epochOf(waiting) == epoch then
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[3], id)
      end
      redis.call('HSET', KEYS[1], id, record)
      redis.call('SADD', KEYS[4], ARGV[1])
    end
  end
end
return published
`)

/** KEYS: node hash. ARGV: client id, epoch. Removes a record of that epoch or an earlier one, never a later one's. */
const DROP = new Script(`${EPOCH_OF}
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and epochOf(held) <= tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
return 0
`)

/**
 * The connection ended and its will waits for its delay. KEYS: node hash,
 * pending, due. ARGV: client id, epoch, delay ms, channel, sent key prefix.
 * Returns 1 when moved to the due set (or its due time set anew, when a
 * survivor had moved it while this node's lease was lost), 2 when it was
 * published meanwhile, 0 when the cluster does not have it.
 */
const DEFER = new Script(`${SCHEDULE}${NOW}
local epoch = tonumber(ARGV[2])
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record or epochOf(record) ~= epoch then
  local waiting = redis.call('HGET', KEYS[2], ARGV[1])
  if waiting and epochOf(waiting) == epoch then
    record = waiting
  elseif tonumber(redis.call('GET', ARGV[5] .. ARGV[1])) == epoch then
    return 2
  else
    return 0
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
local moved = schedule(ARGV[1], record, now + tonumber(ARGV[3]))
redis.call('PUBLISH', ARGV[4], 'due')
return moved
`)

/**
 * A node died: its wills move to the due set, each due after its delay from
 * now. KEYS: node hash, pending, due, the node's lease, nodes set. ARGV: '1'
 * to skip the lease check (a node reaping its own previous instance),
 * channel, node id.
 * Returns how many moved, or -1 when the node holds its lease (alive).
 */
const REAP = new Script(`${SCHEDULE}${NOW}
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local all = redis.call('HGETALL', KEYS[1])
local moved = 0
for i = 1, #all, 2 do
  local delay = tonumber(string.match(all[i + 1], '^%d+ (%d+) ')) or 0
  moved = moved + schedule(all[i], all[i + 1], now + delay)
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[5], ARGV[3])
if moved > 0 then redis.call('PUBLISH', ARGV[2], 'due') end
return moved
`)

/**
 * A will found in a session adopted from a dead node (or from this node's
 * previous run) that the cluster has no record of: its node died after the
 * store had it, before HOLD. KEYS: sent key of the id, pending, due, nodes
 * set. ARGV: client id, record, channel, wills key prefix. Scheduled as REAP
 * would have, unless the cluster published it (sent), times it (pending) or
 * holds it in a node's hash (REAP or the sweep moves it). Returns 1 when
 * scheduled.
 */
const ORPHAN = new Script(`${SCHEDULE}${NOW}
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
for _, node in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('HEXISTS', ARGV[4] .. '{' .. node .. '}', ARGV[1]) == 1 then return 0 end
end
local delay = tonumber(string.match(ARGV[2], '^%d+ (%d+) ')) or 0
local moved = schedule(ARGV[1], ARGV[2], now + delay)
if moved > 0 then redis.call('PUBLISH', ARGV[3], 'due') end
return moved
`)

/**
 * Takes the due wills, if this node holds the timer lock. KEYS: pending,
 * due, lock. ARGV: node id, limit, owner key prefix, wills key prefix,
 * sent key prefix, sent ttl ms.
 * Returns {now, next due or -1, dropped, id, record, id, record...}: the
 * wills to publish; dropped counts those superseded by a later claim or
 * held again by a live node.
 */
const TAKE = new Script(`${EPOCH_OF}${NOW}
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {-1} end
local out = {now, -1, 0}
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local record = redis.call('HGET', KEYS[1], id)
  redis.call('HDEL', KEYS[1], id)
  if record then
    local epoch = epochOf(record)
    local owner = redis.call('HMGET', ARGV[3] .. id, 'node', 'epoch', 'carries', 'adopted')
    local heldAgain = false
    if owner[1] then
      local held = redis.call('HGET', ARGV[4] .. '{' .. owner[1] .. '}', id)
      heldAgain = held and epochOf(held) == epoch
    end
    -- a survivor's adoptions of the session (registry.ts ADOPT_CLAIM) are no reconnect: they do not cancel the will
    local current = tonumber(owner[2])
    local same = current == epoch or (tonumber(owner[3]) == epoch and current == epoch + (tonumber(owner[4]) or 0))
    if same and not heldAgain then
      redis.call('SET', ARGV[5] .. id, epoch, 'PX', ARGV[6])
      out[#out + 1] = id
      out[#out + 1] = record
    else
      out[3] = out[3] + 1
    end
  end
end
local next = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #next > 0 then out[2] = tonumber(next[2]) end
return out
`)

/** The will of a connection, as the cluster carries it. */
export interface ClusterWill {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  properties?: IPublishPacket['properties']
}

/** Publishes a will on this node's broker (and on to the other nodes as any message is). */
export type PublishWill = (clientId: string, will: ClusterWill) => Promise<void>

/** The broker's side of the wills. */
export interface WillsHost {
  /** publishes a will whose time came, on this node */
  publish: PublishWill
  /**
   * The will of this node's live connection of `clientId` (claimed at
   * `epoch`) was published by another node while this node's lease was
   * lost: this node must not publish it again.
   */
  publishedElsewhere (clientId: string, epoch: number): void
}

/** The MQTT 5 properties a will keeps as a PUBLISH (Will Delay is a CONNECT property). */
const CARRIED = ['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'] as const

export function encodeRecord (epoch: number, delayMs: number, will: ClusterWill): string {
  const packet: IPublishPacket = { cmd: 'publish', topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, dup: false }
  if (will.qos > 0) packet.messageId = 1
  const properties: Record<string, unknown> = {}
  let any = false
  for (const key of CARRIED) {
    const value = will.properties?.[key]
    if (value !== undefined) { properties[key] = value; any = true }
  }
  if (any) packet.properties = properties as IPublishPacket['properties']
  return `${epoch} ${Math.max(0, Math.round(delayMs))} ${encode(packet, 5).toString('base64')}`
}

export function decodeRecord (record: string): { epoch: number, delayMs: number, will: ClusterWill } | undefined {
  const [epoch, delayMs, bytes] = record.split(' ')
  if (bytes === undefined) return undefined
  const packet = decodeBuffer(Buffer.from(bytes, 'base64'), 5)
  if (packet instanceof Error || packet.cmd !== 'publish') return undefined
  const will: ClusterWill = { topic: packet.topic, payload: Buffer.from(packet.payload), qos: packet.qos, retain: packet.retain }
  if (packet.properties !== undefined) will.properties = packet.properties
  return { epoch: Number(epoch), delayMs: Number(delayMs), will }
}

export class ClusterWills {
  /** the records of this node's live connections, written again after a lost lease */
  private readonly held = new Map<string, { epoch: number, record: string }>()
  private readonly lock: TimerLock
  private host: WillsHost | undefined
  private live: () => string[] = () => []
  private wake: NodeJS.Timeout | undefined
  private taking = false
  private again = false
  private lastSweep = 0
  private stopped = false
  /** wills published by this node, for tests and figures */
  published = 0

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    lockMs = 3000,
    private readonly renewMs = 1000
  ) {
    this.lock = new TimerLock(redis, TIMER_KEY, nodeId, logger, lockMs, renewMs)
  }

  /**
   * Moves the wills of this node's previous instance (it died; none of its
   * connections lives) to the due set, then runs the timers whenever this
   * node holds the lock.
   */
  async start (liveNodes: () => string[]): Promise<void> {
    this.live = liveNodes
    await this.reap(this.nodeId, true)
    this.redis.notices.on('message', this.onNotice)
    await this.redis.notices.subscribe(WILLS_CHANNEL)
    this.lock.start((held) => {
      if (!held) return
      this.take()
      if (Date.now() - this.lastSweep >= SWEEP_MS) {
        this.lastSweep = Date.now()
        this.sweep().catch((err: unknown) => { this.logger.debug({ err }, 'cluster: sweeping the wills of dead nodes failed; next sweep retries') })
      }
    })
  }

  /** how due wills leave this node (set before the join) */
  attach (host: WillsHost): void {
    this.host = host
  }

  /** A connection with a will became live here, having claimed its id at `epoch`. */
  hold (clientId: string, epoch: number, will: ClusterWill, delayMs: number): void {
    const record = encodeRecord(epoch, delayMs, will)
    if ((this.held.get(clientId)?.epoch ?? 0) <= epoch) this.held.set(clientId, { epoch, record })
    HOLD.run(this.redis.commands, [nodeWillsKey(this.nodeId), WILL_NODES_KEY], [clientId, epoch, record, this.nodeId]).catch((err: unknown) => {
      this.logger.warn({ err, clientId }, 'cluster: writing a will to Redis failed; written again once the node\'s lease is renewed after a loss')
    })
  }

  /**
   * The connection that claimed the id at `epoch` ended and its will was
   * published here at once, or discarded [MQTT-3.14.4-3]; or a connection
   * without a will became live, and an earlier connection's will is stale.
   * Costs Redis nothing when this node holds no will of the id.
   */
  drop (clientId: string, epoch: number): void {
    const mine = this.held.get(clientId)
    if (mine === undefined || mine.epoch > epoch) return
    this.held.delete(clientId)
    DROP.run(this.redis.commands, [nodeWillsKey(this.nodeId)], [clientId, epoch]).catch((err: unknown) => {
      this.logger.debug({ err, clientId }, 'cluster: removing a will from Redis failed')
    })
  }

  /**
   * The connection ended and its will is due in `delayMs` [MQTT-3.1.3-9]:
   * resolves true once the cluster's due set holds it (then this node must
   * not time it itself), false when it does not.
   */
  async defer (clientId: string, epoch: number, delayMs: number): Promise<boolean> {
    if (this.held.get(clientId)?.epoch === epoch) this.held.delete(clientId)
    const moved = await DEFER.run(this.redis.commands, [nodeWillsKey(this.nodeId), PENDING_KEY, DUE_KEY], [clientId, epoch, Math.max(0, Math.round(delayMs)), WILLS_CHANNEL, sentKey('')])
    return Number(moved) >= 1
  }

  /**
   * The store of a session adopted here at `epoch` had a will of its dead
   * connection: true when the cluster had no record of it and now times it
   * (due after `delayMs`, published by the timer holder to every node).
   */
  async adoptOrphan (clientId: string, epoch: number, will: ClusterWill, delayMs: number): Promise<boolean> {
    const record = encodeRecord(epoch, delayMs, will)
    const moved = await ORPHAN.run(this.redis.commands, [sentKey(clientId), PENDING_KEY, DUE_KEY, WILL_NODES_KEY], [clientId, record, WILLS_CHANNEL, WILLS_PREFIX])
    return Number(moved) >= 1
  }

  /** A node left the cluster: its wills go to the due set (one survivor moves them). */
  nodeLeft (nodeId: string): void {
    if (nodeId === this.nodeId) return
    this.reap(nodeId, false).catch((err: unknown) => {
      this.logger.warn({ err, node: nodeId }, 'cluster: taking over the wills of a dead node failed; the next sweep retries')
    })
  }

  /**
   * After this node's lease was taken anew (a survivor may have moved its
   * wills, or Redis lost them): puts back those still waiting and tells the
   * broker which were published meanwhile. Run before the registry's
   * re-check, which may claim back ids Redis lost.
   */
  async restore (): Promise<void> {
    const entries = [...this.held]
    for (let i = 0; i < entries.length; i += 200) {
      const batch = entries.slice(i, i + 200)
      const args = batch.flatMap(([clientId, { epoch, record }]) => [clientId, epoch, record])
      const published = await RESTORE.run(this.redis.commands, [nodeWillsKey(this.nodeId), PENDING_KEY, DUE_KEY, WILL_NODES_KEY], [this.nodeId, `${PREFIX}client:`, sentKey(''), ...args]) as string[]
      for (const clientId of published) {
        const mine = this.held.get(clientId)
        if (mine === undefined) continue
        this.held.delete(clientId)
        this.logger.info({ clientId }, 'cluster: a will of this node was published by another while its lease was lost; not published again')
        this.host?.publishedElsewhere(clientId, mine.epoch)
      }
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.wake)
    this.redis.notices.off('message', this.onNotice)
    await this.lock.stop()
  }

  private async reap (nodeId: string, own: boolean): Promise<void> {
    const moved = Number(await REAP.run(this.redis.commands, [nodeWillsKey(nodeId), PENDING_KEY, DUE_KEY, `${PREFIX}node:${nodeId}`, WILL_NODES_KEY], [own ? '1' : '0', WILLS_CHANNEL, nodeId]))
    if (moved > 0) this.logger.info({ node: nodeId, wills: moved }, `cluster: ${moved} will(s) of node ${nodeId} taken over (its lease expired)`)
  }

  /** The will hashes of nodes that are gone, which no survivor reaped (e.g. every node died). */
  private async sweep (): Promise<void> {
    const live = new Set(this.live())
    for (const nodeId of await this.redis.commands.smembers(WILL_NODES_KEY)) {
      if (!live.has(nodeId) && nodeId !== this.nodeId) await this.reap(nodeId, false)
    }
  }

  private readonly onNotice = (channel: string): void => {
    if (channel === WILLS_CHANNEL && this.lock.holds()) this.take()
  }

  /** Takes and publishes the due wills; arms a wake-up for the next one. */
  private take (): void {
    if (this.stopped) return
    if (this.taking) { this.again = true; return }
    this.taking = true
    this.takeOnce().catch((err: unknown) => {
      this.logger.debug({ err }, 'cluster: taking due wills failed; the next tick retries')
    }).finally(() => {
      this.taking = false
      if (this.again) { this.again = false; this.take() }
    })
  }

  private async takeOnce (): Promise<void> {
    const reply = await TAKE.run(this.redis.commands, [PENDING_KEY, DUE_KEY, TIMER_KEY], [this.nodeId, TAKE_LIMIT, `${PREFIX}client:`, WILLS_PREFIX, sentKey(''), SENT_TTL_MS]) as [number, number?, number?, ...string[]]
    const [now, next, dropped, ...taken] = reply
    if (now < 0 || next === undefined) return
    if (dropped !== undefined && dropped > 0) this.logger.debug({ dropped }, 'cluster: due wills dropped: their clients reconnected [MQTT-3.1.3-9]')
    for (let i = 0; i + 1 < taken.length; i += 2) await this.send(taken[i] as string, taken[i + 1] as string)
    if (taken.length / 2 >= TAKE_LIMIT) { this.again = true; return }
    clearTimeout(this.wake)
    // a will due later than the next tick is taken by a later tick
    if (next >= 0 && next - now < this.renewMs) {
      this.wake = setTimeout(() => { if (this.lock.holds()) this.take() }, Math.max(0, next - now))
      this.wake.unref()
    }
  }

  private async send (clientId: string, record: string): Promise<void> {
    const decoded = decodeRecord(record)
    if (decoded === undefined) {
      this.logger.warn({ clientId }, 'cluster: a will could not be decoded; dropped')
      return
    }
    if (this.host === undefined) return
    try {
      await this.host.publish(clientId, decoded.will)
      this.published++
      this.logger.info({ clientId, topic: decoded.will.topic }, `cluster: published the will of ${clientId}`)
    } catch (err) {
      this.logger.warn({ err, clientId }, 'cluster: publishing a will failed; dropped')
    }
  }
}
