/**
 * QoS 1/2 messages between nodes: each node reads its own Redis Stream
 * `{culex}:inbox:{<node>}` through a consumer group. The publishing node adds
 * the message (an MQTT 5 PUBLISH, as QoS 0 travels: routes.ts) to the inbox
 * of every other node that must get it, with the other messages routed in
 * the same turn in one script call (route-batch.ts: an entry per inbox and
 * call, its messages packed in one field: inbox-entry.ts), and its publisher
 * is acknowledged only once Redis has them all (a refusal is the publisher's
 * 0x80: refusal.ts).
 * The receiving node publishes each entry's messages to its own subscribers
 * and sessions only, in the stream's order, and acknowledges and deletes the
 * entries (XACK, XDEL) once those publishes completed, i.e. each message is
 * in the Redis session of every persistent session it matched. Entries read
 * but not acknowledged (the node died, or Redis did not answer) are read
 * again first: at least once, as QoS 1 allows.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { CLUSTER_PREFIX } from './keys.js'
import type { RedisPair } from './redis.js'
import { clusterWriteRefused } from './refusal.js'
import { RouteBatcher, routeCall } from './route-batch.js'
import { encodeRouted } from './wire.js'
import type { EntryMeta } from './forward.js'
import { decodeEntry, type EntryMessage } from './inbox-entry.js'

/** a node's inbox (in the `{culex}` slot with the adoption markers: ROUTE writes several inboxes at once) */
export const inboxKey = (nodeId: string): string => `${CLUSTER_PREFIX}inbox:{${nodeId}}`
/** the consumer group every inbox is read through; each node is its own inbox's only consumer */
export const INBOX_GROUP = 'culex'

/** entries read at once (each holds the messages of one ROUTE call: up to route-batch.ts' MAX_MESSAGES) */
const BATCH = 50
/** milliseconds a read waits for new entries */
const BLOCK_MS = 2000
/** milliseconds before a read that failed (Redis away) is tried again */
const RETRY_MS = 250
/** milliseconds a claim waits at most for the inbox to catch up */
export const CATCH_UP_MS = 5000

/** Orders two stream entry ids (`{ms}-{seq}`). */
export function compareIds (x: string, y: string): number {
  const [xm = 0, xs = 0] = x.split('-').map(Number)
  const [ym = 0, ys = 0] = y.split('-').map(Number)
  return xm !== ym ? xm - ym : xs - ys
}

/**
 * Where an inbox's messages go: published on this node only, or, forwarded
 * for one session (forward.ts), to `meta.forClient` only; `done` once that
 * completed (an error: it failed).
 */
export type DeliverQueued = (packet: IPublishPacket, meta: EntryMeta, done: (err?: Error | null) => void) => void

type StreamEntry = [Buffer, Buffer[] | null]
type StreamReply = Array<[Buffer, StreamEntry[]]> | null

export class Inbox {
  private reader: Redis | undefined
  private stopped = false
  private running: Promise<void> | undefined
  /** entries delivered, for tests and figures */
  delivered = 0
  /** the last entry published here and acknowledged */
  private processed = '0-0'
  private readonly waiters: Array<{ target: string, resolve: () => void }> = []
  /** the batch being published here now, if any */
  private handling: Promise<void> | undefined
  private readonly batcher: RouteBatcher

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly deliver: DeliverQueued
  ) {
    const call = routeCall(redis.commands)
    this.batcher = new RouteBatcher(async (args) => {
      try {
        return await call(args)
      } catch (err) {
        throw clusterWriteRefused(err, 'routed message')
      }
    })
  }

  /**
   * Adds the message to the inboxes of `nodes`, in the call of this turn
   * (route-batch.ts); resolves with the message's id ('' when sent
   * nowhere), rejects with a ClusterWriteRefused unless Redis took the
   * whole call.
   */
  send (nodes: Iterable<string>, packet: IPublishPacket): Promise<string> {
    return this.batcher.send(nodes, encodeRouted(packet))
  }

  /** ROUTE calls made, for tests */
  get routeCalls (): number {
    return this.batcher.calls
  }

  /**
   * Resolves once every entry in the inbox now has been published here (at
   * most `CATCH_UP_MS` later): a session resumed here then has every message
   * acknowledged to its publishers before the resume, ahead of later ones.
   * The batch being published when the inbox was looked at is waited for
   * too, though its entries may have come after the last one seen (its read
   * raced the look): each of its messages was sent to the sessions this
   * node held as it began, and a session handed over meanwhile would miss
   * it (queued in a copy no longer written, or matching no subscription).
   */
  async caughtUp (): Promise<void> {
    const last = await this.redis.commands.xrevrange(inboxKey(this.nodeId), '+', '-', 'COUNT', 1)
    const handling = this.handling?.catch(() => {})
    const target = last[0]?.[0]
    if (target === undefined || compareIds(this.processed, target) >= 0) {
      await handling
      return
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CATCH_UP_MS)
      this.waiters.push({ target, resolve: () => { clearTimeout(timer); resolve() } })
    })
    await handling
  }

  /**
   * Resolves once another node's inbox holds no entry it held now (each was
   * published there, or queued by the node that adopted it, and deleted; at
   * most `waitMs` later, then false): a session
   * that node held and this node now claims has every message acknowledged
   * to its publishers before the claim in Redis (that node hands the
   * session over only after it caught up, see broker/cluster.ts).
   */
  async drainedOf (nodeId: string, waitMs = CATCH_UP_MS): Promise<boolean> {
    const key = inboxKey(nodeId)
    const last = await this.redis.commands.xrevrange(key, '+', '-', 'COUNT', 1)
    const target = last[0]?.[0]
    if (target === undefined) return true
    const deadline = Date.now() + waitMs
    while (Date.now() < deadline && !this.stopped) {
      if ((await this.redis.commands.xrange(key, '-', target, 'COUNT', 1)).length === 0) return true
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    this.logger.warn({ node: nodeId }, 'cluster: the previous node of a claimed session did not catch up with its inbox in time; messages still there may miss the session')
    return false
  }

  /** Reads the inbox from its first unacknowledged entry on, until stopped. */
  async start (): Promise<void> {
    const reader = this.redis.duplicate({ commandTimeout: BLOCK_MS + 3000, lazyConnect: true })
    reader.on('error', () => {})
    this.reader = reader
    await reader.connect()
    await this.createGroup()
    this.running = this.loop()
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const waiter of this.waiters.splice(0)) waiter.resolve()
    this.reader?.disconnect()
    await this.running
  }

  private async createGroup (): Promise<void> {
    try {
      await this.redis.commands.xgroup('CREATE', inboxKey(this.nodeId), INBOX_GROUP, '0', 'MKSTREAM')
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err
    }
  }

  private async loop (): Promise<void> {
    const key = inboxKey(this.nodeId)
    // '0': this consumer's entries read but never acknowledged (an earlier run, a failed acknowledgement); then '>': new ones
    let cursor = '0'
    while (!this.stopped) {
      try {
        const reader = this.reader as Redis
        const reply = (cursor === '0'
          ? await reader.xreadgroupBuffer('GROUP', INBOX_GROUP, this.nodeId, 'COUNT', BATCH, 'STREAMS', key, '0')
          : await reader.xreadgroupBuffer('GROUP', INBOX_GROUP, this.nodeId, 'COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', key, '>')) as unknown as StreamReply
        const entries = reply?.[0]?.[1] ?? []
        if (entries.length === 0) {
          cursor = '>'
          continue
        }
        const handling = this.handle(key, entries)
        this.handling = handling
        try {
          await handling
        } finally {
          this.handling = undefined
        }
      } catch (err) {
        if (this.stopped) return
        // Redis lost the stream and its group (a restart without AOF): made again; what it lost is gone
        if (err instanceof Error && err.message.startsWith('NOGROUP')) await this.createGroup().catch(() => {})
        else this.logger.debug({ err }, 'cluster: reading the inbox failed; retrying')
        cursor = '0'
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
  }

  /** Publishes a batch here in the stream's order, then acknowledges and deletes it. */
  private async handle (key: string, entries: StreamEntry[]): Promise<void> {
    const ids: Buffer[] = []
    const messages: EntryMessage[] = []
    for (const [id, fields] of entries) {
      ids.push(id)
      if (fields !== null) for (const message of decodeEntry(id, fields, this.logger)) messages.push(message)
    }
    // one failed publish (this node's store refused it) leaves the batch unacknowledged: read again later
    await this.publishAll(messages)
    this.delivered += messages.length
    await this.redis.commands.pipeline().xack(key, INBOX_GROUP, ...ids).xdel(key, ...ids).exec()
    const last = ids[ids.length - 1]?.toString()
    if (last !== undefined && compareIds(last, this.processed) > 0) this.processed = last
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]
      if (waiter !== undefined && compareIds(waiter.target, this.processed) <= 0) {
        this.waiters.splice(i, 1)
        waiter.resolve()
      }
    }
  }

  /** Publishes every message here at once (aedes keeps their order per subscriber); rejects with the first failure once all are done. */
  private async publishAll (messages: readonly EntryMessage[]): Promise<void> {
    if (messages.length === 0) return
    await new Promise<void>((resolve, reject) => {
      let left = messages.length
      let failed: Error | undefined
      const done = (err?: Error | null): void => {
        if (err) failed ??= err
        if (--left > 0) return
        if (failed === undefined) resolve()
        else reject(failed)
      }
      for (const message of messages) this.deliver(message.packet, message, done)
    })
  }
}
