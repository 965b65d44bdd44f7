/**
 * A write-through target for testing one store part alone: a real
 * GroupCommit over a map standing in for LevelDB, so a part's writes can be
 * read back as keys and decoded values.
 */
import { decodePacket, decodeRecord } from '../../lib/persistence/codec.js'
import { GroupCommit } from '../../lib/persistence/group-commit.js'
import { WriteThrough } from '../../lib/persistence/parts/write-through.js'

export interface Disk {
  io: WriteThrough
  /** what is on "disk" after the batches written so far */
  data: Map<string, Uint8Array>
  record (key: string): unknown
  keys (): string[]
}

/** A WriteThrough with a backend (as the level store) when `durable`, without one (as the memory store) otherwise. */
export function disk (durable = true): Disk {
  const data = new Map<string, Uint8Array>()
  const io = new WriteThrough()
  if (durable) {
    const target = {
      batch () {
        const ops: Array<[string, Uint8Array | null]> = []
        return {
          put (key: string, value: Uint8Array) { ops.push([key, value]) },
          del (key: string) { ops.push([key, null]) },
          async write () {
            for (const [key, value] of ops) {
              if (value === null) data.delete(key)
              else data.set(key, value)
            }
          }
        }
      }
    }
    io.backend = {
      writer: new GroupCommit(target, false, (err) => { throw err }),
      readPackets: async (keys) => keys.map((key) => {
        const value = data.get(key)
        return value === undefined ? undefined : decodePacket(value)
      })
    }
  }
  return {
    io,
    data,
    record: (key) => {
      const value = data.get(key)
      return value === undefined ? undefined : decodeRecord(value)
    },
    keys: () => [...data.keys()].sort()
  }
}
