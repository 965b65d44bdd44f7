/**
 * The reconnect storm's pacing: starts spread evenly over a span, never more
 * than `concurrency` outstanding, waits counted, nothing started after the
 * deadline. Time is injected, so nothing here depends on the machine's speed.
 */
import t from 'tap'
import { dueBy, pacedPool } from '../../../benchmarks/loadgen/paced.js'

t.test('dueBy spreads starts evenly and releases everything at the end of the span', async (t) => {
  t.equal(dueBy(0, 1000, 1000), 1, 'the first start is due at once')
  t.equal(dueBy(499.9, 1000, 1000), 500)
  t.equal(dueBy(999, 1000, 1000), 1000)
  t.equal(dueBy(1000, 1000, 1000), 1000)
  t.equal(dueBy(5000, 1000, 1000), 1000, 'never more than the count')
  t.equal(dueBy(-1, 10, 1000), 0)
  t.equal(dueBy(0, 10, 0), 10, 'no span: all at once')
  t.equal(dueBy(500, 10, 1000), 6)
})

/** A clock that moves only when the pool waits for its next tick. */
function fakeClock (stepMs: number): { elapsed: () => number, tick: () => Promise<void>, ticks: () => number } {
  let now = 0
  let ticks = 0
  return {
    elapsed: () => now,
    tick: async () => { ticks++; now += stepMs; await Promise.resolve() },
    ticks: () => ticks
  }
}

t.test('pacedPool runs every index once, in order, following the clock', async (t) => {
  const clock = fakeClock(100)
  const startedAt: number[] = []
  const run = await pacedPool(10, { spreadMs: 1000, concurrency: 100, deadline: Date.now() + 60_000, elapsed: clock.elapsed, tick: clock.tick }, async (index) => {
    startedAt.push(clock.elapsed())
    return index * 2
  })
  t.same(run.results.map((r) => r.status === 'fulfilled' ? r.value : null), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
  t.same(startedAt, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900], 'one start per tenth of the span')
  t.equal(run.stats.lastStartMs, 900)
  t.equal(run.stats.concurrencyWaits, 0)
  t.equal(run.stats.peakOutstanding, 1, 'instant tasks never overlap')
})

t.test('pacedPool keeps at most `concurrency` outstanding and counts the starts that had to wait', async (t) => {
  const clock = fakeClock(1000)
  const release: Array<() => void> = []
  let outstanding = 0
  let maxOutstanding = 0
  const running = pacedPool(8, { spreadMs: 0, concurrency: 3, deadline: Date.now() + 60_000, elapsed: clock.elapsed, tick: clock.tick }, async (index) => {
    outstanding++
    maxOutstanding = Math.max(maxOutstanding, outstanding)
    await new Promise<void>((resolve) => release.push(resolve))
    outstanding--
    return index
  })
  // Release the held tasks one by one as the pool starts them.
  for (let released = 0; released < 8;) {
    await new Promise((resolve) => setImmediate(resolve))
    const next = release.shift()
    if (next !== undefined) { next(); released++ }
  }
  const run = await running
  t.equal(maxOutstanding, 3)
  t.equal(run.stats.peakOutstanding, 3)
  t.equal(run.stats.concurrencyWaits, 5, 'every start beyond the first three waited for a slot')
  t.equal(run.results.filter((r) => r.status === 'fulfilled').length, 8)
})

t.test('pacedPool keeps failures apart and starts nothing after the deadline', async (t) => {
  const clock = fakeClock(10)
  const failing = await pacedPool(3, { spreadMs: 0, concurrency: 10, deadline: Date.now() + 60_000, elapsed: clock.elapsed, tick: clock.tick }, async (index) => {
    if (index === 1) throw new Error('refused')
    return index
  })
  t.same(failing.results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  let calls = 0
  const late = await pacedPool(4, { spreadMs: 1000, concurrency: 10, deadline: Date.now() - 1, elapsed: clock.elapsed, tick: clock.tick }, async () => { calls++ })
  t.equal(calls, 0)
  t.ok(late.results.every((r) => r.status === 'rejected' && /time bound/.test(String(r.reason))))
})
