// The Redis store: a session written by one store instance (one node) is
// loaded whole by another when it claims the client id (hydrate); fencing by
// the claim's epoch; nothing read at open. The store semantics shared with
// the other stores are in store.test.ts and the abstract suite (both run on
// 'redis' too).
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisPersistence } from '../../lib/persistence/index.js'
import { sessionKey } from '../../lib/persistence/redis-sessions.js'
import { ENDED_FIELD, ownerKey } from '../../lib/cluster/keys.js'
import { collect, expectedProperties, publish, redisPrefix, testRedis, v5Properties } from '../helpers/store.js'

async function open (t: Test, prefix: string, fenced = false, brokerId = 'broker-1'): Promise<RedisPersistence> {
  const store = new RedisPersistence({ url: (await testRedis()).url, prefix, fenced })
  await store.setup({ id: brokerId })
  t.teardown(() => store.close())
  return store
}

async function client (t: Test): Promise<Redis> {
  const redis = new Redis((await testRedis()).url)
  t.teardown(() => { redis.disconnect() })
  return redis
}

t.test('a session written on one node is loaded whole by the node that claims it next', async (t) => {
  const prefix = redisPrefix()
  const first = await open(t, prefix, true, 'node-a')
  await first.hydrate('sub', 1, { clean: false })
  await first.hydrate('pub', 1, { clean: false })
  const expiry = Date.now() + 100_000
  await first.addSubscriptions({ id: 'sub' }, [
    { topic: 'a/#', qos: 1, rh: 1, rap: true, nl: false },
    { topic: 'a/+/x', qos: 2, subscriptionIdentifier: 9 },
    { topic: 'zero', qos: 0 }
  ])
  const m1 = publish('a/1', 'one', { properties: v5Properties(), messageExpiry: expiry })
  const m2 = publish('a/2', 'two', { qos: 2 })
  const m3 = publish('a/3', 'three', { qos: 2 })
  for (const m of [m1, m2, m3]) await first.outgoingEnqueueCombi([{ clientId: 'sub', qos: 2 }], m)
  await first.outgoingUpdate({ id: 'sub' }, { ...m2, messageId: 42 })
  await first.outgoingUpdate({ id: 'sub' }, { ...m3, messageId: 43 })
  await first.outgoingUpdate({ id: 'sub' }, { cmd: 'pubrel', messageId: 43 })
  await first.putWill({ id: 'sub' }, { cmd: 'publish', topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: true, properties: { willDelayInterval: 30, contentType: 'text/plain' } })
  await first.incomingStorePacket({ id: 'pub' }, publish('in', 'q2', { qos: 2, messageId: 7, properties: v5Properties() }))
  await first.putSession('sub', { expiresAt: 123, willDelayUntil: 100, expiryInterval: 300, owner: 'alice' })

  const second = await open(t, prefix, true, 'node-c')
  t.equal(second.stats().sessions, 0, 'nothing is loaded at open')
  t.strictSame(await second.sessionRecord('sub'), { expiresAt: 123, willDelayUntil: 100, expiryInterval: 300, owner: 'alice' }, 'the record of a session held elsewhere is read from Redis')
  await second.hydrate('sub', 2, { clean: false })
  await second.hydrate('pub', 2, { clean: false })
  t.strictSame((await second.subscriptionsByClient({ id: 'sub' })).sort((a, b) => a.topic.localeCompare(b.topic)), [
    { topic: 'a/#', qos: 1, rh: 1, rap: true, nl: false },
    { topic: 'a/+/x', qos: 2, subscriptionIdentifier: 9 },
    { topic: 'zero', qos: 0 }
  ], 'subscriptions with their options')
  t.equal((await second.subscriptionsByTopic('a/b/x')).length, 2, 'its QoS 1/2 subscriptions are matched on the new node')
  const queue = await collect(second.outgoingStream({ id: 'sub' }))
  t.strictSame(queue.map((p) => [p.cmd, p.topic, p.messageId]), [
    ['publish', 'a/1', undefined],
    ['publish', 'a/2', 42],
    ['pubrel', undefined, 43]
  ], 'queue order, packet ids and PUBREL state')
  t.strictSame(queue[0]?.properties, expectedProperties(), 'MQTT 5 properties of a queued message')
  t.equal(queue[0]?.messageExpiry, expiry)
  t.strictSame((await second.getWill({ id: 'sub' }))?.properties, { willDelayInterval: 30, contentType: 'text/plain' }, 'the will')
  t.strictSame((await second.incomingGetPacket({ id: 'pub' }, { messageId: 7 })).properties, expectedProperties(), 'inbound QoS 2 state')
  t.strictSame(await second.getSession('sub'), { expiresAt: 123, willDelayUntil: 100, expiryInterval: 300, owner: 'alice' }, 'deadlines and owner')

  // new messages queue after the loaded ones, whatever the first node's counter was
  await second.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('a/4', 'four'))
  t.strictSame((await collect(second.outgoingStream({ id: 'sub' }))).map((p) => p.topic ?? p.cmd), ['a/1', 'a/2', 'pubrel', 'a/4'])

  const third = await open(t, prefix, true, 'node-b')
  await third.hydrate('sub', 3, { clean: false })
  t.strictSame((await collect(third.outgoingStream({ id: 'sub' }))).map((p) => p.topic ?? p.cmd), ['a/1', 'a/2', 'pubrel', 'a/4'], 'what the second node wrote is there for the third')
})

t.test('[fencing] a write naming a stale epoch is refused and the stale copy is dropped', async (t) => {
  const prefix = redisPrefix()
  const redis = await client(t)
  const a = await open(t, prefix, true, 'node-a')
  const b = await open(t, prefix, true, 'node-b')
  await a.hydrate('x', 1, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'f/#', qos: 1 }])
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/1', 'kept'))

  // node B claims x (epoch 2) while A, paused, still believes it holds epoch 1
  await b.hydrate('x', 2, { clean: false })
  t.equal(a.epochOf('x'), 1, 'A still names epoch 1')
  await t.rejects(a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/2', 'stale')), { code: 'CULEX_ERR_SESSION_FENCED' },
    'the stale write is refused: its publisher is not acknowledged')
  t.equal(a.epochOf('x'), undefined, 'A dropped its stale copy')
  // once dropped, a write for x names no epoch: a leftover of the stale connection (closed by the takeover), kept nowhere
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'stale/#', qos: 1 }])
  t.equal(a.stats().queued, 0)
  t.equal(a.holdsSubscriptions(), false)
  await a.putWill({ id: 'x' }, { cmd: 'publish', topic: 'w', payload: Buffer.from('w'), qos: 0, retain: false })
  t.equal(a.stats().wills, 0, 'a leftover write for a session this node gave up is dropped, in memory too')

  const fields = (await redis.hkeys(sessionKey(prefix, 'x'))).sort()
  t.notOk(fields.some((f) => f.includes('stale') || f.startsWith('w:')), 'nothing of the stale writes reached Redis')
  t.equal(await redis.hget(sessionKey(prefix, 'x'), 'epoch'), '2')
  t.strictSame((await collect(b.outgoingStream({ id: 'x' }))).map((p) => p.topic), ['f/1'], 'B has the session as A left it at the claim')

  // a claim older than the one that adopted the session is refused
  await t.rejects(a.hydrate('x', 1, { clean: false }), { code: 'CULEX_ERR_SESSION_FENCED' })
  // A claims it back later (epoch 3): loaded again, writable
  await a.hydrate('x', 3, { clean: false })
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/3', 'fresh'))
  t.strictSame((await collect(a.outgoingStream({ id: 'x' }))).map((p) => p.topic), ['f/1', 'f/3'])
  await t.rejects(b.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/4', 'stale')), { code: 'CULEX_ERR_SESSION_FENCED' }, 'now B is the stale one')
})

t.test('a Clean Start claim wipes the session in Redis; a claim right after this node\'s own keeps its copy', async (t) => {
  const prefix = redisPrefix()
  const redis = await client(t)
  const a = await open(t, prefix, true, 'node-a')
  const b = await open(t, prefix, true, 'node-b')
  await a.hydrate('c', 1, { clean: false })
  await a.addSubscriptions({ id: 'c' }, [{ topic: 'c/#', qos: 1 }])
  await a.outgoingEnqueueCombi([{ clientId: 'c', qos: 1 }], publish('c/1', 'old'))
  await a.hydrate('c', 2, { clean: false })
  t.equal(a.stats().queued, 1, 'a local takeover keeps the copy in memory')
  await b.hydrate('c', 3, { clean: true })
  t.strictSame(await redis.hkeys(sessionKey(prefix, 'c')), ['epoch'], 'the old session is gone from Redis')
  t.equal(b.stats().queued, 0)
  a.handOver('c')
  t.equal(a.epochOf('c'), undefined, 'handOver drops the epoch')
  t.equal(a.stats().queued, 0, 'and the copy')
})

t.test('opening the store reads nothing from Redis, however many sessions it holds', async (t) => {
  const prefix = redisPrefix()
  const redis = await client(t)
  const pipeline = redis.pipeline()
  for (let i = 0; i < 20_000; i++) pipeline.hset(sessionKey(prefix, `seeded-${i}`), 'epoch', '1', 'x:' + `seeded-${i}`, '{"expiresAt":null}')
  await pipeline.exec()
  const commands = async (): Promise<number> => Number((await redis.info('stats')).match(/total_commands_processed:(\d+)/)?.[1])
  const before = await commands()
  const store = await open(t, prefix, true)
  const after = await commands()
  // the store's connection: HELLO/CLIENT SETINFO at most, then nothing; the INFO calls themselves count 1
  t.ok(after - before <= 4, `commands at open: ${after - before}`)
  t.equal(store.stats().sessions, 0)
})

t.test('a session that expired cluster-wide at an epoch drops the copy held at it, not one claimed here since', async (t) => {
  const prefix = redisPrefix()
  const a = await open(t, prefix, true, 'node-a')
  await a.hydrate('x', 3, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'e/#', qos: 1 }])
  a.handOver('x', 2)
  t.equal(a.epochOf('x'), 3, 'held at a later epoch than the one that expired: kept')
  a.handOver('x', 3)
  t.equal(a.epochOf('x'), undefined, 'held at the epoch that expired: dropped')
  t.equal(a.holdsSubscriptions(), false)
})

t.test('on a Redis Cluster, a claim that comes between the two steps of a session\'s expiry (the registry\'s `ended` raised, the hash not yet deleted) loads nothing of it; a session adopted after that expiry loads whole', async (t) => {
  const prefix = redisPrefix()
  const redis = await client(t)
  const id = `expiring-${process.pid}-${Date.now()}`
  t.teardown(async () => { await redis.del(ownerKey(id)) })
  // as on a Redis Cluster, where the expiry deletes the hash in a step of its own
  const open2 = async (brokerId: string): Promise<RedisPersistence> => {
    const store = new RedisPersistence({ url: (await testRedis()).url, prefix, fenced: true, expiryInTwoSteps: true })
    await store.setup({ id: brokerId })
    t.teardown(() => store.close())
    return store
  }
  const a = await open2('node-a')
  await a.hydrate(id, 3, { clean: false })
  await a.addSubscriptions({ id }, [{ topic: 'e/#', qos: 1 }])
  await a.outgoingEnqueueCombi([{ clientId: id, qos: 1 }], publish('e/1', 'expired'))
  // EXPIRE's first step (lib/cluster/session-expiry.ts) raised the epoch to 4 and recorded it; WIPE has not run
  await redis.hset(ownerKey(id), 'epoch', '4', ENDED_FIELD, '4')

  const b = await open2('node-b')
  await b.hydrate(id, 5, { clean: false })
  t.strictSame(await b.subscriptionsByClient({ id }), [], 'no subscription of the expired session [MQTT-3.1.2-23]')
  t.equal(b.stats().queued, 0, 'no message of it')
  t.strictSame(await redis.hkeys(sessionKey(prefix, id)), ['epoch'], 'its hash deleted by the claim')

  await b.addSubscriptions({ id }, [{ topic: 'new/#', qos: 1 }])
  const c = await open2('node-c')
  await c.hydrate(id, 6, { clean: false })
  t.strictSame((await c.subscriptionsByClient({ id })).map((s) => s.topic), ['new/#'], 'the session made after the expiry is loaded by the next claim')
})
