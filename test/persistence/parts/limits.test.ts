// The store's limits and their defaults.
import t from 'tap'
import { DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES, resolveLimits } from '../../../lib/persistence/parts/limits.js'

t.test('defaults: 1000 messages and 10 MiB per session, drop-oldest, retained unlimited', async (t) => {
  t.strictSame(resolveLimits(), {
    queues: { maxQueuedMessages: DEFAULT_MAX_QUEUED_MESSAGES, maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES, overflow: 'drop-oldest' },
    retained: { maxRetained: Infinity, maxRetainedPayload: Infinity }
  })
  t.equal(DEFAULT_MAX_QUEUED_MESSAGES, 1000)
  t.equal(DEFAULT_MAX_QUEUED_BYTES, 10 * 1024 * 1024)
})

t.test('a limit that is not a positive number falls back to its default; an unknown overflow policy is refused', async (t) => {
  const limits = resolveLimits({ maxQueuedMessages: 0, maxQueuedBytes: -1, maxRetained: 5, maxRetainedPayload: 100, overflow: 'refuse' })
  t.strictSame(limits.queues, { maxQueuedMessages: 1000, maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES, overflow: 'refuse' })
  t.strictSame(limits.retained, { maxRetained: 5, maxRetainedPayload: 100 })
  t.throws(() => resolveLimits({ overflow: 'drop-newest' as never }), TypeError)
})
