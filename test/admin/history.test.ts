import t from 'tap'
import { RateHistory } from '../../lib/admin/history.js'
import type { SharedGroupInfo, Totals } from '../../lib/admin/source.js'

const zero: Totals = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, connects: 0, connections: 0 }

t.test('one sample per tick: differences of the totals, in a ring', async (t) => {
  let totals = { ...zero }
  let now = 0
  let groupReads = 0
  const group = { group: '$share/g/t', queued: 3 } as SharedGroupInfo
  const h = new RateHistory({ totals: () => totals, groups: () => { groupReads++; return [group] }, size: 3, activeMs: 5000, now: () => now, intervalMs: 3600000 })
  h.start()
  t.teardown(() => h.stop())
  for (let i = 1; i <= 4; i++) {
    totals = { ...totals, messagesIn: totals.messagesIn + i * 10, bytesIn: totals.bytesIn + 100, connections: i }
    now += 1000
    h.sample()
  }
  t.same(h.rateSamples().map(s => [s.t, s.messagesIn, s.bytesIn, s.connections]), [[2000, 20, 100, 2], [3000, 30, 100, 3], [4000, 40, 100, 4]], 'the last 3')
  t.same(h.rateSamples(1).map(s => s.t), [4000])
  t.equal(groupReads, 0, 'groups are not read while nobody looks')
  t.same(h.groupDepths(), [])
  h.touch()
  now += 1000
  totals = { ...totals, messagesIn: 0 }
  h.sample()
  t.equal(h.rateSamples(1)[0]?.messagesIn, 0, 'a counter that went back counts as 0')
  t.same(h.groupDepths(), [{ t: 5000, queued: { '$share/g/t': 3 } }])
  now += 6000
  h.sample()
  t.equal(groupReads, 1, 'no longer read once the dashboard is idle')
})
