// Starting many tasks evenly over a time span (a fleet reconnecting within a
// second) while never having more than `concurrency` of them outstanding:
// the bound keeps connects inside the broker's listen backlog, so a slow
// broker makes the storm last longer instead of the kernel dropping SYNs
// and the figure measuring its retry timer.
import { setTimeout as sleep } from 'node:timers/promises'

/** How many of `count` starts are due `elapsedMs` into a spread of `spreadMs`. */
export function dueBy (elapsedMs: number, count: number, spreadMs: number): number {
  if (spreadMs <= 0 || elapsedMs >= spreadMs) return count
  if (elapsedMs < 0) return 0
  return Math.min(count, Math.floor((elapsedMs / spreadMs) * count) + 1)
}

export interface PacedOptions {
  readonly spreadMs: number
  readonly concurrency: number
  /** Tasks not started by this Date.now() are rejected without running. */
  readonly deadline: number
  /** Milliseconds since the pool started; injectable so tests need no real time. */
  readonly elapsed?: () => number
  /** Waits until the next start may be due. */
  readonly tick?: () => Promise<void>
}

export interface PacedStats {
  /** Elapsed ms when the last task was started. */
  lastStartMs: number
  /** Times a due task had to wait for a free slot. */
  concurrencyWaits: number
  /** Most tasks outstanding at once. */
  peakOutstanding: number
}

export interface PacedRun<T> {
  readonly results: Array<PromiseSettledResult<T>>
  readonly stats: PacedStats
}

export async function pacedPool<T> (count: number, options: PacedOptions, task: (index: number) => Promise<T>): Promise<PacedRun<T>> {
  const startedAt = performance.now()
  const elapsed = options.elapsed ?? (() => performance.now() - startedAt)
  const tick = options.tick ?? (async () => { await sleep(1) })
  const results = new Array<PromiseSettledResult<T>>(count)
  const stats: PacedStats = { lastStartMs: 0, concurrencyWaits: 0, peakOutstanding: 0 }
  const running = new Set<Promise<void>>()
  let next = 0
  while (next < count) {
    if (Date.now() > options.deadline) {
      for (; next < count; next++) results[next] = { status: 'rejected', reason: new Error('time bound reached before connect') }
      break
    }
    const due = dueBy(elapsed(), count, options.spreadMs)
    while (next < due && running.size < options.concurrency) {
      const index = next++
      const settled = task(index).then(
        (value) => { results[index] = { status: 'fulfilled', value } },
        (reason: unknown) => { results[index] = { status: 'rejected', reason } }
      ).finally(() => running.delete(settled))
      running.add(settled)
      stats.lastStartMs = elapsed()
      stats.peakOutstanding = Math.max(stats.peakOutstanding, running.size)
    }
    if (next >= count) break
    if (next < due) {
      stats.concurrencyWaits++
      await Promise.race(running)
    } else {
      await tick()
    }
  }
  await Promise.all(running)
  return { results, stats }
}
