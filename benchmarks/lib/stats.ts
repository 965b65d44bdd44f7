// Small order statistics used for repeat medians and latency percentiles.
import type { LatencySummary } from '../loadgen/jobs.js'

export function median (values: readonly number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Nearest-rank percentile of an already sorted array (p in 0..100). */
export function percentileSorted (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** (max - min) / median, as a fraction: how much the repeats disagree. */
export function spread (values: readonly number[]): number | null {
  const mid = median(values)
  if (mid === null || mid === 0 || values.length < 2) return null
  return (Math.max(...values) - Math.min(...values)) / Math.abs(mid)
}

/** value per second of `seconds`; null when the denominator is too small to mean anything. */
export function perSecond (count: number, seconds: number, minSeconds: number): number | null {
  return seconds >= minSeconds ? count / seconds : null
}

/** p50 / p99 / max of latency samples in ms (NaN when there are none). */
export function latencySummary (samplesMs: readonly number[], keep: boolean): LatencySummary {
  const sorted = Float64Array.from(samplesMs).sort()
  return {
    count: sorted.length,
    p50Ms: percentileSorted(sorted, 50),
    p99Ms: percentileSorted(sorted, 99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    samplesMs: keep ? [...samplesMs] : null
  }
}
