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

function sameRecord (a: SessionMeta, b: SessionMeta): boolean {
  return a.expiresAt === b.expiresAt && a.willDelayUntil === b.willDelayUntil &&
    a.expiryInterval === b.expiryInterval && a.owner === b.owner
}

export class MemorySessions implements SessionRecords {
  readonly #sessions = new Map<string, SessionMeta>()
  /**
   * Sessions whose record in #sessions is known to be on disk (written, or
   * loaded). A 3.1.1 persistent session puts the same record at every
   * CONNECT: once it is on disk, the same record again is not written.
   */
  readonly #onDisk = new Set<string>()

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
    const current = this.#sessions.get(clientId)
    if (current !== undefined && this.#onDisk.has(clientId) && sameRecord(current, record)) return undefined
    this.#sessions.set(clientId, record)
    this.#onDisk.delete(clientId)
    // the memory store keeps no durable copy: a record encoded for it would be thrown away
    if (!this.io.durable) return undefined
    const written = this.io.put(KEY.session(clientId), encodeRecord(record))
    // a failed write leaves the record unconfirmed: the next put writes it again
    written?.then(() => { if (this.#sessions.get(clientId) === record) this.#onDisk.add(clientId) }, () => {})
    return written
  }

  get (clientId: string): SessionMeta | undefined {
    const meta = this.#sessions.get(clientId)
    return meta === undefined ? undefined : { ...meta }
  }

  willDelayUntil (clientId: string): number | undefined {
    return this.#sessions.get(clientId)?.willDelayUntil
  }

  delete (clientId: string): Promise<void> | undefined {
    this.#onDisk.delete(clientId)
    return this.#sessions.delete(clientId) ? this.io.del(KEY.session(clientId)) : undefined
  }

  list (): Array<{ clientId: string, meta: SessionMeta }> {
    const out: Array<{ clientId: string, meta: SessionMeta }> = []
    for (const [clientId, meta] of this.#sessions) out.push({ clientId, meta: { ...meta } })
    return out
  }

  restore (clientId: string, meta: SessionMeta): void {
    this.#sessions.set(clientId, meta)
    this.#onDisk.add(clientId)
  }
}
