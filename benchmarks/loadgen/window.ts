// Measured windows. The load generator reads the broker's /proc entry itself
// at the exact moments a window opens and closes, so no IPC round trip to the
// harness blurs the edges.
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuSeconds, snapshot, type ProcSnapshot } from '../lib/procfs.js'
import type { WindowMeasure } from './jobs.js'

export class MeasuredWindow {
  private readonly start: ProcSnapshot
  constructor (private readonly pid: number) {
    this.start = snapshot(pid)
  }

  /** Closes the window; `endNs` lets the caller date the end at the last event. */
  close (endNs: bigint | null = null): WindowMeasure {
    const end = snapshot(this.pid)
    const until = endNs ?? end.atNs
    return {
      wallMs: Number(until - this.start.atNs) / 1e6,
      brokerCpuS: end.cpuS - this.start.cpuS,
      rssStartKiB: this.start.rssKiB,
      rssEndKiB: end.rssKiB
    }
  }
}

/**
 * Waits until the broker has gone quiet (at most one clock tick of CPU per
 * 100 ms, twice running), so deferred work from a setup phase (persistence
 * writes, GC) is not billed to the next measured window.
 */
export async function settle (pid: number, maxMs = 5000): Promise<void> {
  const deadline = Date.now() + maxMs
  let previous = cpuSeconds(pid)
  let quiet = 0
  while (Date.now() < deadline && quiet < 2) {
    await sleep(100)
    const now = cpuSeconds(pid)
    quiet = now - previous <= 0.011 ? quiet + 1 : 0
    previous = now
  }
}
