// The will store: one will message per session, kept until it is published
// or the session ends.
import { clonePacket, copyPacket, encodePacket } from '../codec.js'
import type { BrokerHeartbeats, StoredPacket } from '../types.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface WillStore {
  readonly size: number
  /** stores a copy; the promise resolves once it is durable */
  put (clientId: string, will: StoredPacket): Promise<void> | undefined
  /** a copy of the session's will */
  get (clientId: string): StoredPacket | undefined
  /** removes the will and returns it (a copy) */
  take (clientId: string): { will: StoredPacket, written: Promise<void> | undefined } | undefined
  /** removes the will if there is one; the write, if any */
  delete (clientId: string): Promise<void> | undefined
  /** every will, as [clientId, stored will] (not copies: callers clone what they hand out) */
  entries (): IterableIterator<[string, StoredPacket]>
  /**
   * Copies of the wills aedes' will sweep is to publish: those of brokers
   * that are not alive, and not inside their Will Delay Interval.
   */
  due (brokers: BrokerHeartbeats, willDelayUntil: (clientId: string) => number | undefined, now: number): StoredPacket[]
  /** in-memory part of a will loaded from disk */
  restore (clientId: string, will: StoredPacket): void
}

export class MemoryWills implements WillStore {
  readonly #wills = new Map<string, StoredPacket>()

  constructor (private readonly io: WriteThrough) {}

  get size (): number {
    return this.#wills.size
  }

  put (clientId: string, will: StoredPacket): Promise<void> | undefined {
    const copy = copyPacket(will)
    this.#wills.set(clientId, copy)
    return this.io.put(KEY.will(clientId), encodePacket(copy))
  }

  get (clientId: string): StoredPacket | undefined {
    const will = this.#wills.get(clientId)
    return will === undefined ? undefined : clonePacket(will)
  }

  take (clientId: string): { will: StoredPacket, written: Promise<void> | undefined } | undefined {
    const will = this.#wills.get(clientId)
    if (will === undefined) return undefined
    this.#wills.delete(clientId)
    return { will: clonePacket(will), written: this.io.del(KEY.will(clientId)) }
  }

  delete (clientId: string): Promise<void> | undefined {
    return this.#wills.delete(clientId) ? this.io.del(KEY.will(clientId)) : undefined
  }

  entries (): IterableIterator<[string, StoredPacket]> {
    return this.#wills.entries()
  }

  due (brokers: BrokerHeartbeats, willDelayUntil: (clientId: string) => number | undefined, now: number): StoredPacket[] {
    const out: StoredPacket[] = []
    for (const [clientId, will] of this.#wills) {
      const brokerId = will.brokerId
      if (typeof brokerId === 'string' && Object.hasOwn(brokers, brokerId) && Boolean(brokers[brokerId])) continue
      // a will still inside its Will Delay Interval is published by the
      // session-expiry helper at its deadline, not by aedes' will sweep
      const until = willDelayUntil(clientId)
      if (until !== undefined && until > now) continue
      out.push(clonePacket(will))
    }
    return out
  }

  restore (clientId: string, will: StoredPacket): void {
    this.#wills.set(clientId, will)
  }
}
