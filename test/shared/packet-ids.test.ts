/**
 * The dispatcher's packet id table (lib/shared/packet-ids.ts) against a Map:
 * ids handed out in sequence with wrap-around at 65535, acknowledged in and
 * out of order, so probing runs wrap the table and deletions shift keys back.
 */
import t from 'tap'
import { PacketIdTable } from '../../lib/shared/packet-ids.js'

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
