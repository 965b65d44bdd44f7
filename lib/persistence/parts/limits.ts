// The store's limits (PersistenceLimits) with their defaults, as the parts
// take them: per-session queue bounds and the overflow policy, retained bounds.
import type { PersistenceLimits } from '../types.js'
import type { QueueLimits } from './queue-index.js'
import type { RetainedLimits } from './retained.js'

export const DEFAULT_MAX_QUEUED_MESSAGES = 1000
export const DEFAULT_MAX_QUEUED_BYTES = 10 * 1024 * 1024

export function resolveLimits (limits: PersistenceLimits = {}): { queues: QueueLimits, retained: RetainedLimits } {
  const overflow = limits.overflow ?? 'drop-oldest'
  if (overflow !== 'drop-oldest' && overflow !== 'refuse') {
    throw new TypeError(`limits.overflow must be 'drop-oldest' or 'refuse', got ${String(overflow)}`)
  }
  return {
    queues: {
      maxQueuedMessages: positiveOr(limits.maxQueuedMessages, DEFAULT_MAX_QUEUED_MESSAGES),
      maxQueuedBytes: positiveOr(limits.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES),
      overflow
    },
    retained: {
      maxRetained: positiveOr(limits.maxRetained, Infinity),
      maxRetainedPayload: positiveOr(limits.maxRetainedPayload, Infinity)
    }
  }
}

function positiveOr (value: number | undefined, fallback: number): number {
  return typeof value === 'number' && value > 0 ? value : fallback
}
