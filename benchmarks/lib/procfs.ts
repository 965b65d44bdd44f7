// Reads a broker's resource usage straight from Linux procfs, so every
// figure is "per broker CPU-second" regardless of what else the (shared,
// noisy) machine is doing. utime+stime in /proc/<pid>/stat cover all threads
// of the process (GC, libuv pool, LevelDB compaction), which is what we want.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let clockTicks: number | undefined

/** USER_HZ, the unit of utime/stime; read once via getconf (almost always 100). */
export function clockTicksPerSecond (): number {
  if (clockTicks === undefined) {
    let parsed = Number.NaN
    try {
      parsed = Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10)
    } catch {
      // getconf missing: Linux has used USER_HZ=100 on every mainstream arch.
    }
    clockTicks = Number.isFinite(parsed) && parsed > 0 ? parsed : 100
  }
  return clockTicks
}

/**
 * utime + stime, in clock ticks, from the text of /proc/<pid>/stat. Field 2
 * (comm) is parenthesised and may itself contain spaces or ')', so only what
 * follows the last ')' is split; that remainder starts at field 3.
 */
export function statCpuTicks (stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[14 - 3])
  const stime = Number(fields[15 - 3])
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || fields.length < 13) {
    throw new Error('cannot parse a /proc/<pid>/stat line')
  }
  return utime + stime
}

/** Total CPU time (user + system) consumed so far by `pid`, in seconds. */
export function cpuSeconds (pid: number): number {
  try {
    return statCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / clockTicksPerSecond()
  } catch (err) {
    throw new Error(`cpu time of ${pid}: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** Resident set size of `pid` in KiB (VmRSS). */
export function rssKiB (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)
  if (match?.[1] === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(match[1])
}

export interface ProcSnapshot {
  readonly atNs: bigint
  readonly cpuS: number
  readonly rssKiB: number
}

export function snapshot (pid: number): ProcSnapshot {
  return { atNs: process.hrtime.bigint(), cpuS: cpuSeconds(pid), rssKiB: rssKiB(pid) }
}

/**
 * CPU seconds each process used between two readings of the same pids, in
 * order. A cluster's figure is their sum: every node plus redis-server.
 */
export function cpuDeltas (before: readonly number[], after: readonly number[]): number[] {
  if (before.length !== after.length) throw new Error(`cpuDeltas: ${before.length} readings before, ${after.length} after`)
  return after.map((end, i) => end - before[i]!)
}

/** Peak resident set size of `pid` since it started, in KiB (VmHWM). */
export function hwmKiB (pid: number): number {
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match?.[1] === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`)
  return Number(match[1])
}

/**
 * The highest of a reading taken every `intervalMs` (a broker's RSS during a
 * storm); `read` is injectable so the bookkeeping can be tested without a process.
 */
export class PeakSampler {
  private peakValue = 0
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly read: () => number, private readonly intervalMs: number) {}

  start (): void {
    this.sample()
    this.timer = setInterval(() => this.sample(), this.intervalMs)
  }

  sample (): void {
    try {
      this.peakValue = Math.max(this.peakValue, this.read())
    } catch {
      // The process may have exited; the run reports that elsewhere.
    }
  }

  /** Stops sampling after one last reading and returns the peak. */
  stop (): number {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.sample()
    return this.peakValue
  }

  get peak (): number {
    return this.peakValue
  }
}

/** A `TcpExt:` counter from the text of /proc/net/netstat (header line, then values line). */
export function netstatCounter (text: string, name: string): number | null {
  const lines = text.split('\n').filter((line) => line.startsWith('TcpExt:'))
  const names = lines[0]?.split(/\s+/) ?? []
  const values = lines[1]?.split(/\s+/) ?? []
  const at = names.indexOf(name)
  const value = at > 0 ? Number(values[at]) : Number.NaN
  return Number.isFinite(value) ? value : null
}

/**
 * Connections the kernel dropped because a listen queue was full, machine
 * wide: a storm that overflowed a broker's backlog measured SYN retries.
 */
export function listenOverflows (): number | null {
  try {
    return netstatCounter(readFileSync('/proc/net/netstat', 'utf8'), 'ListenOverflows')
  } catch {
    return null
  }
}
