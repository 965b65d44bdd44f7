// The session queues alone (with their index and drain): what is queued for
// whom, limits, packet ids, PUBREL state, acknowledgement, the drain.
import t from 'tap'
import { BodyCache } from '../../../lib/persistence/parts/body-cache.js'
import { Drops } from '../../../lib/persistence/parts/drops.js'
import { QueueIndex } from '../../../lib/persistence/parts/queue-index.js'
import { MemorySessionQueues } from '../../../lib/persistence/parts/session-queues.js'
import type { OverflowPolicy, StoredPacket } from '../../../lib/persistence/types.js'
import { collect } from '../../helpers/store.js'
import { disk } from '../../helpers/part-disk.js'

let counter = 0
const publish = (topic: string, qos: number, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', brokerId: 'b', brokerCounter: ++counter, topic, payload: Buffer.from('m' + counter), qos, retain: false, ...extra })

function setup (opts: { durable?: boolean, maxQueuedMessages?: number, overflow?: OverflowPolicy } = {}) {
  const d = disk(opts.durable ?? true)
  const drops = new Drops(undefined, opts.overflow ?? 'drop-oldest')
  const index = new QueueIndex(d.io, new BodyCache(Infinity, d.io), drops, {
    maxQueuedMessages: opts.maxQueuedMessages ?? 1000, maxQueuedBytes: 1 << 20, overflow: opts.overflow ?? 'drop-oldest'
  })
  return { d, drops, queues: new MemorySessionQueues(index) }
}

t.test('[MQTT-3.3.4-2] [MQTT-3.8.4-8] one entry per session, at the highest granted QoS capped by the PUBLISH', async (t) => {
  const { d, queues } = setup()
  const packet = publish('q/1', 1)
  await queues.enqueue([{ clientId: 'a', qos: 0 }, { clientId: 'a', qos: 2 }, { clientId: 'b', qos: 0 }], packet)
  await queues.enqueue([{ clientId: 'a', qos: 1 }], packet)
  t.equal(queues.queued, 2, 'the same message enqueued again for a session is one message')
  const [forA] = await collect(queues.stream({ id: 'a' }))
  const [forB] = await collect(queues.stream({ id: 'b' }))
  t.equal(forA?.qos, 1)
  t.equal(forB?.qos, 0)
  t.equal(d.keys().filter((k) => k.startsWith('q:')).length, 2)
})

t.test('[MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13] a retained message keeps RETAIN 1 for a session only if one of its matching subscriptions has Retain As Published', async (t) => {
  const { d, queues } = setup()
  await queues.enqueue([
    { clientId: 'plain', topic: 'r/#', qos: 1 },
    { clientId: 'rap0', topic: 'r/#', qos: 1, rap: false },
    { clientId: 'both', topic: 'r/+', qos: 2, rap: false },
    { clientId: 'both', topic: 'r/#', qos: 1, rap: true },
    { clientId: 'rap1', topic: 'r/#', qos: 1, rap: true },
    { clientId: 'itself', qos: 1 }
  ], publish('r/x', 2, { retain: true }))
  const queued = async (id: string): Promise<string> => {
    const [p] = await collect(queues.stream({ id }))
    return `qos${p?.qos ?? '-'} r${p?.retain === true ? 1 : 0}`
  }
  t.equal(await queued('plain'), 'qos1 r0', 'no Retain As Published (MQTT 3.1.1)')
  t.equal(await queued('rap0'), 'qos1 r0', 'Retain As Published 0')
  t.equal(await queued('both'), 'qos2 r1', 'overlapping: the highest QoS, and RETAIN 1 from the one with Retain As Published')
  t.equal(await queued('rap1'), 'qos1 r1', 'Retain As Published 1')
  t.equal(await queued('itself'), 'qos1 r1', 'a message for the client itself, as it comes')
  t.equal(d.keys().filter((k) => k.startsWith('q:')).length, 5, 'each on disk')
  await queues.enqueue([{ clientId: 'plain', topic: 'n/#', qos: 1, rap: true }], publish('n/x', 1))
  const [kept] = (await collect(queues.stream({ id: 'plain' }))).slice(1)
  t.equal(kept?.retain, false, 'a message published without RETAIN stays so')
})

t.test('[MQTT-3.3.2-5] an expired message is never queued', async (t) => {
  const { queues, drops } = setup()
  await queues.enqueue([{ clientId: 'a', qos: 1 }], publish('x', 1, { messageExpiry: Date.now() - 1 }))
  t.equal(queues.queued, 0)
  t.equal(drops.counts().expired, 1)
})

t.test('a full queue drops its oldest QoS 0 message first (drop-oldest) or the new one (refuse)', async (t) => {
  const oldest = setup({ maxQueuedMessages: 2 })
  await oldest.queues.enqueue([{ clientId: 'a', qos: 2 }], publish('first', 1))
  await oldest.queues.enqueue([{ clientId: 'a', qos: 2 }], publish('qos0', 0))
  await oldest.queues.enqueue([{ clientId: 'a', qos: 2 }], publish('third', 1))
  t.strictSame((await collect(oldest.queues.stream({ id: 'a' }))).map((p) => p.topic), ['first', 'third'])
  t.equal(oldest.drops.counts().queueFull, 1)
  const refuse = setup({ maxQueuedMessages: 1, overflow: 'refuse' })
  await refuse.queues.enqueue([{ clientId: 'a', qos: 1 }], publish('kept', 1))
  await refuse.queues.enqueue([{ clientId: 'a', qos: 1 }], publish('refused', 1))
  t.strictSame((await collect(refuse.queues.stream({ id: 'a' }))).map((p) => p.topic), ['kept'])
})

t.test('[MQTT-4.4.0-1] packet ids: QoS 2 on disk before update resolves, QoS 1 written later; a restream is marked in flight once', async (t) => {
  const { d, queues } = setup()
  const q2 = publish('two', 2)
  const q1 = publish('one', 1)
  await queues.enqueue([{ clientId: 'c', qos: 2 }], q2)
  await queues.enqueue([{ clientId: 'c', qos: 2 }], q1)
  await queues.update('c', { ...q2, messageId: 5 })
  await queues.update('c', { ...q1, messageId: 6 })
  const states = d.keys().filter((k) => k.startsWith('qi:'))
  t.equal(states.length, 1, 'only the QoS 2 id is on disk')
  t.strictSame(d.record(states[0] as string), { m: 5 })
  t.equal(queues.inflight, 2)
  queues.flush()
  await d.io.backend?.writer.flush()
  t.equal(d.keys().filter((k) => k.startsWith('qi:')).length, 2, 'flush writes the QoS 1 id')
  const streamed = await collect(queues.stream({ id: 'c' }))
  t.strictSame(streamed.map((p) => p.messageId), [5, 6])
  t.ok(queues.wasInFlight('c', 'b', q1.brokerCounter), 're-delivery [MQTT-3.3.1-1]')
  t.notOk(queues.wasInFlight('c', 'b', q1.brokerCounter), 'answers once')
})

t.test('PUBREL takes over a QoS 2 entry; PUBCOMP clears it; PUBACK returns the message', async (t) => {
  const { d, queues } = setup()
  const q2 = publish('two', 2)
  await queues.enqueue([{ clientId: 'c', qos: 2 }], q2)
  await queues.update('c', { ...q2, messageId: 9 })
  await queues.update('c', { cmd: 'pubrel', messageId: 9 })
  t.equal(queues.pubrels, 1)
  t.equal(queues.queued, 0, 'PUBREL state is not a message')
  t.strictSame(d.keys().filter((k) => k.startsWith('q:')), [], 'the body is gone')
  t.strictSame((await collect(queues.stream({ id: 'c' }))).map((p) => p.cmd), ['pubrel'])
  const done = await queues.clear('c', { cmd: 'pubcomp', messageId: 9 })
  t.equal(done?.cmd, 'pubrel')
  t.equal(queues.pubrels, 0)
  const q1 = publish('one', 1)
  await queues.enqueue([{ clientId: 'c', qos: 1 }], q1)
  await queues.update('c', { ...q1, messageId: 3 })
  const acked = await queues.clear('c', { cmd: 'puback', messageId: 3 })
  t.equal(acked?.topic, 'one')
  t.equal(acked?.messageId, 3)
  await d.io.backend?.writer.flush()
  t.strictSame(d.keys(), [], 'every key of the session is gone')
  await t.rejects(queues.update('c', { cmd: 'pubcomp', messageId: 77 }), { code: 'CULEX_ERR_NO_SUCH_PACKET' })
})

t.test('the sink takes the QoS 1 head while the window has room; the stream gives the rest in order', async (t) => {
  const { queues } = setup({ durable: false })
  for (const topic of ['s1', 's2', 's3']) await queues.enqueue([{ clientId: 'k', qos: 1 }], publish(topic, 1))
  const sent: StoredPacket[] = []
  let nextId = 100
  queues.setSink(() => ({ room: () => 2 - sent.length, nextPacketId: () => nextId++, send: (p) => { sent.push(p); return true } }))
  const rest = await collect(queues.stream({ id: 'k' }))
  t.strictSame(sent.map((p) => [p.topic, p.messageId]), [['s1', 100], ['s2', 101]])
  t.strictSame(rest.map((p) => p.topic), ['s3'])
  t.equal(queues.inflight, 2, 'the packet ids the sink used are recorded')
})

t.test('wipe, restore in seq order, and the broker counter to continue after', async (t) => {
  const { d, queues } = setup()
  queues.restoreQueued('r', 9, publish('nine', 1, { brokerCounter: 41 }), { m: 4 })
  queues.restoreQueued('r', 3, publish('three', 1, { brokerCounter: 40 }), undefined)
  queues.restorePubrel('r', 5, { cmd: 'pubrel', messageId: 8 })
  t.strictSame((await collect(queues.stream({ id: 'r' }))).map((p) => p.topic ?? p.cmd), ['three', 'pubrel', 'nine'])
  t.equal(queues.maxBrokerCounter('b'), 41)
  t.equal(queues.maxBrokerCounter('other'), 0)
  queues.noteSeq(20)
  await queues.enqueue([{ clientId: 'r', qos: 1 }], publish('next', 1))
  t.ok(d.keys().includes('q:r:' + (21).toString(16).padStart(16, '0')), 'new keys continue after the highest seq')
  await queues.wipe('r')
  t.equal(queues.queued, 0)
  t.equal(queues.pubrels, 0)
  t.equal(queues.wipe('r'), undefined)
})

t.test('queuedOf: the messages queued for one session, in flight included, PUBREL state not', async (t) => {
  const { queues } = setup()
  t.equal(queues.queuedOf('a'), 0, 'no queue')
  const first = publish('q/1', 2)
  await queues.enqueue([{ clientId: 'a', qos: 2 }, { clientId: 'b', qos: 1 }], first)
  await queues.enqueue([{ clientId: 'a', qos: 1 }], publish('q/2', 1))
  t.equal(queues.queuedOf('a'), 2)
  t.equal(queues.queuedOf('b'), 1)
  await queues.update('a', { ...first, messageId: 7 })
  t.equal(queues.queuedOf('a'), 2, 'a message in flight is still queued')
  await queues.update('a', { cmd: 'pubrel', messageId: 7 })
  t.equal(queues.queuedOf('a'), 1, 'its PUBREL phase is not a message')
  await queues.wipe('b')
  t.equal(queues.queuedOf('b'), 0)
})
