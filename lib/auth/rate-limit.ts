/**
 * Connection / login throttling with bounded memory.
 *
 * Both classes keep one Map in least-recently-used order (a Map iterates in
 * insertion order; touching a key re-inserts it). That gives two cheap ways to
 * bound memory:
 * - idle keys are dropped from the front as soon as forgetting them changes
 *   nothing (a full bucket, an expired failure count);
 * - past `maxKeys`, the least recently used key is evicted.
 * Eviction forgets state, so an attacker controlling more than `maxKeys`
 * sources can reset their own counters; size `maxKeys` above the number of
 * sources expected in one refill / reset period.
 */

export interface RateLimiterOptions {
  /** Bucket size: the burst a key may spend at once. */
  capacity: number
  /** Tokens added per second. */
  refillPerSecond: number
  /** Most keys remembered at once. Default 10000. */
  maxKeys?: number
}

interface Bucket {
  tokens: number
  /** ms timestamp of the last refill computation. */
  at: number
}

const DEFAULT_MAX_KEYS = 10_000

function positiveInt (value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}

/** A token bucket per key (source address, client id, ...). */
export class RateLimiter {
  private readonly capacity: number
  private readonly perMs: number
  private readonly maxKeys: number
  private readonly buckets = new Map<string, Bucket>()

  constructor (options: RateLimiterOptions) {
    if (!(options.capacity > 0) || !Number.isFinite(options.capacity)) throw new RangeError('capacity must be a positive number')
    if (!(options.refillPerSecond >= 0) || !Number.isFinite(options.refillPerSecond)) throw new RangeError('refillPerSecond must be a non-negative number')
    this.capacity = options.capacity
    this.perMs = options.refillPerSecond / 1000
    this.maxKeys = positiveInt(options.maxKeys ?? DEFAULT_MAX_KEYS, 'maxKeys')
  }

  /** Number of keys currently remembered. */
  get size (): number {
    return this.buckets.size
  }

  private refilled (bucket: Bucket, now: number): number {
    // A clock that steps backwards refills nothing rather than going negative.
    const elapsed = Math.max(0, now - bucket.at)
    return Math.min(this.capacity, bucket.tokens + elapsed * this.perMs)
  }

  /** Drops least recently used keys whose bucket has refilled completely. */
  private sweep (now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (this.refilled(bucket, now) < this.capacity) break
      this.buckets.delete(key)
    }
  }

  /** Spends `cost` tokens for `key` if it has them; false means "over the limit". */
  take (key: string, now: number = Date.now(), cost = 1): boolean {
    this.sweep(now)
    const existing = this.buckets.get(key)
    const tokens = existing === undefined ? this.capacity : this.refilled(existing, now)
    this.buckets.delete(key)
    const allowed = tokens >= cost
    // Never move `at` backwards, or a clock step back would later count twice.
    const at = existing === undefined ? now : Math.max(existing.at, now)
    this.buckets.set(key, { tokens: allowed ? tokens - cost : tokens, at })
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next()
      if (oldest.done !== true) this.buckets.delete(oldest.value)
    }
    return allowed
  }
}

export interface FailureDelayOptions {
  /** Delay after the first failure that is not free. Default 250 ms. */
  baseMs?: number
  /** Upper bound of the delay. Default 5000 ms. */
  maxMs?: number
  /** Failures forgiven without delay. Default 1 (so: 0, 0, 250, 500, 1000, ...). */
  freeFailures?: number
  /** Quiet time after the last failure that resets the count. Default 60 s. */
  resetAfterMs?: number
  /** Most addresses remembered at once. Default 10000. */
  maxKeys?: number
}

interface FailureRecord {
  failures: number
  last: number
}

/** Failures beyond this no longer change the (capped) delay; bounds 2^n. */
const MAX_COUNTED_FAILURES = 64

/**
 * Exponential back-off for repeated login failures from one address: the
 * broker waits delayFor(addr) ms before answering the next CONNECT from it.
 * With the defaults, after 0, 1, 2, 3, 4, ... failures the delay is
 * 0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000, ... ms.
 */
export class FailureDelay {
  private readonly baseMs: number
  private readonly maxMs: number
  private readonly freeFailures: number
  private readonly resetAfterMs: number
  private readonly maxKeys: number
  private readonly records = new Map<string, FailureRecord>()

  constructor (options: FailureDelayOptions = {}) {
    this.baseMs = options.baseMs ?? 250
    this.maxMs = options.maxMs ?? 5000
    this.freeFailures = options.freeFailures ?? 1
    this.resetAfterMs = options.resetAfterMs ?? 60_000
    this.maxKeys = positiveInt(options.maxKeys ?? DEFAULT_MAX_KEYS, 'maxKeys')
    for (const [name, value] of Object.entries({ baseMs: this.baseMs, maxMs: this.maxMs, freeFailures: this.freeFailures, resetAfterMs: this.resetAfterMs })) {
      if (!(value >= 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a non-negative number`)
    }
  }

  get size (): number {
    return this.records.size
  }

  private expired (record: FailureRecord, now: number): boolean {
    return now - record.last >= this.resetAfterMs
  }

  /** Drops least recently failed addresses whose quiet period has passed. */
  private sweep (now: number): void {
    for (const [addr, record] of this.records) {
      if (!this.expired(record, now)) break
      this.records.delete(addr)
    }
  }

  /**
   * Milliseconds to wait before handling the next attempt from `addr`;
   * `pending` attempts still being checked count as failures, so parallel
   * guesses wait as long as sequential ones would.
   */
  delayFor (addr: string, now: number = Date.now(), pending = 0): number {
    this.sweep(now)
    const record = this.records.get(addr)
    const recorded = record === undefined || this.expired(record, now) ? 0 : record.failures
    const excess = recorded + pending - this.freeFailures
    if (excess <= 0) return 0
    return Math.min(this.maxMs, this.baseMs * 2 ** (excess - 1))
  }

  recordFailure (addr: string, now: number = Date.now()): void {
    this.sweep(now)
    const record = this.records.get(addr)
    const failures = record === undefined || this.expired(record, now) ? 1 : Math.min(record.failures + 1, MAX_COUNTED_FAILURES)
    this.records.delete(addr)
    this.records.set(addr, { failures, last: record === undefined ? now : Math.max(record.last, now) })
    if (this.records.size > this.maxKeys) {
      const oldest = this.records.keys().next()
      if (oldest.done !== true) this.records.delete(oldest.value)
    }
  }

  /** A successful login from `addr` forgives its failures. */
  recordSuccess (addr: string): void {
    this.records.delete(addr)
  }
}
