// The queue index alone: counts, the overflow policies, packet ids.
import t from 'tap'
import { BodyCache } from '../../../lib/persistence/parts/body-cache.js'
import { Drops } from '../../../lib/persistence/parts/drops.js'
import { QueueIndex, brokerKeyOf, entryFor, pubrelEntry } from '../../../lib/persistence/parts/queue-index.js'
import type { OverflowPolicy, StoredPacket } from '../../../lib/persistence/types.js'
import { disk } from '../../helpers/part-disk.js'
import { sleep } from '../../helpers/wait.js'

let counter = 0
const body = (qos: number, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', brokerId: 'b', brokerCounter: ++counter, topic: 't', payload: Buffer.from('12345'), qos, retain: false, ...extra })

function index (opts: { durable?: boolean, maxQueuedMessages?: number, maxQueuedBytes?: number, overflow?: OverflowPolicy } = {}) {
  const d = disk(opts.durable ?? true)
  const drops = new Drops(undefined, opts.overflow ?? 'drop-oldest')
  const idx = new QueueIndex(d.io, new BodyCache(Infinity, d.io), drops, {
    maxQueuedMessages: opts.maxQueuedMessages ?? 10, maxQueuedBytes: opts.maxQueuedBytes ?? 1000, overflow: opts.overflow ?? 'drop-oldest'
  })
  return { d, drops, idx }
}

t.test('append and remove keep the counts; PUBREL state is not a message', async (t) => {
  const { idx } = index({ durable: false })
  const q = idx.queueOf('c')
  const a = entryFor(1, body(1), undefined, false)
  const b = entryFor(2, body(2), 7, false)
  idx.append(q, a)
  idx.append(q, b)
  idx.append(q, pubrelEntry(3, { cmd: 'pubrel', messageId: 9 }, false))
  t.equal(idx.queued, 2)
  t.equal(idx.queuedBytes, 12, 'payload + topic bytes')
  t.equal(idx.inflight, 1, 'the entry with a packet id')
  t.equal(idx.pubrels, 1)
  t.equal(q.byBroker.get(brokerKeyOf(a.body as StoredPacket) as string), a)
  idx.toPubrel(q, b, { cmd: 'pubrel', messageId: 7 })
  t.equal(idx.queued, 1)
  t.equal(idx.inflight, 0)
  t.equal(idx.pubrels, 2)
  t.equal(b.body, undefined)
  for (const e of q.entries.slice()) idx.remove('c', q, e, false)
  t.equal(idx.queues.size, 0, 'an empty queue is unlinked')
  t.strictSame([idx.queued, idx.queuedBytes, idx.inflight, idx.pubrels], [0, 0, 0, 0])
})

t.test('drop-oldest drops expired messages first, then the oldest QoS 0, then the oldest', async (t) => {
  const { idx, drops } = index({ maxQueuedMessages: 3 })
  const q = idx.queueOf('c')
  const oldest = entryFor(1, body(1), undefined, false)
  const qos0 = entryFor(2, body(0), undefined, false)
  const expired = entryFor(3, body(1, { messageExpiry: 5 }), undefined, false)
  for (const e of [oldest, qos0, expired]) idx.append(q, e)
  t.ok(idx.makeRoom('c', q, 6, 10))
  t.ok(expired.removed, 'the expired one first')
  t.strictSame(drops.counts(), { queueFull: 0, expired: 1, retainedLimit: 0 })
  idx.append(q, entryFor(4, body(1), undefined, false))
  t.ok(idx.makeRoom('c', q, 6, 10))
  t.ok(qos0.removed, 'then the oldest QoS 0')
  idx.append(q, entryFor(5, body(1), undefined, false))
  t.ok(idx.makeRoom('c', q, 6, 10))
  t.ok(oldest.removed, 'then the oldest')
  t.equal(drops.counts().queueFull, 2)
})

t.test('refuse keeps the queue and drops the new message; a message over the byte limit never fits', async (t) => {
  const refuse = index({ maxQueuedMessages: 1, overflow: 'refuse' })
  const q = refuse.idx.queueOf('c')
  refuse.idx.append(q, entryFor(1, body(1), undefined, false))
  t.notOk(refuse.idx.makeRoom('c', q, 6, 0))
  t.equal(q.count, 1)
  const big = index({ maxQueuedBytes: 5 })
  t.notOk(big.idx.makeRoom('c', big.idx.queueOf('c'), 6, 0))
  t.equal(big.drops.counts().queueFull, 1)
})

t.test('[MQTT-4.4.0-1] a QoS 2 packet id is written at once, a QoS 1 id only when written late', async (t) => {
  const { d, idx } = index()
  const q = idx.queueOf('c')
  const two = entryFor(1, body(2), undefined, false)
  const one = entryFor(2, body(1), undefined, false)
  idx.append(q, two)
  idx.append(q, one)
  await idx.recordPacketId('c', two, 4)
  t.equal(idx.recordPacketId('c', one, 5), undefined, 'nothing to wait for')
  t.strictSame(d.keys(), ['qi:c:0000000000000001'])
  t.equal(idx.inflight, 2)
  idx.writeLazyIds()
  await d.io.backend?.writer.flush()
  t.strictSame(d.record('qi:c:0000000000000002'), { m: 5 })
  t.ok(one.hasState)
  t.equal(idx.recordPacketId('c', one, 5), undefined, 're-sent with the id it has on disk: no write')
  await idx.remove('c', q, one, true)
  t.strictSame(d.keys(), ['qi:c:0000000000000001'], 'the entry\'s keys go with it')
})

t.test('restored entries are kept in seq order; maxBrokerCounter reads the stored names', async (t) => {
  const { idx } = index({ durable: false })
  idx.insertRestored('c', entryFor(5, body(1, { brokerCounter: 70 }), undefined, true))
  idx.insertRestored('c', entryFor(2, body(1, { brokerCounter: 90 }), undefined, true))
  t.strictSame(idx.queues.get('c')?.entries.map((e) => e.seq), [2, 5])
  t.equal(idx.seq, 5)
  t.equal(idx.maxBrokerCounter('b'), 90)
})

t.test('[MQTT-4.4.0-1] a QoS 1 packet id given again waits its own delay; a removed entry\'s id is never written', async (t) => {
  const { d, idx } = index()
  const q = idx.queueOf('c')
  const again = entryFor(1, body(1), undefined, false)
  const acked = entryFor(2, body(1), undefined, false)
  idx.append(q, again)
  idx.append(q, acked)
  idx.recordPacketId('c', again, 5)
  idx.recordPacketId('c', acked, 6)
  idx.remove('c', q, acked, false)
  // past the first run of the timer: the first id is in the old generation
  await sleep(130)
  idx.recordPacketId('c', again, 7)
  // past the second run, which would have written the first id
  await sleep(100)
  await d.io.backend?.writer.flush()
  t.strictSame(d.keys(), [], 'nothing written while the new id is younger than the delay')
  await sleep(150)
  await d.io.backend?.writer.flush()
  t.strictSame(d.keys(), ['qi:c:0000000000000001'], 'only the entry still queued')
  t.strictSame(d.record('qi:c:0000000000000001'), { m: 7 }, 'with the id it was given last')
  t.equal(d.io.backend?.writer.counters.ops, 1, 'written once')
})
