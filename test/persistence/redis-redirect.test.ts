// The Redis store, on a node handing a session over: a message queued into
// the session's copy here while another node takes the session (the write
// refused by Redis, or the copy dropped before its write went out) is the
// session's all the same. It goes to `redirectQueued` (the broker forwards
// it to the session's new node) and its enqueue, which the publisher's
// PUBACK waits for, resolves only once it is there; before, the write was
// dropped and the publisher acknowledged: the message was lost.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisPersistence } from '../../lib/persistence/index.js'
import { sessionKey } from '../../lib/persistence/redis-sessions.js'
import type { StoredPacket } from '../../lib/persistence/types.js'
import { collect, publish, redisPrefix, testRedis } from '../helpers/store.js'
import { sleep } from '../helpers/wait.js'

async function open (t: Test, prefix: string, brokerId: string): Promise<RedisPersistence> {
  const store = new RedisPersistence({ url: (await testRedis()).url, prefix, fenced: true })
  await store.setup({ id: brokerId })
  t.teardown(() => store.close())
  return store
}

/** node A holding `x` (QoS 1 to f/#), with a redirect that records what it gets and answers after `delayMs` (or fails) */
async function holder (t: Test, prefix: string, opts: { delayMs?: number, fail?: Error } = {}): Promise<{ a: RedisPersistence, redirected: Array<[string, string]>, done: Array<[string, string]> }> {
  const a = await open(t, prefix, 'node-a')
  await a.hydrate('x', 1, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'f/#', qos: 1 }])
  const redirected: Array<[string, string]> = []
  const done: Array<[string, string]> = []
  a.redirectQueued(async (clientId: string, packets: StoredPacket[]) => {
    const named = packets.map((p): [string, string] => [clientId, String(p.topic)])
    redirected.push(...named)
    await sleep(opts.delayMs ?? 0)
    if (opts.fail !== undefined) throw opts.fail
    done.push(...named)
  })
  return { a, redirected, done }
}

t.test('[MQTT-4.3.2-4] a message queued in a copy whose write Redis refuses (another node adopted the session) is redirected; its enqueue waits for that', async (t) => {
  const prefix = redisPrefix()
  const { a, redirected, done } = await holder(t, prefix, { delayMs: 100 })
  const b = await open(t, prefix, 'node-b')
  await b.hydrate('x', 2, { clean: false })
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/1', 'moving'))
  t.strictSame(done, [['x', 'f/1']], 'resolved once redirected, not refused: its publisher is acknowledged')
  t.equal(a.epochOf('x'), undefined, 'the stale copy is dropped as before')
  const redis = new Redis((await testRedis()).url)
  t.teardown(() => { redis.disconnect() })
  t.notOk((await redis.hkeys(sessionKey(prefix, 'x'))).some((f) => f.startsWith('q:')), 'nothing written over the new claim')
  t.equal(redirected.length, 1)
})

t.test('[MQTT-4.3.2-4] a message queued as the copy is handed over (dropped before its write went out) is redirected, not dropped', async (t) => {
  const { a, done } = await holder(t, redisPrefix(), { delayMs: 50 })
  // matched and queued while held; the batch goes out after the hand-over (as when the publish and the takeover notice share a turn)
  const enqueued = a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/2', 'handed over'))
  a.handOver('x')
  await enqueued
  t.strictSame(done, [['x', 'f/2']], 'redirected before its enqueue resolved')
})

t.test('a redirect that fails fails the enqueue: its publisher gets a refusal, not an acknowledgement', async (t) => {
  const { a } = await holder(t, redisPrefix(), { fail: new Error('Connection is closed.') })
  const enqueued = a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/3', 'nowhere'))
  a.handOver('x')
  await t.rejects(enqueued, { name: 'ClusterWriteRefused' })
})

t.test('anything else a fenced copy writes is still refused to its callers, besides the message redirected', async (t) => {
  const prefix = redisPrefix()
  const { a, done } = await holder(t, prefix)
  const b = await open(t, prefix, 'node-b')
  await b.hydrate('x', 2, { clean: false })
  const queued = a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/4', 'moving'))
  const subscribed = a.addSubscriptions({ id: 'x' }, [{ topic: 'g/#', qos: 1 }])
  await t.rejects(subscribed, { code: 'CULEX_ERR_SESSION_FENCED' })
  await t.rejects(queued, { code: 'CULEX_ERR_SESSION_FENCED' }, 'one batch, one outcome')
  t.strictSame(done, [['x', 'f/4']], 'the message went on to the session all the same')
})

t.test('a refused batch that also carried the old connection\'s delivery state (a packet id in flight, its session record) does not fail the publishers in it', async (t) => {
  const prefix = redisPrefix()
  const { a, done } = await holder(t, prefix)
  // QoS 2: its packet id is written at once, not later (queue-index.ts)
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], publish('f/7', 'sent', { qos: 2 }))
  const [sent] = await collect(a.outgoingStream({ id: 'x' }))
  const b = await open(t, prefix, 'node-b')
  await b.hydrate('x', 2, { clean: false })
  // in one batch: the old connection sends the message (its packet id recorded), and a publisher's message is queued
  const updating = a.outgoingUpdate({ id: 'x' }, { ...sent, messageId: 11 })
  // and its end writes the session record (Session Expiry)
  const ending = a.putSession('x', { expiresAt: Date.now() + 600000, expiryInterval: 600 })
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/9', 'moving'))
  await Promise.all([updating, ending])
  t.strictSame(done, [['x', 'f/9']], 'the publisher\'s message went on to the session, and its publisher is acknowledged')
})

t.test('without a redirect (a store alone) a write for a session given up is dropped, as before', async (t) => {
  const a = await open(t, redisPrefix(), 'node-a')
  await a.hydrate('y', 1, { clean: false })
  await a.addSubscriptions({ id: 'y' }, [{ topic: 'f/#', qos: 1 }])
  const enqueued = a.outgoingEnqueueCombi([{ clientId: 'y', qos: 1 }], publish('f/5', 'owed to nobody'))
  a.handOver('y')
  await enqueued
  t.equal(a.stats().queued, 0)
})

t.test('a copy dropped because Redis refused its write is told before it goes, its subscriptions still readable (the session\'s filters, for the forwarding)', async (t) => {
  const prefix = redisPrefix()
  const { a } = await holder(t, prefix)
  const told: Array<[string, string[]]> = []
  a.watchRefusedCopies((clientId) => {
    // read as SessionMoves.leaving reads them: synchronously at the call
    void a.subscriptionsByClient({ id: clientId }).then((subs) => { told.push([clientId, subs.map((s) => s.topic)]) })
  })
  const b = await open(t, prefix, 'node-b')
  await b.hydrate('x', 2, { clean: false })
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 1 }], publish('f/6', 'moving'))
  t.strictSame(told, [['x', ['f/#']]])
  t.equal(a.holdsSubscriptions(), false, 'then the copy went')
})
