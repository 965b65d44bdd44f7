/**
 * Order statistics of the benchmark harness: nearest-rank percentiles and
 * the latency summary the takeover scenario reports.
 */
import t from 'tap'
import { latencySummary, percentileSorted } from '../../../benchmarks/lib/stats.js'

t.test('percentileSorted is nearest-rank', async (t) => {
  const hundred = Float64Array.from({ length: 100 }, (_, i) => i + 1)
  t.equal(percentileSorted(hundred, 50), 50)
  t.equal(percentileSorted(hundred, 99), 99)
  t.equal(percentileSorted(hundred, 100), 100)
  t.equal(percentileSorted([7], 99), 7, 'one sample is every percentile')
  t.ok(Number.isNaN(percentileSorted([], 50)), 'none: NaN')
})

t.test('latencySummary sorts numerically, not as text', async (t) => {
  const summary = latencySummary([10, 9, 100, 2, 30], false)
  t.equal(summary.count, 5)
  t.equal(summary.p50Ms, 10)
  t.equal(summary.p99Ms, 100)
  t.equal(summary.maxMs, 100)
  t.equal(summary.samplesMs, null, 'samples dropped unless asked for')
  t.same(latencySummary([3, 1], true).samplesMs, [3, 1], 'kept in arrival order when asked for')
})

t.test('latencySummary of no samples', async (t) => {
  const summary = latencySummary([], false)
  t.equal(summary.count, 0)
  t.ok(Number.isNaN(summary.p99Ms) && Number.isNaN(summary.maxMs))
})
