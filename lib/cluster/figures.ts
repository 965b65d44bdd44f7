/**
 * Cluster totals: each node writes its own figures (connections, subscriptions, messages)
 * to a hash `{culex}:figures:{node}` every renewal, expiring with its lease, so
 * a node that died stops counting when its lease does; the totals are the
 * sums over the live nodes' hashes. Read only when asked ($SYS).
 */
import type { Logger } from 'pino'
import { CLUSTER_PREFIX } from './keys.js'
import type { RedisPair } from './redis.js'

export const figuresKey = (nodeId: string): string => `${CLUSTER_PREFIX}figures:{${nodeId}}`

/** What a node reports, each a whole number. */
export type NodeFigures = Record<string, number>

export class Figures {
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private started = false

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly leaseMs: number,
    private readonly everyMs: number
  ) {}

  /** Writes `read()` now and every `everyMs` until stop(). */
  start (read: () => NodeFigures): void {
    if (this.started) return
    this.started = true
    const tick = (): void => {
      if (this.stopped) return
      this.write(read()).catch((err: unknown) => { this.logger.debug({ err }, 'cluster: writing this node\'s figures failed; the next renewal retries') })
        .finally(() => { if (!this.stopped) this.timer = setTimeout(tick, this.everyMs) })
    }
    tick()
  }

  async write (figures: NodeFigures): Promise<void> {
    const key = figuresKey(this.nodeId)
    const fields = Object.entries(figures).flatMap(([k, v]) => [k, String(Math.trunc(v))])
    if (fields.length === 0) return
    await this.redis.commands.multi().del(key).hset(key, ...fields).pexpire(key, this.leaseMs).exec()
  }

  /** Each figure summed over `nodes` (those whose figures have expired count nothing). */
  async totals (nodes: readonly string[]): Promise<NodeFigures> {
    const pipeline = this.redis.commands.pipeline()
    for (const node of nodes) pipeline.hgetall(figuresKey(node))
    const replies = await pipeline.exec() ?? []
    const sum: NodeFigures = {}
    for (const [err, hash] of replies) {
      if (err !== null || hash === null || typeof hash !== 'object') continue
      for (const [k, v] of Object.entries(hash as Record<string, string>)) {
        const n = Number(v)
        if (Number.isFinite(n)) sum[k] = (sum[k] ?? 0) + n
      }
    }
    return sum
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.redis.commands.del(figuresKey(this.nodeId)).catch(() => {})
  }
}
