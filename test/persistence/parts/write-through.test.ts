// The write-through target alone.
import t from 'tap'
import { encodeRecord } from '../../../lib/persistence/codec.js'
import { WriteThrough } from '../../../lib/persistence/parts/write-through.js'
import { disk } from '../../helpers/part-disk.js'

t.test('without a backend writes are nothing and reads find nothing', async (t) => {
  const io = new WriteThrough()
  t.notOk(io.durable)
  t.equal(io.put('k', Buffer.from('v')), undefined)
  t.equal(io.del('k'), undefined)
  t.strictSame(await io.read(['a', 'b']), [undefined, undefined])
})

t.test('with a backend a write resolves once it is in the batch written', async (t) => {
  const d = disk()
  t.ok(d.io.durable)
  const written = d.io.put('k', encodeRecord({ a: 1 }))
  t.ok(written instanceof Promise)
  t.equal(d.data.size, 0, 'not before the batch is written')
  await written
  t.strictSame(d.record('k'), { a: 1 })
  await d.io.del('k')
  t.equal(d.data.size, 0)
})

t.test('checkOpen throws once closed', async (t) => {
  const io = new WriteThrough()
  t.doesNotThrow(() => io.checkOpen())
  io.closed = true
  t.throws(() => io.checkOpen(), { code: 'CULEX_ERR_PERSISTENCE_CLOSED' })
})

t.test('silently: changes made inside are not written', async (t) => {
  const d = disk()
  let inside: Promise<void> | undefined
  d.io.silently(() => { inside = d.io.put('k', encodeRecord({ a: 1 })) })
  t.equal(inside, undefined, 'no write issued')
  await d.io.put('other', encodeRecord({ b: 2 }))
  t.strictSame(d.keys(), ['other'], 'and writes after it go through')
})
