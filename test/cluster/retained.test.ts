/**
 * Retained messages cluster-wide against a real redis-server: a change
 * written by one node reaches another's cache by notice, in Redis' order;
 * the key expires at the message's deadline; a node that starts later is
 * filled from Redis; a reload makes a cache what Redis holds; '$' topics stay
 * on their node.
 */
import t, { type Test } from 'tap'
import { openRedis } from '../../lib/cluster/redis.js'
import { ClusterRetained, expiryOf, retainedKey } from '../../lib/cluster/retained.js'
import { silentLogger } from '../../lib/logging.js'
import type { StoredPacket } from '../../lib/persistence/types.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

interface Node { retained: ClusterRetained, cache: Map<string, StoredPacket> }

async function node (t: Test, url: string): Promise<Node> {
  const redis = await openRedis(url)
  const cache = new Map<string, StoredPacket>()
  const retained = new ClusterRetained(redis, silentLogger())
  await retained.start(async (packet) => {
    const topic = packet.topic as string
    const p = packet.payload as Buffer
    if (p.byteLength === 0) cache.delete(topic)
    else cache.set(topic, packet)
  })
  t.teardown(async () => { retained.stop(); await redis.close() })
  return { retained, cache }
}

const msg = (topic: string, payload: string, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, ...extra })

const payloadOf = (n: Node, topic: string): string | undefined => (n.cache.get(topic)?.payload as Buffer | undefined)?.toString()

t.test('set, replace and delete on one node reach the other\'s cache by notice, with MQTT 5 properties', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url)
  const b = await node(t, redis.url)
  await a.retained.store(msg('s/1', 'one', { properties: { contentType: 'text/plain', userProperties: { k: 'v' } } }))
  await waitFor(() => payloadOf(b, 's/1') === 'one', { what: 'b has s/1' })
  t.match(b.cache.get('s/1'), { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } }, 'QoS, RETAIN and properties kept')
  t.equal(payloadOf(a, 's/1'), 'one', 'the writer gets its own notice too')
  await b.retained.store(msg('s/1', 'two'))
  await waitFor(() => payloadOf(a, 's/1') === 'two', { what: 'a has the replacement' })
  await a.retained.store(msg('s/1', ''))
  await waitFor(() => !b.cache.has('s/1') && !a.cache.has('s/1'), { what: '[MQTT-3.3.1-6] the empty payload deletes it everywhere' })
  t.equal(redisCli(redis, 'EXISTS', retainedKey('s/1')), '(integer) 0', 'and in Redis')
  await a.retained.store(msg('$SYS/x', 'local'))
  t.equal(redisCli(redis, 'EXISTS', retainedKey('$SYS/x')), '(integer) 0', '$ topics are not written to Redis')
})

t.test('concurrent replacements of one topic leave every cache where Redis is', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url)
  const b = await node(t, redis.url)
  const writes: Array<Promise<void>> = []
  for (let i = 0; i < 50; i++) writes.push((i % 2 === 0 ? a : b).retained.store(msg('race', String(i))))
  await Promise.all(writes)
  // the encoded message ends with its JSON header's '}' and then the payload
  const raw = redisCli(redis, '--raw', 'GET', retainedKey('race'))
  const inRedis = raw.slice(raw.lastIndexOf('}') + 1)
  t.match(inRedis, /^\d+$/, `Redis holds one of the writes (${inRedis})`)
  await waitFor(() => payloadOf(a, 'race') === inRedis && payloadOf(b, 'race') === inRedis, { what: () => `both caches on ${inRedis} (a ${payloadOf(a, 'race')}, b ${payloadOf(b, 'race')})` })
  t.pass('both caches end on the value Redis holds')
})

t.test('a node that starts later is filled from Redis; the key expires at the message\'s deadline', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url)
  await a.retained.store(msg('keep/a', 'A'))
  await a.retained.store(msg('keep/b/c', 'C', { properties: { messageExpiryInterval: 60 } }))
  const deadline = Date.now() + 60000
  const pexpire = Number(/\d+/.exec(redisCli(redis, 'PTTL', retainedKey('keep/b/c')))?.[0])
  t.ok(pexpire > 55000 && pexpire <= 60000, `Redis expires the key with the message (PTTL ${pexpire})`)
  t.equal(redisCli(redis, 'PTTL', retainedKey('keep/a')), '(integer) -1', 'no expiry interval: no TTL')
  const late = await node(t, redis.url)
  t.equal(payloadOf(late, 'keep/a'), 'A', 'filled at start')
  const c = late.cache.get('keep/b/c')
  t.ok(c?.messageExpiry !== undefined && Math.abs((c.messageExpiry) - deadline) < 2000, 'with the absolute deadline, so its expiry counts from when it was published')
  t.equal(late.retained.size, 2)
})

t.test('a reload makes the cache what Redis holds (changes made without a notice)', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url)
  await a.retained.store(msg('gone', 'x'))
  await a.retained.store(msg('stays', 'y'))
  await waitFor(() => a.cache.size === 2, { what: 'both cached' })
  redisCli(redis, 'DEL', retainedKey('gone'))
  await a.retained.reload()
  t.same([...a.cache.keys()], ['stays'], 'a topic Redis lost is removed')
  t.equal(a.retained.size, 1)
})

t.test('expiryOf: the stored deadline, else the interval from now, else none', async (t) => {
  t.equal(expiryOf(msg('t', 'x', { messageExpiry: 5 })), 5)
  t.equal(expiryOf(msg('t', 'x', { properties: { messageExpiryInterval: 2 } }), 1000), 3000)
  t.equal(expiryOf(msg('t', 'x')), undefined)
})
