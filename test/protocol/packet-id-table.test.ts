// lib/protocol/packet-id-table.ts against a Map: whatever sequence of sets
// and deletes (ids clustered, as clients count them, or scattered over the
// whole 16-bit range, including 0, which a malformed PUBLISH may carry),
// get, has, delete and size agree.
import t from 'tap'
import fc from 'fast-check'
import { PacketIdTable } from '../../lib/protocol/packet-id-table.js'

const clustered = fc.integer({ min: 1, max: 40 })
const scattered = fc.integer({ min: 0, max: 65535 })
const id = fc.oneof(clustered, scattered, fc.constantFrom(0, 16, 32, 48, 65535))
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), id, value: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), id })
)

t.test('agrees with a Map', async (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
    const table = new PacketIdTable<number>()
    const model = new Map<number, number>()
    for (const o of ops) {
      if (o.kind === 'set') {
        table.set(o.id, o.value)
        model.set(o.id, o.value)
      } else if (table.delete(o.id) !== model.delete(o.id)) {
        return false
      }
      if (table.size !== model.size) return false
    }
    for (let i = 0; i <= 64; i++) if (table.get(i) !== model.get(i) || table.has(i) !== model.has(i)) return false
    for (const [k, v] of model) if (table.get(k) !== v) return false
    return true
  }), { numRuns: 500 })
  t.pass('500 random sequences')
})

t.test('a client counting ids up with 100 in flight, through a wrap at 65535', async (t) => {
  const table = new PacketIdTable<string>()
  const next = (n: number): number => n >= 65535 ? 1 : n + 1
  let oldest = 65400
  let newest = oldest
  for (let i = 0; i < 100; i++) { table.set(newest, `m${newest}`); newest = next(newest) }
  let wrong = 0
  for (let i = 0; i < 1000; i++) {
    if (table.get(oldest) !== `m${oldest}` || !table.delete(oldest) || table.size !== 99) wrong++
    oldest = next(oldest)
    table.set(newest, `m${newest}`)
    newest = next(newest)
  }
  t.equal(wrong, 0, 'every acknowledged id found and removed')
  t.equal(table.size, 100)
  t.equal(table.get(oldest), `m${oldest}`)
  t.equal(table.has(65400), false)
})
