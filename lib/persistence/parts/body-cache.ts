// The body cache budget of the level store: message bodies (queued and
// retained) stay in memory while their accounted bytes fit `limit`; the rest
// are read from disk by key once written. The memory store keeps every body
// and accounts none.
import type { StoredPacket } from '../types.js'
import type { WriteThrough } from './write-through.js'

export interface CachedBody {
  /** bytes this body holds in the budget (0 = not accounted) */
  cached: number
  /** decoded body, or undefined when it lives only on disk */
  body: StoredPacket | undefined
}

export class BodyCache {
  used = 0

  constructor (readonly limit: number, private readonly io: WriteThrough) {}

  /** takes `bytes` of the budget if they fit */
  take (bytes: number): boolean {
    if (this.used + bytes > this.limit) return false
    this.used += bytes
    return true
  }

  release (bytes: number): void {
    this.used -= bytes
  }

  /** accounts the entry's body if it fits */
  admit (entry: { cached: number }, bytes: number): void {
    if (this.take(bytes)) entry.cached = bytes
  }

  /** a body outside the budget is let go once it is on disk (level store only) */
  evictIfUnaccounted (entry: CachedBody): void {
    if (entry.cached === 0 && this.io.durable) entry.body = undefined
  }

  uncache (entry: { cached: number }): void {
    this.used -= entry.cached
    entry.cached = 0
  }
}
