/**
 * A lock one node of the cluster holds at a time: `SET key {node} PX lockMs`,
 * taken by whoever finds it free and renewed by its holder every `renewMs`.
 * Cluster-wide timers (the wills' due set, wills.ts) run on the holder only;
 * when it dies, another node takes the lock at most `lockMs + renewMs` later.
 */
import type { Logger } from 'pino'
import type { RedisPair } from './redis.js'
import { Script } from './script.js'

/** KEYS: lock. ARGV: node id, lock ms. Returns 1 when this node holds the lock (taken or renewed). */
const TAKE_OR_RENEW = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

/** KEYS: lock. ARGV: node id. */
const GIVE_UP = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

export class TimerLock {
  private held = false
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (
    private readonly redis: RedisPair,
    private readonly key: string,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly lockMs = 3000,
    private readonly renewMs = 1000
  ) {}

  /** Tries at once, then every renewMs; `onTick(held)` after each try. */
  start (onTick: (held: boolean) => void): void {
    const tick = (): void => {
      if (this.stopped) return
      this.tryOnce().then(onTick, () => {}).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.renewMs)
      })
    }
    tick()
  }

  /** whether this node held the lock at its last try */
  holds (): boolean {
    return this.held && !this.stopped
  }

  private async tryOnce (): Promise<boolean> {
    let held: boolean
    try {
      held = Number(await TAKE_OR_RENEW.run(this.redis.commands, [this.key], [this.nodeId, this.lockMs])) === 1
    } catch {
      // no answer: the lock may expire meanwhile, so this node stops acting on it
      held = false
    }
    if (held !== this.held) this.logger.info({ lock: this.key, held }, held ? `cluster: this node runs the timers of ${this.key}` : `cluster: this node no longer runs the timers of ${this.key}`)
    this.held = held
    return held
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    if (this.held) await GIVE_UP.run(this.redis.commands, [this.key], [this.nodeId]).catch(() => {})
    this.held = false
  }
}
