// The body cache budget alone.
import t from 'tap'
import { BodyCache } from '../../../lib/persistence/parts/body-cache.js'
import { disk } from '../../helpers/part-disk.js'

t.test('bodies are accounted while they fit the budget; one that does not is let go only with a backend', async (t) => {
  const cache = new BodyCache(10, disk().io)
  const a = { cached: 0, body: { cmd: 'publish' } }
  const b = { cached: 0, body: { cmd: 'publish' } }
  cache.admit(a, 6)
  cache.admit(b, 6)
  t.equal(a.cached, 6)
  t.equal(b.cached, 0, 'over the budget: not accounted')
  t.equal(cache.used, 6)
  cache.evictIfUnaccounted(a)
  cache.evictIfUnaccounted(b)
  t.ok(a.body, 'an accounted body stays')
  t.equal(b.body, undefined, 'an unaccounted body is read from disk from now on')
  cache.uncache(a)
  t.equal(cache.used, 0)
  t.equal(a.cached, 0)
  t.ok(cache.take(10))
  t.notOk(cache.take(1))
  cache.release(10)
  t.equal(cache.used, 0)
})

t.test('without a backend (memory store) no body is ever let go', async (t) => {
  const cache = new BodyCache(0, disk(false).io)
  const entry = { cached: 0, body: { cmd: 'publish' } }
  cache.admit(entry, 5)
  cache.evictIfUnaccounted(entry)
  t.ok(entry.body)
})
