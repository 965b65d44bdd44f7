/**
 * A write-through target for testing one store part alone: a real
 * GroupCommit over a map standing in for LevelDB, so a part's writes can be
 * read back as keys and decoded values. After `partsOnRedis`, the batches go
 * through the Redis store's backend (lib/persistence/redis-sessions.ts) to a
 * real Redis instead, and the map is what Redis then holds for the sessions
 * written (read back after each batch; keys of no session stay in the map,
 * as they stay in memory in the Redis store).
 */
import type { Redis } from 'ioredis'
import { decodePacket, decodeRecord } from '../../lib/persistence/codec.js'
import { GroupCommit, type BatchTarget } from '../../lib/persistence/group-commit.js'
import { WriteThrough } from '../../lib/persistence/parts/write-through.js'
import { defineSessionScripts, EPOCH_FIELD, sessionKey, sessionOf, SessionWriter } from '../../lib/persistence/redis-sessions.js'

export interface Disk {
  io: WriteThrough
  /** what is on "disk" after the batches written so far */
  data: Map<string, Uint8Array>
  record (key: string): unknown
  keys (): string[]
}

let onRedis: (() => Promise<Redis>) | undefined
let prefixes = 0

/**
 * Every durable disk() from now on writes through the Redis store's backend
 * to the Redis `connect` resolves with (asked at the first write), each
 * under a key prefix of its own.
 */
export function partsOnRedis (connect: () => Promise<Redis>): void {
  let connection: Promise<Redis> | undefined
  onRedis = async () => {
    connection ??= connect().then((redis) => { defineSessionScripts(redis); return redis })
    return await connection
  }
}

function redisTarget (connect: () => Promise<Redis>, data: Map<string, Uint8Array>): BatchTarget {
  const prefix = `culex-parts-${process.pid}-${++prefixes}:`
  let writer: SessionWriter | undefined
  return {
    batch () {
      const ops: Array<[string, Uint8Array | null]> = []
      const sessions = new Set<string>()
      const local: Array<[string, Uint8Array | null]> = []
      const route = (key: string, value: Uint8Array | null): void => {
        ops.push([key, value])
        const cid = sessionOf(key)
        if (cid === undefined) local.push([key, value])
        else sessions.add(cid)
      }
      return {
        put (key: string, value: Uint8Array) { route(key, value) },
        del (key: string) { route(key, null) },
        async write (options: { sync: boolean }) {
          const redis = await connect()
          writer ??= new SessionWriter({ redis, prefix, epochFor: () => '', onRefused: () => {} })
          const inner = writer.batch()
          for (const [key, value] of ops) {
            if (value === null) inner.del(key)
            else inner.put(key, value)
          }
          await inner.write(options)
          for (const [key, value] of local) {
            if (value === null) data.delete(key)
            else data.set(key, value)
          }
          for (const cid of sessions) {
            const held = await redis.hgetallBuffer(sessionKey(prefix, cid))
            for (const key of [...data.keys()]) if (sessionOf(key) === cid) data.delete(key)
            for (const [field, value] of Object.entries(held)) if (field !== EPOCH_FIELD) data.set(field, value)
          }
        }
      }
    }
  }
}

/** A WriteThrough with a backend (as the level store) when `durable`, without one (as the memory store) otherwise. */
export function disk (durable = true): Disk {
  const data = new Map<string, Uint8Array>()
  const io = new WriteThrough()
  if (durable) {
    const target = onRedis !== undefined ? redisTarget(onRedis, data) : {
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
