/** lib/shared/group.ts: a group's list of unfinished messages and its queue in seq order. */
import t from 'tap'
import { Group, newMember } from '../../lib/shared/group.js'
import { SHARED_BROKER_ID } from '../../lib/shared/member-link.js'
import type { StoredMessage } from '../../lib/shared/store.js'

const message = (topic: string): StoredMessage => ({ topic, payload: Buffer.from(topic), qos: 1, retain: false })
const seqs = (g: Group): number[] => g.list().map(e => e.seq)

t.test('the broker id and the selector input are made once per group', async (t) => {
  const g = new Group('$share/w/jobs/#', 'jobs/#')
  t.equal(g.brokerId, SHARED_BROKER_ID + '$share/w/jobs/#')
  t.same(g.selectInput, { group: '$share/w/jobs/#', topic: '', publisherId: undefined })
  t.equal(g.first, undefined)
})

t.test('add keeps insertion order; remove unlinks from the head, the middle and the tail, once', async (t) => {
  const g = new Group('$share/w/a', 'a')
  const [e1, e2, e3, e4] = [1, 2, 3, 4].map(seq => g.add(seq, message(`a/${seq}`)))
  t.same(seqs(g), [1, 2, 3, 4])
  t.equal(g.remove(e2!), true)
  t.same(seqs(g), [1, 3, 4])
  t.equal(g.remove(e2!), false, 'a second remove is refused')
  t.equal(e2!.live, false)
  t.equal(g.remove(e1!), true)
  t.equal(g.first, e3)
  t.equal(g.remove(e4!), true)
  t.same(seqs(g), [3])
  t.equal(g.remove(e3!), true)
  t.same(seqs(g), [])
  t.equal(g.first, undefined)
  const e5 = g.add(5, message('a/5'))
  t.equal(g.first, e5, 'an emptied list takes new entries')
})

t.test('list is a copy: removing while iterating it misses nothing', async (t) => {
  const g = new Group('$share/w/a', 'a')
  for (let seq = 1; seq <= 5; seq++) g.add(seq, message('a'))
  const seen: number[] = []
  for (const e of g.list()) { seen.push(e.seq); g.remove(e) }
  t.same(seen, [1, 2, 3, 4, 5])
  t.same(seqs(g), [])
})

t.test('requeue puts a message back in seq order (per-topic order for hash-topic groups)', async (t) => {
  const g = new Group('$share/w/a', 'a')
  const entries = [1, 2, 3, 4, 5].map(seq => g.add(seq, message('a')))
  g.pending.push(entries[1]!, entries[3]!)
  g.requeue(entries[4]!)
  g.requeue(entries[0]!)
  g.requeue(entries[2]!)
  t.same(g.pending.map(e => e.seq), [1, 2, 3, 4, 5])
})

t.test('newMember: a candidate of its own, reused for every choice', async (t) => {
  const m = newMember('c1', 1, 7, true, false, undefined, 2)
  t.match(m, { clientId: 'c1', qos: 1, si: 7, rap: true, persistent: false, link: undefined, assigned: 2 })
  t.same(m.candidate, { clientId: 'c1', room: 0, inflight: 0 })
})
