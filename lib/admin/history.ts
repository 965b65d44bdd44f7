/**
 * A short history of rates, kept in the server so that a dashboard's charts
 * are full as soon as it opens: one sample a second (the totals' differences)
 * in a ring of fixed size. Shared groups' queue depths are sampled only while
 * the dashboard is in use (`touch()` within the last `activeMs`), since
 * reading them walks each group's unfinished messages.
 */
import type { SharedGroupInfo, Totals } from './source.js'

/** The totals' change over one second, ending at `t` (ms since the epoch); `connections` is the count at `t`. */
export type RateSample = Totals & { t: number }

export interface GroupSample {
  t: number
  /** queued messages by group */
  queued: Record<string, number>
}

export interface HistoryOptions {
  totals: () => Totals
  groups: () => SharedGroupInfo[]
  /** samples kept; default 600 (ten minutes) */
  size?: number
  intervalMs?: number
  /** group depths are sampled for this long after the last `touch()`; default 10 minutes */
  activeMs?: number
  /** most groups sampled; default 50 */
  maxGroups?: number
  now?: () => number
}

export class RateHistory {
  private readonly rates: RateSample[] = []
  private readonly groupSamples: GroupSample[] = []
  private readonly size: number
  private readonly activeMs: number
  private readonly maxGroups: number
  private readonly now: () => number
  private last: Totals | undefined
  private lastTouch = -Infinity
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly opts: HistoryOptions) {
    this.size = opts.size ?? 600
    this.activeMs = opts.activeMs ?? 600_000
    this.maxGroups = opts.maxGroups ?? 50
    this.now = opts.now ?? Date.now
  }

  start (): void {
    this.last = this.opts.totals()
    this.timer = setInterval(() => this.sample(), this.opts.intervalMs ?? 1000)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** the dashboard is being looked at */
  touch (): void {
    this.lastTouch = this.now()
  }

  /** one tick: the rates since the previous one (counters only grow; a negative difference counts as 0) */
  sample (): void {
    const t = this.now()
    const totals = this.opts.totals()
    const prev = this.last ?? totals
    this.last = totals
    const d = (k: keyof Totals): number => Math.max(0, totals[k] - prev[k])
    push(this.rates, {
      t,
      messagesIn: d('messagesIn'),
      messagesOut: d('messagesOut'),
      bytesIn: d('bytesIn'),
      bytesOut: d('bytesOut'),
      dropped: d('dropped'),
      connects: d('connects'),
      connections: totals.connections
    }, this.size)
    if (t - this.lastTouch <= this.activeMs) {
      const queued: Record<string, number> = Object.create(null) as Record<string, number>
      for (const g of this.opts.groups().slice(0, this.maxGroups)) queued[g.group] = g.queued
      push(this.groupSamples, { t, queued }, this.size)
    }
  }

  /** the samples of the last `seconds`, oldest first */
  rateSamples (seconds = this.size): RateSample[] {
    return this.rates.slice(-Math.max(0, seconds))
  }

  groupDepths (seconds = this.size): GroupSample[] {
    return this.groupSamples.slice(-Math.max(0, seconds))
  }
}

function push<T> (ring: T[], item: T, size: number): void {
  ring.push(item)
  if (ring.length > size) ring.splice(0, ring.length - size)
}
