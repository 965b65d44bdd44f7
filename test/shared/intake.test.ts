/** lib/shared/intake.ts: what a shared queue (a cluster's stream per group) reads for a group, and what it takes back. */
import t from 'tap'
import { Group, newMember } from '../../lib/shared/group.js'
import { Groups } from '../../lib/shared/groups.js'
import { adoptMember, enqueueIn, roomOf, takeExcess } from '../../lib/shared/intake.js'
import type { MemberLink } from '../../lib/shared/member-link.js'

const link = (clientId: string, room: () => number): MemberLink => ({ clientId, client: {}, room, publish: () => {} })
const message = (n: number): { topic: string, payload: Buffer, qos: 1, retain: false } => ({ topic: 'jobs/' + n, payload: Buffer.from(String(n)), qos: 1, retain: false })

t.test('room: the online members\' free places, each up to the cap, less what already waits; offline members count nothing', async (t) => {
  let wide = 100
  const g = new Group('$share/w/jobs/#', 'jobs/#')
  g.members.set('wide', newMember('wide', 1, undefined, false, false, link('wide', () => wide), 0))
  g.members.set('narrow', newMember('narrow', 1, undefined, false, false, link('narrow', () => 3), 0))
  g.members.set('offline', newMember('offline', 1, undefined, false, true, undefined, 0))
  t.equal(roomOf(g, Infinity), 103)
  t.equal(roomOf(g, 10), 13, 'each member counted up to 10')
  enqueueIn(g, message(1))
  enqueueIn(g, message(2))
  t.equal(roomOf(g, 10), 11, 'less the two waiting')
  wide = -5
  t.equal(roomOf(g, 10), 1, 'a member over its window counts no room, not less')
  t.equal(roomOf(undefined, 10), 0, 'no group here: no room')
})

t.test('hand back: only what waits beyond the room here, the last ones, out of the group', async (t) => {
  let room = 1
  const g = new Group('$share/w/jobs/#', 'jobs/#')
  g.members.set('m', newMember('m', 1, undefined, false, false, link('m', () => room), 0))
  const seqs = [1, 2, 3, 4].map((n) => enqueueIn(g, message(n)))
  t.same(seqs, [1, 2, 3, 4], 'seqs in reading order')
  t.same(takeExcess(g), [2, 3, 4], 'room for one: the three last go back')
  t.same(g.pending.map((e) => e.seq), [1], 'the first waits here')
  t.same(g.list().map((e) => e.seq), [1], 'the others are out of the group')
  room = 5
  t.same(takeExcess(g), [], 'nothing beyond the room: nothing goes back')
})

t.test('adopt: a persistent member joins its group here offline, once', async (t) => {
  const made: string[] = []
  const groups = new Groups((g) => { made.push(g.key) })
  t.ok(adoptMember(groups, { group: '$share/w/jobs/#', clientId: 'c', qos: 1, subscriptionIdentifier: 7, retainAsPublished: true }))
  t.notOk(adoptMember(groups, { group: '$share/w/jobs/#', clientId: 'c', qos: 1 }), 'a member already')
  const m = groups.get('$share/w/jobs/#')?.members.get('c')
  t.same(made, ['$share/w/jobs/#'], 'the group made here (the queue opens it)')
  t.match(m, { clientId: 'c', qos: 1, si: 7, rap: true, persistent: true, link: undefined })
})
