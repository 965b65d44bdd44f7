// Measured windows. The load generator reads the broker's /proc entry itself
// at the exact moments a window opens and closes, so no IPC round trip to the
// harness blurs the edges. A cluster is measured as all its processes (every
// node and redis-server): their CPU is summed, and given per process too.
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuDeltas, cpuSeconds, rssKiB } from '../lib/procfs.js'
import type { Target, WindowMeasure } from './jobs.js'

/** The processes whose CPU is the broker's: the broker, or every node of a cluster then redis-server. */
export function measuredPids (target: Target): number[] {
  return target.cluster === undefined
    ? [target.brokerPid]
    : [...target.cluster.nodes.map((node) => node.pid), target.cluster.redisPid]
}

const pidList = (pids: number | readonly number[]): readonly number[] => typeof pids === 'number' ? [pids] : pids
const totalCpu = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
const totalRss = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + rssKiB(pid), 0)

export class MeasuredWindow {
  private readonly pids: readonly number[]
  private readonly startNs: bigint
  private readonly startCpu: number[]
  private readonly startRss: number

  constructor (pids: number | readonly number[]) {
    this.pids = pidList(pids)
    this.startRss = totalRss(this.pids)
    this.startCpu = this.pids.map(cpuSeconds)
    this.startNs = process.hrtime.bigint()
  }

  /** Closes the window; `endNs` lets the caller date the end at the last event. */
  close (endNs: bigint | null = null): WindowMeasure {
    const nowNs = process.hrtime.bigint()
    const byProcess = cpuDeltas(this.startCpu, this.pids.map(cpuSeconds))
    const until = endNs ?? nowNs
    return {
      wallMs: Number(until - this.startNs) / 1e6,
      brokerCpuS: byProcess.reduce((sum, s) => sum + s, 0),
      ...(this.pids.length > 1 ? { cpuByProcessS: byProcess } : {}),
      rssStartKiB: this.startRss,
      rssEndKiB: totalRss(this.pids)
    }
  }
}

/**
 * Waits until the broker has gone quiet (at most one clock tick of CPU per
 * 100 ms per process, twice running), so deferred work from a setup phase
 * (persistence writes, GC) is not billed to the next measured window.
 */
export async function settle (pids: number | readonly number[], maxMs = 5000): Promise<void> {
  const list = pidList(pids)
  const deadline = Date.now() + maxMs
  let previous = totalCpu(list)
  let quiet = 0
  while (Date.now() < deadline && quiet < 2) {
    await sleep(100)
    const now = totalCpu(list)
    quiet = now - previous <= 0.011 * list.length ? quiet + 1 : 0
    previous = now
  }
}
