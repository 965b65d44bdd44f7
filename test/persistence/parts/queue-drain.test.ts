// The drain of a resumed session's queue alone: the sink, then the stream.
import t from 'tap'
import { NothingQueued } from '../../../lib/aedes-internals.js'
import { encodePacket } from '../../../lib/persistence/codec.js'
import { BodyCache } from '../../../lib/persistence/parts/body-cache.js'
import { Drops } from '../../../lib/persistence/parts/drops.js'
import { QueueDrain } from '../../../lib/persistence/parts/queue-drain.js'
import { QueueIndex, entryFor } from '../../../lib/persistence/parts/queue-index.js'
import type { QueueSink, StoredPacket } from '../../../lib/persistence/types.js'
import { collect } from '../../helpers/store.js'
import { disk } from '../../helpers/part-disk.js'

let counter = 0
const body = (topic: string, qos: number, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', brokerId: 'b', brokerCounter: ++counter, topic, payload: Buffer.from(topic), qos, retain: false, ...extra })

function drainOf (bodies: Array<[StoredPacket, number | undefined]>, durable = false) {
  const d = disk(durable)
  const drops = new Drops(undefined, 'drop-oldest')
  const index = new QueueIndex(d.io, new BodyCache(Infinity, d.io), drops, { maxQueuedMessages: 100, maxQueuedBytes: 1 << 20, overflow: 'drop-oldest' })
  const q = index.queueOf('c')
  bodies.forEach(([b, id], i) => index.append(q, entryFor(i + 1, b, id, false)))
  return { d, drops, index, drain: new QueueDrain(index) }
}

function sink (room: number, results: boolean[] = []): QueueSink & { sent: StoredPacket[] } {
  const sent: StoredPacket[] = []
  let id = 50
  return { sent, room: () => room - sent.length, nextPacketId: () => id++, send: (p) => { sent.push(p); return results[sent.length - 1] ?? true } }
}

t.test('an empty queue ends at once, and the sink is still asked for (one per stream)', async (t) => {
  const { drain } = drainOf([])
  let asked = 0
  drain.sink = () => { asked++; return undefined }
  t.strictSame(await collect(drain.stream({ id: 'c' })), [])
  t.equal(asked, 1)
})

t.test('an empty queue, or one the sink took whole, is a NothingQueued stream, whose pipeline in aedes is skipped', async (t) => {
  t.ok(drainOf([]).drain.stream({ id: 'c' }) instanceof NothingQueued, 'empty')
  const { drain } = drainOf([[body('a', 1), undefined]])
  drain.sink = () => sink(10)
  t.ok(drain.stream({ id: 'c' }) instanceof NothingQueued, 'all taken by the sink')
  t.notOk(drainOf([[body('b', 2), undefined]]).drain.stream({ id: 'c' }) instanceof NothingQueued, 'a QoS 2 message is streamed')
})

t.test('[MQTT-3.3.2-5] the sink drops an expired head message; [MQTT-3.3.1-1] a message with a packet id is a re-delivery', async (t) => {
  const again = body('again', 1)
  const { drain, drops, index } = drainOf([[body('gone', 1, { messageExpiry: 1 }), undefined], [again, 8], [body('new', 1), undefined]])
  const s = sink(10)
  drain.sink = () => s
  t.strictSame(await collect(drain.stream({ id: 'c' })), [])
  t.strictSame(s.sent.map((p) => [p.topic, p.messageId]), [['again', 8], ['new', 50]])
  t.equal(drops.counts().expired, 1)
  t.ok(drain.wasInFlight('c', 'b', again.brokerCounter))
  t.notOk(drain.wasInFlight('c', 'b', again.brokerCounter), 'answers once')
  t.equal(index.inflight, 2, 'the packet ids used are recorded')
})

t.test('the sink stops at a QoS 2 message and when the window is full; the stream gives the rest in order', async (t) => {
  const { drain } = drainOf([[body('a', 1), undefined], [body('b', 2), undefined], [body('c', 1), undefined]])
  const s = sink(10)
  drain.sink = () => s
  const rest = await collect(drain.stream({ id: 'c' }))
  t.strictSame(s.sent.map((p) => p.topic), ['a'])
  t.strictSame(rest.map((p) => p.topic), ['b', 'c'])
  const full = drainOf([[body('x', 1), undefined], [body('y', 1), undefined]])
  const one = sink(1)
  full.drain.sink = () => one
  t.strictSame((await collect(full.drain.stream({ id: 'c' }))).map((p) => p.topic), ['y'])
})

t.test('a message the sink does not send is cleared from the queue', async (t) => {
  const { drain, index } = drainOf([[body('refused', 1), undefined], [body('sent', 1), undefined]])
  const s = sink(10, [false, true])
  drain.sink = () => s
  await collect(drain.stream({ id: 'c' }))
  t.strictSame(index.queues.get('c')?.entries.map((e) => e.body?.topic), ['sent'])
})

t.test('the stream reads bodies that are on disk only, and skips what was removed meanwhile', async (t) => {
  const { d, drain, index } = drainOf([[body('on-disk', 1), undefined], [body('removed', 1), undefined]], true)
  const q = index.queues.get('c')
  const [first, second] = q?.entries ?? []
  if (first === undefined || second === undefined || q === undefined) throw new Error('two entries')
  await d.io.put('q:c:0000000000000001', encodePacket(first.body as StoredPacket))
  first.body = undefined
  const stream = drain.stream({ id: 'c' })
  index.remove('c', q, second, false)
  const got = await collect(stream)
  t.strictSame(got.map((p) => p.topic), ['on-disk'])
})
