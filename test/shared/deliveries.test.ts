/** lib/shared/deliveries.ts: delivery counters and packet ids back to the message they stand for. */
import t from 'tap'
import { Deliveries } from '../../lib/shared/deliveries.js'
import { Group, type Entry } from '../../lib/shared/group.js'

function entries (n: number): Entry[] {
  const g = new Group('$share/w/a', 'a')
  return Array.from({ length: n }, (_, i) => g.add(i + 1, { topic: 'a', payload: Buffer.alloc(0), qos: 1, retain: false }))
}

t.test('counters count up from 1', async (t) => {
  const d = new Deliveries()
  t.same([d.next(), d.next(), d.next()], [1, 2, 3])
})

t.test('byCounter: the message being delivered, else one waiting for aedes, until its delivery ends', async (t) => {
  const d = new Deliveries()
  const [a, b] = entries(2) as [Entry, Entry]
  a.delivery = d.next()
  b.delivery = d.next()
  t.equal(d.byCounter(a.delivery), undefined)
  d.delivering = a
  t.equal(d.byCounter(a.delivery), a, 'during the call to aedes')
  t.equal(d.byCounter(b.delivery), undefined, 'the one being delivered answers for its own counter only')
  d.delivering = undefined
  d.await(b.delivery, b)
  t.equal(d.byCounter(b.delivery), b, 'after the call, from the waiting ones')
  d.end(b.delivery)
  t.equal(d.byCounter(b.delivery), undefined)
})

t.test('an acknowledgement finds its message once, per connection and packet id', async (t) => {
  const d = new Deliveries()
  const [a, b] = entries(2) as [Entry, Entry]
  const conn1 = {}
  const conn2 = {}
  d.track(conn1, 10, a)
  d.track(conn2, 10, b)
  t.equal(a.messageId, 10, 'the entry knows its packet id')
  t.equal(d.acknowledged(conn2, 10), b)
  t.equal(d.acknowledged(conn2, 10), undefined, 'not twice')
  t.equal(d.acknowledged(conn1, 11), undefined, 'another id')
  t.equal(d.acknowledged({}, 10), undefined, 'another connection')
  t.equal(d.acknowledged(conn1, 10), a)
})

t.test('a closed connection: which tracked messages it was sent, and nothing tracked for it afterwards', async (t) => {
  const d = new Deliveries()
  const [a, b, c] = entries(3) as [Entry, Entry, Entry]
  const conn = {}
  d.track(conn, 1, a)
  d.track(conn, 2, b)
  d.track(conn, 3, c)
  t.same(d.closed(conn, new Set([1, 3, 99])), new Set(['$share/w/a\u00001', '$share/w/a\u00003']))
  t.equal(d.acknowledged(conn, 2), undefined, 'forgotten with the connection')
  t.same(d.closed(conn, new Set([1])), new Set(), 'a second close finds nothing')
})
