// The durable copy every part writes through to. The level store sets a
// backend once LevelDB is open (writes go through group commit, the promise
// resolving once the write is in LevelDB); the memory store never does, and
// then a write is nothing and returns undefined, so that the callers await
// nothing on the hot path. A store that drops its copy of a session that
// now lives elsewhere (the Redis store) clears the parts `silently`: memory
// only, nothing written.
import type { GroupCommit } from '../group-commit.js'
import { CulexError } from '../../errors.js'
import type { StoredPacket } from '../types.js'

/** Writes mutations and reads message bodies that are not cached (level store only). */
export interface StoreBackend {
  writer: GroupCommit
  readPackets (keys: string[]): Promise<Array<StoredPacket | undefined>>
}

export class WriteThrough {
  backend: StoreBackend | null = null
  closed = false
  #silent = false

  /** is there a durable copy (level store)? */
  get durable (): boolean {
    return this.backend !== null
  }

  put (key: string, value: Uint8Array): Promise<void> | undefined {
    return this.#silent ? undefined : this.backend?.writer.put(key, value)
  }

  del (key: string): Promise<void> | undefined {
    return this.#silent ? undefined : this.backend?.writer.del(key)
  }

  /** a delete nobody waits for: it may wait for the next batch (GroupCommit.delLater) */
  delLater (key: string): Promise<void> | undefined {
    return this.#silent ? undefined : this.backend?.writer.delLater(key)
  }

  /** runs `change` (synchronous) on the in-memory indexes only: nothing it does is written */
  silently (change: () => void): void {
    this.#silent = true
    try {
      change()
    } finally {
      this.#silent = false
    }
  }

  /** bodies by key; all undefined without a backend */
  read (keys: string[]): Promise<Array<StoredPacket | undefined>> {
    return this.backend === null ? Promise.resolve(keys.map(() => undefined)) : this.backend.readPackets(keys)
  }

  checkOpen (): void {
    if (this.closed) throw new CulexError('CULEX_ERR_PERSISTENCE_CLOSED')
  }
}
