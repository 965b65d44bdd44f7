// Session records: a persistent session's deadline, will delay, expiry
// interval and owner (see SessionMeta); a 3.1.1 persistent session has one
// without a deadline.
import { encodeRecord } from '../codec.js'
import type { SessionMeta } from '../types.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface SessionRecords {
  readonly size: number
  put (clientId: string, meta: SessionMeta): Promise<void> | undefined
  /** a copy of the record */
  get (clientId: string): SessionMeta | undefined
  /** the will delay deadline, without a copy (the will sweep asks per will) */
  willDelayUntil (clientId: string): number | undefined
  /** removes the record if there is one; the write, if any */
  delete (clientId: string): Promise<void> | undefined
  /** a snapshot of every record, as copies */
  list (): Array<{ clientId: string, meta: SessionMeta }>
  /** in-memory part of a record loaded from disk */
  restore (clientId: string, meta: SessionMeta): void
}

export class MemorySessions implements SessionRecords {
  readonly #sessions = new Map<string, SessionMeta>()

  constructor (private readonly io: WriteThrough) {}

  get size (): number {
    return this.#sessions.size
  }

  put (clientId: string, meta: SessionMeta): Promise<void> | undefined {
    // only the known fields, none of them undefined, reach the record
    const record: SessionMeta = { expiresAt: meta.expiresAt }
    if (meta.willDelayUntil !== undefined) record.willDelayUntil = meta.willDelayUntil
    if (meta.expiryInterval !== undefined) record.expiryInterval = meta.expiryInterval
    if (meta.owner !== undefined) record.owner = meta.owner
    this.#sessions.set(clientId, record)
    return this.io.put(KEY.session(clientId), encodeRecord(record))
  }

  get (clientId: string): SessionMeta | undefined {
    const meta = this.#sessions.get(clientId)
    return meta === undefined ? undefined : { ...meta }
  }

  willDelayUntil (clientId: string): number | undefined {
    return this.#sessions.get(clientId)?.willDelayUntil
  }

  delete (clientId: string): Promise<void> | undefined {
    return this.#sessions.delete(clientId) ? this.io.del(KEY.session(clientId)) : undefined
  }

  list (): Array<{ clientId: string, meta: SessionMeta }> {
    const out: Array<{ clientId: string, meta: SessionMeta }> = []
    for (const [clientId, meta] of this.#sessions) out.push({ clientId, meta: { ...meta } })
    return out
  }

  restore (clientId: string, meta: SessionMeta): void {
    this.#sessions.set(clientId, meta)
  }
}
