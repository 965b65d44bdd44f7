/** Helpers shared by the persistence tests. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable, type Readable } from 'node:stream'
import tap, { type Test } from 'tap'
import pino, { type Logger } from 'pino'
import { createPersistence, type CulexPersistence, type PersistenceOptions, type StoredPacket } from '../../lib/persistence/index.js'
import { startRedis, type RedisProcess } from './redis.js'

export const KINDS = ['memory', 'level', 'redis'] as const
export type Kind = typeof KINDS[number]

let sharedRedis: Promise<RedisProcess> | undefined
/** One redis-server for the whole test file (stopped when it ends); each store gets its own key prefix. */
export async function testRedis (): Promise<RedisProcess> {
  sharedRedis ??= startRedis(tap)
  return await sharedRedis
}

let prefixes = 0
/** A key prefix no other store of this process uses. */
export function redisPrefix (): string {
  return `culex-test-${process.pid}-${++prefixes}:`
}

export function tempDir (t: Test, prefix = 'culex-store-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A store of the given kind, set up with a fake broker and closed at teardown. */
export async function openStore (t: Test, kind: Kind, opts: Partial<PersistenceOptions> = {}, dataDir?: string): Promise<CulexPersistence> {
  const redis = kind === 'redis' ? { url: (await testRedis()).url, prefix: redisPrefix() } : undefined
  const store = createPersistence({ ...opts, kind, dataDir: kind === 'level' ? dataDir ?? tempDir(t) : undefined, ...(redis !== undefined ? { redis } : {}) })
  await store.setup({ id: 'broker-1' })
  t.teardown(() => store.close())
  return store
}

export async function collect<T = StoredPacket> (stream: Readable): Promise<T[]> {
  const out: T[] = []
  for await (const item of stream) out.push(item as T)
  return out
}

/** A pino logger whose lines are parsed into `lines`. */
export function captureLogger (): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const dest = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  return { logger: pino({ level: 'debug' }, dest), lines }
}

let counter = 0
/** An aedes-packet-shaped publish as aedes hands it to outgoingEnqueueCombi. */
export function publish (topic: string, payload: string | Buffer, extra: Partial<StoredPacket> = {}): StoredPacket {
  return {
    cmd: 'publish',
    brokerId: 'broker-1',
    brokerCounter: ++counter,
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos: 1,
    retain: false,
    dup: false,
    messageId: undefined,
    ...extra
  }
}

export function v5Properties (): NonNullable<StoredPacket['properties']> {
  return {
    payloadFormatIndicator: true,
    messageExpiryInterval: 100,
    topicAlias: 3,
    responseTopic: 'reply/here',
    correlationData: Buffer.from([0, 1, 2, 255]),
    userProperties: { plain: 'v', multi: ['x', 'y'] },
    subscriptionIdentifier: 7,
    contentType: 'application/json'
  }
}

/** The properties as they must come back: everything but the Topic Alias. */
export function expectedProperties (): NonNullable<StoredPacket['properties']> {
  const { topicAlias: _alias, ...rest } = v5Properties()
  return rest
}
