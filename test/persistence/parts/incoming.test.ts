// Inbound QoS 2 alone: packets by session and packet id until PUBREL.
import t from 'tap'
import { MemoryIncoming } from '../../../lib/persistence/parts/incoming.js'
import { disk } from '../../helpers/part-disk.js'

const publish = (messageId: number) => ({ cmd: 'publish', topic: 'in/q2', payload: Buffer.from('p'), qos: 2, retain: false, messageId })

t.test('a QoS 2 PUBLISH is kept by packet id until its PUBREL, under i:<cid>:<id, 5 digits>', async (t) => {
  const d = disk()
  const incoming = new MemoryIncoming(d.io)
  await incoming.put('c', 7, publish(7))
  await incoming.put('c', 7, publish(7))
  t.equal(incoming.count, 1, 'the same packet id twice is one packet')
  t.strictSame(d.keys(), ['i:c:00007'])
  const got = incoming.get('c', 7)
  t.equal(got?.messageId, 7)
  t.equal(got?.topic, 'in/q2')
  if (got !== undefined) got.topic = 'mutated'
  t.equal(incoming.get('c', 7)?.topic, 'in/q2', 'get returns a copy')
  t.equal(incoming.get('other', 7), undefined, 'per session')
  const deleted = incoming.delete('c', 7)
  t.ok(deleted, 'deleted')
  await deleted?.written
  t.equal(incoming.count, 0)
  t.strictSame(d.keys(), [])
  t.equal(incoming.delete('c', 7), undefined, 'a packet id not held: undefined')
})

t.test('[MQTT-3.1.2-4] clear drops every packet of one session only', async (t) => {
  const d = disk()
  const incoming = new MemoryIncoming(d.io)
  await incoming.put('a', 1, publish(1))
  await incoming.put('a', 2, publish(2))
  await incoming.put('b', 1, publish(1))
  await incoming.clear('a')
  t.equal(incoming.count, 1)
  t.strictSame(d.keys(), ['i:b:00001'])
  t.equal(incoming.clear('a'), undefined, 'nothing left to clear')
  incoming.restore('r', 3, publish(3))
  t.equal(incoming.count, 2, 'restored packets count')
})
