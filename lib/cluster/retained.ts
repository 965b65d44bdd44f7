/**
 * Retained messages cluster-wide: Redis holds the truth, one key per topic
 * (`culex:retained:{topic}`, the encoded message, expiring with the message
 * at its absolute deadline), and each node keeps its own retained store as a
 * read cache of it. A change is written by a script that sets or deletes the
 * key and announces the new value on `{culex}:retained` in the same step, so
 * every node sees the changes of a topic in Redis' order and its cache ends
 * where Redis does. The cache is filled at join and reconciled with Redis
 * after anything that may have lost a notice (a lost lease, a reconnect of
 * the notice connection, a write Redis refused). Lookups at SUBSCRIBE stay
 * local: proportional to the matches, no Redis round trip.
 * Topics starting with '$' ($SYS) stay on their node.
 */
import type { Logger } from 'pino'
import { copyPacket, decodePacket, encodePacket } from '../persistence/codec.js'
import type { StoredPacket } from '../persistence/types.js'
import type { RedisPair } from './redis.js'
import { CLUSTER_PREFIX, ENTITY_PREFIX } from './keys.js'
import { clusterWriteRefused } from './refusal.js'
import { Script } from './script.js'

const PREFIX = `${ENTITY_PREFIX}retained:`
/**
 * The key of a topic's retained message. The hash tag is the whole topic:
 * each script touches this one key, so in a Redis Cluster the messages
 * spread over every master instead of one hash on one (aedes-persistence-redis #85).
 */
export const retainedKey = (topic: string): string => `${PREFIX}{${topic}}`
export const RETAINED_CHANNEL = `${CLUSTER_PREFIX}retained`

/** topics SCAN returns per call at a (re)load */
const SCAN_COUNT = 1000

/**
 * KEYS[1] the topic's key; ARGV[1] the encoded message (empty payload:
 * delete), ARGV[2] '1' to delete, ARGV[3] the expiry deadline (ms since the
 * epoch, '0' none), ARGV[4] the notice channel.
 */
const WRITE = new Script(`
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
`)

/** Applies a cluster-wide change to this node's own retained store (no write back to Redis). */
export type ApplyRetained = (packet: StoredPacket) => Promise<void>

function isEmpty (packet: StoredPacket): boolean {
  const p = packet.payload
  return p === undefined || p === null || (typeof p === 'string' ? p.length === 0 : p.byteLength === 0)
}

/** The absolute deadline of a message's expiry, ms; undefined when it has none. */
export function expiryOf (packet: StoredPacket, now = Date.now()): number | undefined {
  if (typeof packet.messageExpiry === 'number') return packet.messageExpiry
  const interval = packet.properties?.messageExpiryInterval
  return typeof interval === 'number' ? now + interval * 1000 : undefined
}

export class ClusterRetained {
  /** the cluster's topics this node's cache holds */
  private readonly known = new Set<string>()
  /** notices held back while a (re)load reads Redis; undefined when not loading */
  private held: StoredPacket[] | undefined
  private loading: Promise<void> | undefined
  private again = false
  private stopped = false
  private apply: ApplyRetained = async () => {}
  private started = false

  constructor (private readonly redis: RedisPair, private readonly logger: Logger) {}

  /** Subscribes to the notices, then fills the cache from Redis. */
  async start (apply: ApplyRetained): Promise<void> {
    this.apply = apply
    this.redis.notices.on('messageBuffer', this.onNotice)
    this.redis.notices.on('ready', this.onReconnect)
    await this.redis.notices.subscribe(RETAINED_CHANNEL)
    this.started = true
    await this.reload()
  }

  stop (): void {
    this.stopped = true
    this.redis.notices.off('messageBuffer', this.onNotice)
    this.redis.notices.off('ready', this.onReconnect)
  }

  /**
   * Sets, replaces or (empty payload) deletes `packet.topic`'s retained
   * message in Redis; resolves once Redis has it, rejects with
   * ClusterWriteRefused (refusal.ts) when Redis refuses or does not answer. The message is encoded
   * before the first await (aedes changes its packet after the call).
   */
  async store (packet: StoredPacket): Promise<void> {
    const topic = packet.topic
    if (typeof topic !== 'string' || topic.startsWith('$')) return
    const remove = isEmpty(packet)
    // this node's store has the change already (the broker stores it here first): a reload must know the topic
    if (remove) this.known.delete(topic)
    else this.known.add(topic)
    const body: StoredPacket = remove ? { cmd: 'publish', topic, payload: Buffer.alloc(0), retain: true, qos: 0 } : copyPacket(packet)
    const deadline = remove ? undefined : expiryOf(packet)
    if (deadline !== undefined) body.messageExpiry = deadline
    const bytes = encodePacket(body)
    try {
      await WRITE.run(this.redis.commands, [retainedKey(topic)], [bytes, remove ? '1' : '0', deadline === undefined ? '0' : String(Math.max(1, deadline)), RETAINED_CHANNEL])
    } catch (err) {
      // this node's cache already has the change Redis refused: read Redis again once it answers
      this.scheduleReload()
      throw clusterWriteRefused(err, `retained message of ${topic}`)
    }
  }

  /**
   * Makes the cache what Redis holds: every key read, topics Redis no longer
   * has removed; notices that come meanwhile are applied after, in order
   * (each is newer than or equal to what the read found). One at a time; a
   * request during a reload runs another after it.
   */
  async reload (): Promise<void> {
    if (this.loading !== undefined) {
      this.again = true
      return await this.loading
    }
    this.loading = this.load().finally(() => {
      this.loading = undefined
      if (this.again && !this.stopped) {
        this.again = false
        this.scheduleReload()
      }
    })
    return await this.loading
  }

  /** the cluster topics this node holds, for tests */
  get size (): number {
    return this.known.size
  }

  private async load (): Promise<void> {
    this.held = []
    try {
      const found = new Set<string>()
      // the topics' keys spread over a Redis Cluster's masters: each is scanned, and read there
      for (const master of this.redis.masters()) {
        let cursor = '0'
        do {
          const [next, keys] = await master.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', SCAN_COUNT)
          cursor = next
          if (keys.length === 0) continue
          const pipeline = master.pipeline()
          for (const key of keys) pipeline.getBuffer(key)
          const values = await pipeline.exec() ?? []
          for (const [err, value] of values) {
            if (err !== null || !(value instanceof Buffer)) continue
            const packet = this.decode(value)
            if (packet === undefined || typeof packet.topic !== 'string') continue
            found.add(packet.topic)
            await this.applyOne(packet)
          }
        } while (cursor !== '0')
      }
      for (const topic of [...this.known]) {
        if (!found.has(topic)) await this.applyOne({ cmd: 'publish', topic, payload: Buffer.alloc(0), retain: true, qos: 0 })
      }
    } finally {
      const held = this.held
      this.held = undefined
      for (const packet of held) await this.applyOne(packet)
    }
  }

  private scheduleReload (): void {
    if (this.stopped || !this.started) return
    this.reload().catch((err: unknown) => {
      this.logger.warn({ err }, 'cluster: reading the retained messages again failed; the next lease loss or reconnect retries')
    })
  }

  private async applyOne (packet: StoredPacket): Promise<void> {
    const topic = packet.topic as string
    if (isEmpty(packet)) this.known.delete(topic)
    else this.known.add(topic)
    try {
      await this.apply(packet)
    } catch (err) {
      this.logger.warn({ err, topic }, 'cluster: a retained message could not be stored on this node')
    }
  }

  private decode (bytes: Buffer): StoredPacket | undefined {
    try {
      return decodePacket(bytes)
    } catch (err) {
      this.logger.warn({ err }, 'cluster: a retained message could not be decoded; skipped')
      return undefined
    }
  }

  private readonly onNotice = (channel: Buffer, bytes: Buffer): void => {
    if (channel.toString() !== RETAINED_CHANNEL) return
    const packet = this.decode(bytes)
    if (packet === undefined || typeof packet.topic !== 'string') return
    if (this.held !== undefined) this.held.push(packet)
    else void this.applyOne(packet)
  }

  /** the notice connection came back: notices may have been lost meanwhile */
  private readonly onReconnect = (): void => {
    this.scheduleReload()
  }
}
