/** lib/shared/selection.ts: the candidates a MemberSelector sees, and the member it picks. */
import t from 'tap'
import { Group, newMember } from '../../lib/shared/group.js'
import { candidatesOf, chooseMember } from '../../lib/shared/selection.js'
import type { MemberLink } from '../../lib/shared/member-link.js'
import type { Candidate, MemberSelector, SelectInput } from '../../lib/shared/strategies.js'

const link = (clientId: string, room: number): MemberLink => ({ clientId, client: {}, room: () => room, publish: () => {} })

function group (): Group {
  const g = new Group('$share/w/jobs', 'jobs')
  g.members.set('online', newMember('online', 1, undefined, false, false, link('online', 3), 2))
  g.members.set('full', newMember('full', 1, undefined, false, false, link('full', 0), 5))
  g.members.set('offline', newMember('offline', 1, undefined, false, true, undefined, 1))
  return g
}

t.test('online members only, and only those with room when the message needs it; room and in-flight filled in', async (t) => {
  const g = group()
  t.same(candidatesOf(g, false), [{ clientId: 'online', room: 3, inflight: 2 }, { clientId: 'full', room: 0, inflight: 5 }])
  t.same(candidatesOf(g, true), [{ clientId: 'online', room: 3, inflight: 2 }])
})

t.test('the candidate list and its objects are the group\'s own, reused from one choice to the next', async (t) => {
  const g = group()
  const first = candidatesOf(g, false)
  const firstOnline = first[0]
  const second = candidatesOf(g, true)
  t.equal(second, first, 'the same array')
  t.equal(second[0], firstOnline, 'the same candidate object')
  t.equal(second.length, 1, 'emptied before refilling')
})

t.test('chooseMember: the selector sees the topic and publisher, and its choice maps back to the member', async (t) => {
  const g = group()
  const seen: Array<{ input: SelectInput, names: string[] }> = []
  const selector: MemberSelector = {
    select: (input, candidates) => {
      seen.push({ input: { ...input }, names: candidates.map(c => c.clientId) })
      return candidates.at(-1)
    },
    forget: () => {}
  }
  t.equal(chooseMember(selector, g, 'jobs', 'pub', false), g.members.get('full'))
  t.equal(chooseMember(selector, g, 'jobs', undefined, true), g.members.get('online'))
  t.same(seen, [
    { input: { group: '$share/w/jobs', topic: 'jobs', publisherId: 'pub' }, names: ['online', 'full'] },
    { input: { group: '$share/w/jobs', topic: 'jobs', publisherId: undefined }, names: ['online'] }
  ])
})

t.test('chooseMember: no candidate, or a selector that keeps the message queued, gives no member', async (t) => {
  let calls = 0
  const keep: MemberSelector = { select: (): Candidate | undefined => { calls++; return undefined }, forget: () => {} }
  t.equal(chooseMember(keep, group(), 'jobs', undefined, false), undefined)
  t.equal(calls, 1)
  const empty = new Group('$share/w/none', 'none')
  empty.members.set('offline', newMember('offline', 1, undefined, false, true, undefined, 0))
  t.equal(chooseMember(keep, empty, 'none', undefined, false), undefined)
  t.equal(calls, 1, 'the selector is not asked when nobody is online')
})
