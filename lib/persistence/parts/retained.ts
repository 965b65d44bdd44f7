// The retained index: one message per topic, matched by subscription
// filters through a topic tree, within the retained limits.
import { Readable } from 'node:stream'
import { accountedBytes, clonePacket, copyPacket, encodePacket, payloadBytes } from '../codec.js'
import { TopicTree } from '../topic-tree.js'
import type { StoredPacket } from '../types.js'
import type { BodyCache } from './body-cache.js'
import type { DropReporter } from './drops.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface RetainedIndex {
  readonly size: number
  /**
   * Stores, replaces or (empty payload) removes the topic's retained
   * message; the promise resolves once that is durable.
   */
  store (packet: StoredPacket): Promise<void>
  /** the retained messages matching any of the filters, each topic once, as copies */
  stream (filters: string[]): Readable
  /**
   * The same messages in batches, as stored: no copy and no stream step per
   * message (the gateway's retained delivery, flows/retained-out.ts). The
   * bodies are the index's own: a reader must not change them.
   */
  batches (filters: string[]): AsyncIterable<readonly StoredPacket[]>
  /** in-memory part of a retained message loaded from disk */
  restore (topic: string, body: StoredPacket): void
}

export interface RetainedLimits {
  maxRetained: number
  maxRetainedPayload: number
}

const STREAM_CHUNK = 64
/** what a retained write that needs no waiting returns */
const DONE: Promise<void> = Promise.resolve()

/**
 * A retained message of the level store whose body is outside the cache
 * budget: it is read from disk by key. `body` is held only until the write is
 * in LevelDB. Every other retained message is stored as its body itself (one
 * object per message, for the memory store always), and a cached body counts
 * `accountedBytes(body)` against the budget.
 */
class UncachedRetained {
  constructor (readonly topic: string, readonly expiry: number | undefined, public body: StoredPacket | undefined) {}
}

type RetainedValue = StoredPacket | UncachedRetained

function retainedTopic (value: RetainedValue): string {
  return value.topic as string
}

function retainedExpiry (value: RetainedValue): number | undefined {
  return value instanceof UncachedRetained ? value.expiry : value.messageExpiry
}

export class MemoryRetained implements RetainedIndex {
  readonly #retained = new TopicTree<RetainedValue>()
  /** bumped when a retained message is replaced or removed: streams that matched before look their topics up again */
  #version = 0

  constructor (
    private readonly io: WriteThrough,
    private readonly cache: BodyCache,
    private readonly drops: DropReporter,
    private readonly limits: RetainedLimits
  ) {}

  get size (): number {
    return this.#retained.size
  }

  /**
   * Steps for a retained message (aedes calls this for every PUBLISH with
   * RETAIN before it is delivered or acknowledged):
   * 1. [MQTT-3.3.1-6] an empty payload removes the retained message;
   * 2. over `maxRetainedPayload`, or a new topic when `maxRetained` are
   *    stored: refused (counted, logged, drop event);
   * 3. [MQTT-3.3.1-5] it replaces the topic's previous message: a copy goes
   *    into the index (aedes mutates its packet after this call), and for the
   *    level store into LevelDB, the promise resolving once it is written.
   */
  store (packet: StoredPacket): Promise<void> {
    const topic = packet.topic
    if (typeof topic !== 'string') return DONE
    const size = payloadBytes(packet)
    if (size === 0) return this.#delete(topic) ?? DONE
    if (size > this.limits.maxRetainedPayload) {
      this.drops.report(packet.clientId ?? null, 'retained-limit', 1, { topic, size, maxRetainedPayload: this.limits.maxRetainedPayload })
      return DONE
    }
    // Only a full store needs to know whether the topic is new: one tree walk
    // per message otherwise (set returns what it replaced).
    if (this.#retained.size >= this.limits.maxRetained && !this.#retained.has(topic)) {
      this.drops.report(packet.clientId ?? null, 'retained-limit', 1, { topic, maxRetained: this.limits.maxRetained })
      return DONE
    }
    const body = copyPacket(packet)
    if (!this.io.durable) {
      // the memory store keeps the copy itself: nothing to encode, account or wait for
      const previous = this.#retained.set(topic, body)
      if (previous !== undefined) this.#version++
      return DONE
    }
    // accountedBytes(body), without measuring the payload again
    const bytes = size + Buffer.byteLength(topic)
    const value: RetainedValue = this.cache.take(bytes) ? body : new UncachedRetained(topic, body.messageExpiry, body)
    const previous = this.#retained.set(topic, value)
    if (previous !== undefined) {
      this.#version++
      this.#uncache(previous)
    }
    const written = this.io.put(KEY.retained(topic), encodePacket(body)) as Promise<void>
    if (!(value instanceof UncachedRetained)) return written
    // once on disk it is read from there
    return written.then(() => { value.body = undefined })
  }

  #delete (topic: string): Promise<void> | undefined {
    const existing = this.#retained.get(topic)
    if (existing === undefined) return undefined
    this.#version++
    this.#uncache(existing)
    this.#retained.delete(topic)
    return this.io.del(KEY.retained(topic))
  }

  /** a cached body leaves the cache budget (level store) */
  #uncache (value: RetainedValue): void {
    if (this.io.durable && !(value instanceof UncachedRetained)) this.cache.release(accountedBytes(value))
  }

  stream (filters: string[]): Readable {
    return Readable.from(copies(this.batches(filters)))
  }

  batches (filters: string[]): AsyncIterable<readonly StoredPacket[]> {
    return this.#generate(this.#match(filters), this.#version)
  }

  #match (filters: string[]): RetainedValue[] {
    const matches: RetainedValue[] = []
    if (this.io.closed) return matches
    if (filters.length === 1) {
      // one filter yields each topic once
      this.#retained.match(filters[0] as string, matches)
    } else {
      // One message per topic even when several filters match it (one value per topic).
      const seen = new Set<RetainedValue>()
      for (const filter of filters) {
        for (const match of this.#retained.match(filter)) {
          if (seen.has(match)) continue
          seen.add(match)
          matches.push(match)
        }
      }
    }
    return matches
  }

  async * #generate (matches: RetainedValue[], version: number): AsyncGenerator<StoredPacket[]> {
    for (let i = 0; i < matches.length; i += STREAM_CHUNK) {
      const end = Math.min(matches.length, i + STREAM_CHUNK)
      const now = Date.now()
      const live: RetainedValue[] = []
      // one pass over the chunk; the memory store's values are their bodies (no UncachedRetained)
      let uncached = false
      const missing: string[] = []
      for (let j = i; j < end; j++) {
        const held = matches[j] as RetainedValue
        // the current message: it may have been replaced or removed meanwhile
        const value = this.#version === version ? held : this.#retained.get(retainedTopic(held))
        if (value === undefined) continue
        // [MQTT-3.3.2-5] an expired retained message is not sent, and is removed
        const expiry = retainedExpiry(value)
        if (expiry !== undefined && expiry <= now) {
          const topic = retainedTopic(value)
          if (!this.io.closed) this.#delete(topic)?.catch(() => {})
          this.drops.report(null, 'expired', 1, { topic })
          continue
        }
        if (value instanceof UncachedRetained) {
          uncached = true
          if (value.body === undefined) missing.push(KEY.retained(value.topic))
        }
        live.push(value)
      }
      if (!uncached) {
        if (live.length > 0) yield live as StoredPacket[]
        continue
      }
      let loaded: Array<StoredPacket | undefined> = []
      if (missing.length > 0 && this.io.durable) loaded = await this.io.read(missing)
      let m = 0
      const bodies: StoredPacket[] = []
      for (const value of live) {
        const body = value instanceof UncachedRetained ? value.body ?? loaded[m++] : value
        if (body !== undefined) bodies.push(body)
      }
      if (bodies.length > 0) yield bodies
    }
  }

  restore (topic: string, body: StoredPacket): void {
    // the key names the topic
    body.topic = topic
    const value: RetainedValue = this.cache.take(accountedBytes(body)) ? body : new UncachedRetained(topic, body.messageExpiry, undefined)
    this.#retained.set(topic, value)
  }
}

/** aedes' stream: one copy per message, which aedes may change */
async function * copies (batches: AsyncIterable<readonly StoredPacket[]>): AsyncGenerator<StoredPacket> {
  for await (const batch of batches) for (const body of batch) yield clonePacket(body)
}
