// The durable copy every part writes through to. The level store sets a
// backend once LevelDB is open (writes go through group commit, the promise
// resolving once the write is in LevelDB); the memory store never does, and
// then a write is nothing and returns undefined, so that the callers await
// nothing on the hot path.
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

  /** is there a durable copy (level store)? */
  get durable (): boolean {
    return this.backend !== null
  }

  put (key: string, value: Uint8Array): Promise<void> | undefined {
    return this.backend?.writer.put(key, value)
  }

  del (key: string): Promise<void> | undefined {
    return this.backend?.writer.del(key)
  }

  /** bodies by key; all undefined without a backend */
  read (keys: string[]): Promise<Array<StoredPacket | undefined>> {
    return this.backend === null ? Promise.resolve(keys.map(() => undefined)) : this.backend.readPackets(keys)
  }

  checkOpen (): void {
    if (this.closed) throw new CulexError('CULEX_ERR_PERSISTENCE_CLOSED')
  }
}
