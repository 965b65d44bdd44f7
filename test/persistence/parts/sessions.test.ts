// Session records alone: the known fields only, copies out, the x:<cid> key.
import t from 'tap'
import { MemorySessions } from '../../../lib/persistence/parts/sessions.js'
import { disk } from '../../helpers/part-disk.js'

t.test('a record keeps only the known fields that are set, and is written as x:<encoded cid>', async (t) => {
  const d = disk()
  const sessions = new MemorySessions(d.io)
  await sessions.put('c/1', { expiresAt: 1000, willDelayUntil: undefined, expiryInterval: 60, owner: 'alice', extra: 1 } as never)
  t.strictSame(sessions.get('c/1'), { expiresAt: 1000, expiryInterval: 60, owner: 'alice' })
  t.strictSame(d.record('x:c%2F1'), { expiresAt: 1000, expiryInterval: 60, owner: 'alice' })
  const copy = sessions.get('c/1')
  if (copy !== undefined) copy.expiresAt = 5
  t.equal(sessions.get('c/1')?.expiresAt, 1000, 'get returns a copy')
})

t.test('willDelayUntil, list and delete', async (t) => {
  const d = disk()
  const sessions = new MemorySessions(d.io)
  await sessions.put('a', { expiresAt: null, willDelayUntil: 42 })
  sessions.restore('b', { expiresAt: 7 })
  t.equal(sessions.willDelayUntil('a'), 42)
  t.equal(sessions.willDelayUntil('b'), undefined)
  t.strictSame(sessions.list(), [{ clientId: 'a', meta: { expiresAt: null, willDelayUntil: 42 } }, { clientId: 'b', meta: { expiresAt: 7 } }])
  t.equal(sessions.size, 2)
  await sessions.delete('a')
  t.equal(sessions.delete('a'), undefined, 'a second delete writes nothing')
  t.equal(sessions.get('a'), undefined)
  t.strictSame(d.keys(), [], 'the record is gone from disk; the restored one was never written')
})

t.test('the same record again is not written once it is on disk; a changed one is', async (t) => {
  const d = disk()
  const sessions = new MemorySessions(d.io)
  const ops = (): number => d.io.backend?.writer.counters.ops ?? 0
  const first = sessions.put('p', { expiresAt: null, owner: 'n1' })
  t.equal(sessions.put('p', { expiresAt: null, owner: 'n1' }) === undefined, false, 'not yet on disk: written again')
  await first
  await sessions.put('p', { expiresAt: null, owner: 'n1' })
  const before = ops()
  t.equal(sessions.put('p', { expiresAt: null, owner: 'n1' }), undefined, 'on disk: nothing to write')
  await sessions.put('p', { expiresAt: null, owner: 'n2' })
  t.equal(ops() - before, 1, 'the changed owner is written')
  t.strictSame(d.record('x:p'), { expiresAt: null, owner: 'n2' })
  sessions.restore('q', { expiresAt: null })
  t.equal(sessions.put('q', { expiresAt: null }), undefined, 'a loaded record is on disk')
  await sessions.delete('q')
  await sessions.put('q', { expiresAt: null })
  t.strictSame(d.record('x:q'), { expiresAt: null }, 'after a delete the record is written again')
})
