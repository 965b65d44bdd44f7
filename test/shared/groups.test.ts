/** lib/shared/groups.ts: groups by key, made on first use, and a client's memberships. */
import t from 'tap'
import { Groups, filterOf } from '../../lib/shared/groups.js'
import { newMember, type Group } from '../../lib/shared/group.js'

t.test('filterOf takes the filter out of $share/{name}/{filter}', async (t) => {
  t.equal(filterOf('$share/workers/jobs/#'), 'jobs/#')
  t.equal(filterOf('$share/w/+/a/b'), '+/a/b')
  t.equal(filterOf('$share/w//leading'), '/leading')
})

t.test('ensure makes a group once and reports it; get, delete, size and values follow', async (t) => {
  const made: Group[] = []
  const groups = new Groups(g => made.push(g))
  const a = groups.ensure('$share/w/a/#')
  t.equal(a.filter, 'a/#', 'the filter from the key')
  t.equal(groups.ensure('$share/w/a/#', 'other'), a, 'the same group the second time')
  const b = groups.ensure('$share/v/b', 'b')
  t.same(made, [a, b], 'made once each')
  t.equal(groups.size, 2)
  t.equal(groups.get('$share/v/b'), b)
  t.same([...groups.values()], [a, b])
  groups.delete(a)
  t.equal(groups.get('$share/w/a/#'), undefined)
  t.equal(groups.size, 1)
  t.not(groups.ensure('$share/w/a/#'), a, 'a deleted group is made anew')
})

t.test('of, count and hasMember see a client\'s memberships', async (t) => {
  const groups = new Groups(() => {})
  const a = groups.ensure('$share/w/a')
  const b = groups.ensure('$share/w/b')
  groups.ensure('$share/w/c')
  a.members.set('c1', newMember('c1', 1, undefined, false, false, undefined, 0))
  b.members.set('c1', newMember('c1', 1, undefined, false, false, undefined, 0))
  b.members.set('c2', newMember('c2', 1, undefined, false, false, undefined, 0))
  t.same(groups.of('c1'), [a, b])
  t.same(groups.of('c2'), [b])
  t.same(groups.of('c3'), [])
  t.equal(groups.count('c1'), 2)
  t.equal(groups.count('c3'), 0)
  t.equal(groups.hasMember('c2'), true)
  t.equal(groups.hasMember('c3'), false)
})
