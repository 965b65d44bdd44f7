// The retained index alone: replace and remove, limits, expiry, the body
// cache budget (a body outside it is read back from disk).
import t from 'tap'
import { BodyCache } from '../../../lib/persistence/parts/body-cache.js'
import { Drops } from '../../../lib/persistence/parts/drops.js'
import { MemoryRetained } from '../../../lib/persistence/parts/retained.js'
import type { StoredPacket } from '../../../lib/persistence/types.js'
import { collect } from '../../helpers/store.js'
import { disk } from '../../helpers/part-disk.js'

const retain = (topic: string, payload: string, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: true, ...extra })

function setup (opts: { durable?: boolean, cacheBytes?: number, maxRetained?: number, maxRetainedPayload?: number } = {}) {
  const d = disk(opts.durable ?? true)
  const cache = new BodyCache(opts.cacheBytes ?? Infinity, d.io)
  const drops = new Drops(undefined, 'drop-oldest')
  const retained = new MemoryRetained(d.io, cache, drops, { maxRetained: opts.maxRetained ?? Infinity, maxRetainedPayload: opts.maxRetainedPayload ?? Infinity })
  return { d, cache, drops, retained }
}

t.test('[MQTT-3.3.1-5] a retained message replaces the topic\'s previous one; [MQTT-3.3.1-6] an empty payload removes it', async (t) => {
  const { d, retained } = setup()
  await retained.store(retain('a/b', 'one'))
  await retained.store(retain('a/b', 'two'))
  await retained.store(retain('a/c', 'three'))
  t.equal(retained.size, 2)
  t.strictSame((await collect(retained.stream(['a/b']))).map((p) => String(p.payload)), ['two'])
  t.strictSame(d.keys(), ['r:a/b', 'r:a/c'])
  await retained.store(retain('a/b', ''))
  t.equal(retained.size, 1)
  t.strictSame(d.keys(), ['r:a/c'])
})

t.test('several filters yield each topic once', async (t) => {
  const { retained } = setup({ durable: false })
  await retained.store(retain('x/1', 'a'))
  await retained.store(retain('x/2', 'b'))
  const got = await collect(retained.stream(['x/+', 'x/1', '#']))
  t.strictSame(got.map((p) => p.topic).sort(), ['x/1', 'x/2'])
})

t.test('the limits refuse a message and report it', async (t) => {
  const { retained, drops } = setup({ maxRetained: 1, maxRetainedPayload: 4 })
  await retained.store(retain('big', 'too big'))
  await retained.store(retain('one', 'ok'))
  await retained.store(retain('two', 'no'))
  await retained.store(retain('one', 'yes'))
  t.equal(retained.size, 1)
  t.strictSame((await collect(retained.stream(['one']))).map((p) => String(p.payload)), ['yes'], 'a known topic may still be replaced')
  t.equal(drops.counts().retainedLimit, 2)
})

t.test('[MQTT-3.3.2-5] an expired retained message is not streamed, and is removed', async (t) => {
  const { d, retained, drops } = setup()
  await retained.store(retain('old', 'x', { messageExpiry: Date.now() - 1 }))
  await retained.store(retain('new', 'y', { messageExpiry: Date.now() + 60_000 }))
  t.strictSame((await collect(retained.stream(['#']))).map((p) => p.topic), ['new'])
  t.equal(retained.size, 1)
  t.equal(drops.counts().expired, 1)
  await d.io.backend?.writer.flush()
  t.strictSame(d.keys(), ['r:new'])
})

t.test('a body outside the cache budget is let go once written and read back from disk', async (t) => {
  const { cache, retained } = setup({ cacheBytes: 10 })
  await retained.store(retain('t', '12345'))
  t.equal(cache.used, 6, 'payload + topic bytes accounted')
  await retained.store(retain('u', 'over the budget'))
  t.equal(cache.used, 6, 'the second body does not fit')
  const got = await collect(retained.stream(['+']))
  t.strictSame(got.map((p) => String(p.payload)).sort(), ['12345', 'over the budget'])
  await retained.store(retain('t', ''))
  t.equal(cache.used, 0, 'removing a cached body gives its bytes back')
  retained.restore('v', { cmd: 'publish', payload: Buffer.from('xy'), qos: 0, retain: true })
  t.equal(cache.used, 3)
  t.strictSame((await collect(retained.stream(['v']))).map((p) => p.topic), ['v'], 'the key names a restored topic')
})

t.test('a message replaced while a stream is under way is streamed as it is now', async (t) => {
  const { retained } = setup({ durable: false })
  await retained.store(retain('s', 'before'))
  const stream = retained.stream(['s'])
  await retained.store(retain('s', 'after'))
  t.strictSame((await collect(stream)).map((p) => String(p.payload)), ['after'])
})

t.test('batches: the stream\'s messages, uncopied, in store order', async (t) => {
  const { retained } = setup({ durable: false })
  const topics = Array.from({ length: 70 }, (_, i) => `b/${String(i).padStart(2, '0')}`)
  for (const topic of topics) await retained.store(retain(topic, topic))
  await retained.store(retain('b/00', 'gone', { messageExpiry: Date.now() - 1 }))
  const batches: StoredPacket[][] = []
  for await (const batch of retained.batches(['b/#'])) batches.push([...batch])
  t.ok(batches.length > 1, 'more than one batch')
  t.strictSame(batches.flat().map((p) => p.topic), topics.slice(1), '[MQTT-3.3.2-5] the expired one left out')
  const streamed = await collect(retained.stream(['b/#']))
  t.strictSame(streamed.map((p) => p.topic), topics.slice(1), 'the stream yields the same')
  t.not(streamed[0], batches[0]?.[0], 'the stream copies (aedes may change its packet)')
  t.equal(batches[0]?.[0], (await first(retained.batches(['b/01']))), 'batches give the stored body itself')
})

async function first (batches: AsyncIterable<readonly StoredPacket[]>): Promise<StoredPacket | undefined> {
  for await (const batch of batches) return batch[0]
  return undefined
}
