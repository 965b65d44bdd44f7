// Messages the store did not keep (queue limits, expiry, retained limits):
// counted for stats(), reported to onDrop listeners, and logged once per burst.
import type { Logger } from 'pino'
import { repeatedLog } from '../../repeated-log.js'
import type { DropEvent, DropReason, OverflowPolicy } from '../types.js'

export interface DropCounts { queueFull: number, expired: number, retainedLimit: number }

/** What a part calls when it drops a message. */
export interface DropReporter {
  report (clientId: string | null, reason: DropReason, count: number, detail?: Record<string, unknown>): void
}

export class Drops implements DropReporter {
  readonly #counts: DropCounts = { queueFull: 0, expired: 0, retainedLimit: 0 }
  readonly #listeners = new Set<(event: DropEvent) => void>()

  constructor (private readonly logger: Logger | undefined, private readonly overflow: OverflowPolicy) {}

  counts (): DropCounts {
    return { ...this.#counts }
  }

  onDrop (listener: (event: DropEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  report (clientId: string | null, reason: DropReason, count: number, detail?: Record<string, unknown>): void {
    if (reason === 'queue-full') this.#counts.queueFull += count
    else if (reason === 'expired') this.#counts.expired += count
    else this.#counts.retainedLimit += count
    for (const listener of this.#listeners) {
      try {
        listener({ clientId, reason, count })
      } catch (err) {
        this.logger?.error({ err }, 'persistence drop listener threw')
      }
    }
    // expiry is the message's own lifetime running out: normal, not logged
    if (reason === 'expired' || this.logger === undefined) return
    // a count per session and reason per interval, not a line per message (lib/repeated-log.ts)
    const msg = reason === 'queue-full'
      ? `offline queue of ${JSON.stringify(clientId)} is full (${this.overflow}): messages dropped`
      : 'retained message refused: retained limit reached'
    repeatedLog.log(this.logger, 'warn', reason + '\u0000' + (clientId ?? ''), { clientId, reason, ...detail }, msg, count)
  }
}
