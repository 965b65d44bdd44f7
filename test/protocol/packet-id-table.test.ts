// lib/protocol/packet-id-table.ts against a Map: whatever sequence of sets
// and deletes (ids clustered, as clients count them, or scattered over the
// whole 16-bit range, including 0, which a malformed PUBLISH may carry),
// get, has, delete and size agree; ids handed out in sequence with
// wrap-around at 65535 and acknowledged in and out of order (the shared
// dispatcher's use) make probing runs wrap the table and deletions shift
// keys back, and forEach lists exactly what is held.
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

function lcg (seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
}

t.test('behaves like a Map of packet ids', async (t) => {
  for (let round = 0; round < 20; round++) {
    const rnd = lcg(round + 1)
    const table = new PacketIdTable<number>()
    const map = new Map<number, number>()
    let next = 1 + Math.floor(rnd() * 65535)
    // even rounds acknowledge near the oldest (in order), odd rounds anywhere
    const spread = round % 2 === 0 ? 5 : Infinity
    let mismatches = 0
    for (let op = 0; op < 5000; op++) {
      const r = rnd()
      if (r < 0.5 && map.size < 1000) {
        table.set(next, op)
        map.set(next, op)
        next = next >= 65535 ? 1 : next + 1
      } else if (r < 0.9 && map.size > 0) {
        const keys = [...map.keys()]
        const id = keys[Math.floor(rnd() * Math.min(keys.length, spread))] as number
        if (table.delete(id) !== map.delete(id)) mismatches++
      } else {
        const id = 1 + Math.floor(rnd() * 65535)
        if (table.get(id) !== map.get(id)) mismatches++
      }
      if (table.size !== map.size) mismatches++
    }
    for (const [id, value] of map) if (table.get(id) !== value) mismatches++
    const seen = new Map<number, number>()
    table.forEach((value, id) => seen.set(id, value))
    t.same(seen, map, `round ${round}: forEach lists exactly what is held`)
    t.equal(mismatches, 0, `round ${round}: get/delete/size agree with a Map`)
  }
})

t.test('replaces the value of an id already held', async (t) => {
  const table = new PacketIdTable<string>()
  table.set(7, 'a')
  table.set(7, 'b')
  t.equal(table.size, 1)
  t.equal(table.get(7), 'b')
  t.equal(table.delete(7), true)
  t.equal(table.delete(7), false)
  t.equal(table.get(7), undefined)
})
