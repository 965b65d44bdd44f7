/**
 * One timer for many deadlines that move often and rarely expire: the
 * keep-alives of idle connections (aedes-internals.ts `wheelKeepAlive`).
 * A Node Timeout per connection, with its callback's closure, was about
 * 250 bytes per idle connection (heap snapshot,
 * benchmarks/heap-per-connection.ts); an entry here is an object of two
 * fields in a slot array.
 *
 * Entries are filed by deadline into slots of `tickMs`; moving a deadline
 * only changes `due` (no re-filing), and a slot's entries are looked at
 * once its time has come: an entry whose deadline moved on is filed again,
 * an entry no longer armed is forgotten, the rest expire. An entry never
 * expires before its deadline, and at most `tickMs` (plus the event loop's
 * lag) after it.
 */

import { performance } from 'node:perf_hooks'

/** ms on a monotonic clock, as Node's timers use: a step of the wall clock neither expires nor holds keep-alives */
export function wheelNow (): number {
  return performance.now()
}

export interface WheelEntry {
  /** the deadline, on `wheelNow()`'s clock */
  due: number
  /** false: the owner dropped it; it is forgotten at its slot */
  readonly armed: boolean
  expire (): void
}

export class TimerWheel {
  private readonly slots = new Map<number, WheelEntry[]>()
  private timer: NodeJS.Timeout | undefined = undefined
  /** the first slot not looked at yet */
  private next = 0
  private size = 0

  constructor (private readonly tickMs: number) {}

  get entries (): number { return this.size }

  add (entry: WheelEntry): void {
    if (this.timer === undefined) {
      this.next = Math.floor(wheelNow() / this.tickMs)
      this.timer = setInterval(turn, this.tickMs, this)
      // the sockets keep the process alive, not their keep-alives
      this.timer.unref()
    }
    this.file(entry)
  }

  private file (entry: WheelEntry): void {
    // slot s is looked at once wheelNow() >= s * tickMs, never before `due`
    // (or the next one looked at, for a deadline already past)
    const slot = Math.max(Math.ceil(entry.due / this.tickMs), this.next)
    const list = this.slots.get(slot)
    if (list === undefined) this.slots.set(slot, [entry])
    else list.push(entry)
    this.size++
  }

  /** Looks at every slot whose time has come. */
  turn (): void {
    const now = wheelNow()
    const last = Math.floor(now / this.tickMs)
    for (let slot = this.next; slot <= last; slot++) {
      // what an expiry files meanwhile goes to a later slot
      this.next = slot + 1
      const list = this.slots.get(slot)
      if (list === undefined) continue
      this.slots.delete(slot)
      this.size -= list.length
      for (const entry of list) {
        if (!entry.armed) continue
        if (entry.due > now) this.file(entry)
        else entry.expire()
      }
    }
    this.next = last + 1
    if (this.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

function turn (wheel: TimerWheel): void {
  wheel.turn()
}
