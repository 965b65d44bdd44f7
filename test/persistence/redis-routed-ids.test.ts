// The Redis store and routed QoS 2 message ids (lib/cluster/routed-id.ts,
// lib/persistence/routed-ids.ts): a second copy of a message whose id a
// session already got is not queued again, on this node or on the node the
// session moves to; a message with another id is; the id is written with
// the message, in the session's hash, and goes with the session.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisPersistence } from '../../lib/persistence/index.js'
import { sessionKey } from '../../lib/persistence/redis-sessions.js'
import { nameByRoutedId } from '../../lib/cluster/routed-id.js'
import { RoutedIds } from '../../lib/persistence/routed-ids.js'
import type { StoredPacket } from '../../lib/persistence/types.js'
import { collect, publish, redisPrefix, testRedis } from '../helpers/store.js'

async function open (t: Test, prefix: string, brokerId: string): Promise<RedisPersistence> {
  const store = new RedisPersistence({ url: (await testRedis()).url, prefix, fenced: true })
  await store.setup({ id: brokerId })
  t.teardown(() => store.close())
  return store
}

/** a QoS 2 message named by the routed id `id` on the broker id `base` */
function routed (topic: string, payload: string, id: string, base = '$culex-routed:node-a'): StoredPacket {
  const packet = publish(topic, payload, { qos: 2 })
  nameByRoutedId(packet as { qos: number, brokerId?: string }, base, id)
  return packet
}

async function hashFields (prefix: string, clientId: string): Promise<string[]> {
  const redis = new Redis((await testRedis()).url)
  try {
    return await redis.hkeys(sessionKey(prefix, clientId))
  } finally {
    redis.disconnect()
  }
}

const payloads = async (store: RedisPersistence, clientId: string): Promise<string[]> =>
  (await collect(store.outgoingStream({ id: clientId }))).map((p) => String(p.payload))

t.test('[MQTT-4.3.3-10] a second copy of a routed QoS 2 message (the same id) is not queued again for a session; another id is', async (t) => {
  const prefix = redisPrefix()
  const a = await open(t, prefix, 'node-a')
  await a.hydrate('x', 1, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'f/#', qos: 2 }])
  const first = routed('f/1', 'one', 'call1.1')
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], first)
  // the copy a re-read, an adoption or a FORWARD publishes again: another packet object, another broker id base, the same id
  const again = routed('f/1', 'one', 'call1.1', 'node-b')
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], again)
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/2', 'two', 'call1.2'))
  t.strictSame(await payloads(a, 'x'), ['one', 'two'], 'queued once, and the other id queued')
  t.ok(a.routedDuplicate('x', again), 'the skipped copy is marked: aedes does not deliver it to a live connection either')
  t.notOk(a.routedDuplicate('x', first), 'the first copy is not')
  t.equal(await a.outgoingClearMessageId({ id: 'x' }, again), undefined, 'clearing the skipped copy (aedes, after dropping its delivery) leaves the queued message')
  t.strictSame(await payloads(a, 'x'), ['one', 'two'], 'still queued')
  const fields = await hashFields(prefix, 'x')
  t.strictSame(fields.filter((f) => f.startsWith('u:')).sort(), ['u:x:call1.1', 'u:x:call1.2'], 'each id is a field of the session\'s hash')
  t.equal(fields.filter((f) => f.startsWith('q:')).length, 2, 'beside its message')
  // a QoS 2 message without an id (a node before ids) and QoS 1 are as before
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], publish('f/3', 'plain', { qos: 2 }))
  t.equal(a.routedIdCount('x'), 2, 'a message without a routed id records nothing')
})

t.test('[MQTT-4.3.3-10] the ids move with the session: the node that claims it next skips a copy the session got on the node before, also once acknowledged', async (t) => {
  const prefix = redisPrefix()
  const a = await open(t, prefix, 'node-a')
  await a.hydrate('x', 1, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'f/#', qos: 2 }])
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/1', 'one', 'c.1'))
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/2', 'two', 'c.2'))
  // 'one' sent and completed (PUBREC, PUBCOMP): gone from the queue, its id kept
  const [sent] = await collect(a.outgoingStream({ id: 'x' }))
  await a.outgoingUpdate({ id: 'x' }, { ...(sent as StoredPacket), messageId: 1 })
  await a.outgoingUpdate({ id: 'x' }, { cmd: 'pubrel', messageId: 1 } as unknown as StoredPacket)
  await a.outgoingClearMessageId({ id: 'x' }, { cmd: 'pubcomp', messageId: 1 } as unknown as StoredPacket)
  t.strictSame(await payloads(a, 'x'), ['two'], 'one acknowledged, two queued')
  const b = await open(t, prefix, 'node-b')
  await b.hydrate('x', 2, { clean: false })
  t.equal(b.routedIdCount('x'), 2, 'the claiming node loaded both ids')
  await b.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/1', 'one', 'c.1', '$culex-routed:node-b'))
  await b.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/2', 'two', 'c.2', '$culex-routed:node-b'))
  await b.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], routed('f/3', 'three', 'c.3', '$culex-routed:node-b'))
  t.strictSame(await payloads(b, 'x'), ['two', 'three'], 'the acknowledged and the queued copies skipped, the new one queued')
  await b.wipeSession('x')
  t.notOk((await hashFields(prefix, 'x')).some((f) => f.startsWith('u:')), 'the ids go with the session')
})

t.test('[MQTT-4.3.3-10] a routed message offered to one connection twice (live, and from the queue as the connection resumes) goes out once, in flight under the first packet id', async (t) => {
  const a = await open(t, redisPrefix(), 'node-a')
  await a.hydrate('x', 1, { clean: false })
  await a.addSubscriptions({ id: 'x' }, [{ topic: 'f/#', qos: 2 }])
  const message = routed('f/1', 'one', 'c.1')
  await a.outgoingEnqueueCombi([{ clientId: 'x', qos: 2 }], message)
  const conn = { id: 'x' }
  // live: authorizeForward, then aedes' update with the packet id it gave
  const live = { ...message, messageId: undefined }
  t.notOk(a.routedOffered(conn, live), 'the first offer goes')
  await a.outgoingUpdate(conn, { ...live, messageId: 10 })
  // aedes' queue drain: a packet id of its own, its update, then authorizeForward
  const drained = { ...message, messageId: 11 }
  await a.outgoingUpdate(conn, drained)
  t.equal(drained.messageId, 10, 'the drained copy takes the packet id the connection was sent')
  t.ok(a.routedOffered(conn, drained), 'the second offer is dropped')
  t.equal(await a.outgoingClearMessageId(conn, drained), undefined, 'aedes\' clear of the dropped copy clears nothing')
  const [queued] = await collect(a.outgoingStream({ id: 'x' }))
  t.equal(queued?.messageId, 10, 'the message stays in flight under the first packet id')
  const resend: StoredPacket = { ...message, messageId: 10 }
  t.notOk(a.routedOffered({ id: 'x' }, resend), 'on the next connection its resend goes')
})

t.test('routed ids: bounded by age and count, oldest first', async (t) => {
  const writes: string[] = []
  const io = { put: (k: string) => { writes.push('+' + k) }, del: (k: string) => { writes.push('-' + k) } }
  const ids = new RoutedIds(3, 1000)
  for (let i = 1; i <= 4; i++) ids.add('x', `m.${i}`, i, io)
  t.notOk(ids.has('x', 'm.1'), 'the fourth id pushed out the first')
  t.ok(ids.has('x', 'm.2') && ids.has('x', 'm.4'), 'the last three kept')
  t.same(writes.filter((w) => w.startsWith('-')), ['-u:x:m.1'], 'and its field deleted')
  ids.add('x', 'm.5', 1004, io)
  t.notOk(ids.has('x', 'm.2') || ids.has('x', 'm.3'), 'older than 1 s: gone')
  t.ok(ids.has('x', 'm.4') && ids.has('x', 'm.5'))
  t.notOk(ids.restore('y', 'old', 0, 5000), 'an id past its age is not loaded')
})
