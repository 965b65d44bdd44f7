/**
 * QoS 0 messages between nodes, coalesced (lib/cluster/channel-batch.ts),
 * against a real redis-server: the messages of one turn to a node are one
 * PUBLISH on its channel, received there one by one in the order routed;
 * a turn larger than the byte bound is several PUBLISHes, still in order;
 * bytes that do not end with a whole packet are refused.
 */
import t, { type Test } from 'tap'
import { MAX_CHANNEL_BYTES, splitPackets } from '../../lib/cluster/channel-batch.js'
import { openRedis } from '../../lib/cluster/redis.js'
import { Routes, type RoutedMessage } from '../../lib/cluster/routes.js'
import { encodeRouted } from '../../lib/cluster/wire.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

async function routes (t: Test, url: string, nodeId: string, live: () => string[]): Promise<{ routes: Routes, got: RoutedMessage[] }> {
  const redis = await openRedis(url)
  const got: RoutedMessage[] = []
  const r = new Routes(redis, nodeId, silentLogger(), (m) => { got.push(m) })
  await r.start(live)
  t.teardown(async () => { r.stop(); await redis.close() })
  return { routes: r, got }
}

const publishes = (stats: string): number => Number(/cmdstat_publish:calls=(\d+),/.exec(stats)?.[1] ?? 0)

t.test('the QoS 0 messages of one turn to a node are one PUBLISH, received in order', async (t) => {
  const redis = await startRedis(t)
  const live = (): string[] => ['a', 'b', 'c']
  const a = await routes(t, redis.url, 'a', live)
  const b = await routes(t, redis.url, 'b', live)
  const c = await routes(t, redis.url, 'c', live)
  b.routes.subscribed('f/#')
  c.routes.subscribed('f/odd/#')
  await waitFor(() => a.routes.route({ topic: 'f/odd/probe', payload: Buffer.from('probe') }) === 2, { what: 'a sees both filters' })
  await waitFor(() => b.got.length === 1 && c.got.length === 1, { what: 'the probe arrives' })
  const before = publishes(redisCli(redis, 'INFO', 'commandstats'))
  for (let n = 0; n < 40; n++) a.routes.route({ topic: n % 2 === 1 ? `f/odd/${n}` : `f/${n}`, payload: Buffer.from(String(n)), ...(n === 3 ? { properties: { contentType: 'text/plain' } } : {}) })
  await waitFor(() => b.got.length === 41 && c.got.length === 21, { what: 'every message arrives' })
  t.equal(publishes(redisCli(redis, 'INFO', 'commandstats')) - before, 2, 'one PUBLISH per node for the turn')
  t.same(b.got.slice(1).map((m) => m.payload.toString()), Array.from({ length: 40 }, (_, n) => String(n)), 'b: in the order routed')
  t.same(c.got.slice(1).map((m) => m.topic), Array.from({ length: 20 }, (_, i) => `f/odd/${2 * i + 1}`), 'c: its own, in order')
  t.same(c.got[2]?.properties, { contentType: 'text/plain' }, 'a message with properties among them keeps them')
})

t.test('a turn larger than the byte bound is several PUBLISHes, in order', async (t) => {
  const redis = await startRedis(t)
  const live = (): string[] => ['a', 'b']
  const a = await routes(t, redis.url, 'a', live)
  const b = await routes(t, redis.url, 'b', live)
  b.routes.subscribed('big/#')
  await waitFor(() => a.routes.route({ topic: 'big/probe', payload: Buffer.from('p') }) === 1, { what: 'a sees b\'s filter' })
  await waitFor(() => b.got.length === 1, { what: 'the probe arrives' })
  const sent = a.routes.channel.publishes
  const payload = Buffer.alloc(Math.floor(MAX_CHANNEL_BYTES / 4), 1)
  for (let n = 0; n < 7; n++) a.routes.route({ topic: `big/${n}`, payload })
  await waitFor(() => b.got.length === 8, { what: 'every large message arrives' })
  t.equal(a.routes.channel.publishes - sent, 3, 'seven messages just over a quarter of the bound each: three to a PUBLISH, three PUBLISHes')
  t.same(b.got.slice(1).map((m) => m.topic), Array.from({ length: 7 }, (_, n) => `big/${n}`), 'in order')
})

t.test('packets are split where each ends; bytes that do not end with a whole packet are refused', async (t) => {
  const one = encodeRouted({ cmd: 'publish', topic: 'a', payload: Buffer.from('1'), qos: 0, retain: false, dup: false })
  const two = encodeRouted({ cmd: 'publish', topic: 'b/c', payload: Buffer.alloc(300, 2), qos: 0, retain: false, dup: false })
  const split = splitPackets(Buffer.concat([one, two, one]))
  t.same(split, [one, two, one])
  t.ok(splitPackets(Buffer.concat([one, two.subarray(0, 10)])) instanceof Error, 'a truncated second packet')
  t.ok(splitPackets(Buffer.from([0x30])) instanceof Error, 'a header without its length')
  t.same(splitPackets(Buffer.alloc(0)), [], 'nothing: no packet')
})
