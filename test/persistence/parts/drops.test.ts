// Drop reports alone: counts, listeners, one log line per burst.
import t from 'tap'
import { Drops } from '../../../lib/persistence/parts/drops.js'
import type { DropEvent } from '../../../lib/persistence/types.js'
import { captureLogger } from '../../helpers/store.js'

t.test('drops are counted by reason and reported to every listener until it unsubscribes', async (t) => {
  const drops = new Drops(undefined, 'drop-oldest')
  const events: DropEvent[] = []
  const off = drops.onDrop((e) => events.push(e))
  drops.onDrop(() => { throw new Error('a listener that throws does not stop the others') })
  drops.report('c', 'queue-full', 2)
  drops.report(null, 'expired', 1)
  drops.report('p', 'retained-limit', 1)
  t.strictSame(drops.counts(), { queueFull: 2, expired: 1, retainedLimit: 1 })
  t.strictSame(events, [{ clientId: 'c', reason: 'queue-full', count: 2 }, { clientId: null, reason: 'expired', count: 1 }, { clientId: 'p', reason: 'retained-limit', count: 1 }])
  off()
  drops.report('c', 'queue-full', 1)
  t.equal(events.length, 3, 'unsubscribed')
  const counts = drops.counts()
  counts.queueFull = 100
  t.equal(drops.counts().queueFull, 3, 'counts returns a copy')
})

t.test('a full queue is logged with the overflow policy; expiry is not logged', async (t) => {
  const { logger, lines } = captureLogger()
  const drops = new Drops(logger, 'refuse')
  drops.report('full-client', 'queue-full', 1)
  drops.report('full-client', 'expired', 5)
  await new Promise((resolve) => setImmediate(resolve))
  const warned = lines.filter((l) => l.reason === 'queue-full')
  t.equal(warned.length, 1)
  t.match(warned[0]?.msg, /"full-client" is full \(refuse\)/)
  t.equal(lines.filter((l) => l.reason === 'expired').length, 0)
})
