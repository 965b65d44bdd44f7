/**
 * Log lines for events that repeat per message or per packet (a message
 * dropped for a stuck subscriber, a refused filter or publish, an ACL
 * denial): the first of a kind is written at once, the repeats are counted
 * and written as one line carrying their count at the end of the interval.
 * One client under a flood would otherwise write a line per message (192,084
 * warnings, 36 MB, in 5 s), and a log could be used to fill a disk.
 *
 * A kind is a sink (a connection's logger, or a module's) and a key (the
 * reason, with whatever else tells repeats apart, such as a group or client
 * id): "a count per client and reason per interval".
 */

export type RepeatedLevel = 'debug' | 'info' | 'warn' | 'error'

/** What is logged to: a pino Logger, or a connection's ConnectionLogger. */
export interface RepeatedSink {
  isLevelEnabled (level: RepeatedLevel): boolean
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

interface Entry {
  sink: RepeatedSink
  level: RepeatedLevel
  msg: string
  /** the fields of the latest repeat */
  fields: Record<string, unknown>
  /** repeats since the last line */
  count: number
}

export const REPEAT_INTERVAL_MS = 10_000
/** kinds tracked at once; beyond, repeats of new kinds are counted per message, across sinks */
const MAX_KINDS = 10_000

export class RepeatedLog {
  private readonly bySink = new Map<RepeatedSink, Map<string, Entry>>()
  /** kinds past MAX_KINDS, by level and message */
  private readonly overflow = new Map<string, Entry>()
  private kinds = 0
  private timer: NodeJS.Timeout | undefined = undefined

  constructor (private readonly intervalMs = REPEAT_INTERVAL_MS, private readonly maxKinds = MAX_KINDS) {}

  /**
   * `count` events of kind (`sink`, `key`): written at once with their count
   * if the kind was quiet, otherwise counted into the kind's next line.
   */
  log (sink: RepeatedSink, level: RepeatedLevel, key: string, fields: Record<string, unknown>, msg: string, count = 1): void {
    if (!sink.isLevelEnabled(level)) return
    let kinds = this.bySink.get(sink)
    const entry = kinds?.get(key)
    if (entry !== undefined) {
      entry.count += count
      entry.fields = fields
      return
    }
    if (this.kinds >= this.maxKinds) {
      this.countOverflow(sink, level, fields, msg, count)
      return
    }
    sink[level]({ ...fields, count }, msg)
    if (kinds === undefined) this.bySink.set(sink, kinds = new Map())
    kinds.set(key, { sink, level, msg, fields, count: 0 })
    this.kinds++
    this.schedule()
  }

  /** Writes every count still pending (at shutdown). */
  flush (): void {
    this.tick(true)
  }

  private countOverflow (sink: RepeatedSink, level: RepeatedLevel, fields: Record<string, unknown>, msg: string, count: number): void {
    const key = level + '\u0000' + msg
    const entry = this.overflow.get(key)
    if (entry !== undefined) {
      entry.count += count
      return
    }
    this.overflow.set(key, { sink, level, msg, fields: { ...fields, kinds: 'many' }, count })
    this.schedule()
  }

  private schedule (): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => this.tick(false), this.intervalMs)
    this.timer.unref()
  }

  /**
   * End of an interval: a kind that repeated gets its line and stays
   * (its next repeats are counted again); a quiet one is forgotten, so its
   * next event is written at once.
   */
  private tick (all: boolean): void {
    for (const [sink, kinds] of this.bySink) {
      for (const [key, entry] of kinds) {
        if (entry.count > 0) {
          write(entry)
          if (!all) continue
        }
        kinds.delete(key)
        this.kinds--
      }
      if (kinds.size === 0) this.bySink.delete(sink)
    }
    for (const entry of this.overflow.values()) write(entry)
    this.overflow.clear()
    if (this.kinds === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

function write (entry: Entry): void {
  entry.sink[entry.level]({ ...entry.fields, count: entry.count, repeated: true }, entry.msg)
  entry.count = 0
}

/** The process's one RepeatedLog: every broker in it writes through it. */
export const repeatedLog = new RepeatedLog()
