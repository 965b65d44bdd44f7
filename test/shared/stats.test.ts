/** lib/shared/stats.ts: one group's figures as the metrics export them. */
import t from 'tap'
import { Group, newMember } from '../../lib/shared/group.js'
import { groupStats } from '../../lib/shared/stats.js'
import type { MemberLink } from '../../lib/shared/member-link.js'

t.test('members online and offline, queued, in flight and the cumulative counters', async (t) => {
  const g = new Group('$share/w/a', 'a')
  const link: MemberLink = { clientId: 'on', client: {}, room: () => 1, publish: () => {} }
  g.members.set('on', newMember('on', 1, undefined, false, false, link, 0))
  g.members.set('off1', newMember('off1', 1, undefined, false, true, undefined, 0))
  g.members.set('off2', newMember('off2', 1, undefined, false, true, undefined, 0))
  const message = { topic: 'a', payload: Buffer.alloc(0), qos: 1 as const, retain: false }
  const [e1, e2, e3] = [1, 2, 3].map(seq => g.add(seq, message))
  e1!.assignedTo = 'on'
  e2!.assignedTo = 'off1'
  g.pending.push(e3!)
  g.delivered = 5
  g.redelivered = 4
  g.deadLettered = 3
  g.dropped = 2
  t.same(groupStats(g), { group: '$share/w/a', membersOnline: 1, membersOffline: 2, queued: 1, inflight: 2, delivered: 5, redelivered: 4, deadLettered: 3, dropped: 2, abandoned: 0, timedOut: 0, poison: 0, deadLetteredBy: { rejected: 0, 'max-deliveries': 0 }, invalidSettles: 0, delayed: 0 })
  g.remove(e1!)
  t.equal(groupStats(g).inflight, 1, 'a finished message is no longer in flight')
})
