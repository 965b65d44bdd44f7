// The will store alone: copies in and out, and the w:<cid> key written through.
import t from 'tap'
import { decodePacket } from '../../../lib/persistence/codec.js'
import { MemoryWills } from '../../../lib/persistence/parts/wills.js'
import { disk } from '../../helpers/part-disk.js'

const will = () => ({ cmd: 'publish', topic: 'w/gone', payload: Buffer.from('bye'), qos: 1, retain: false, clientId: 'a:b' })

t.test('a will is stored as a copy, written under w:<encoded cid>, and handed out as copies', async (t) => {
  const d = disk()
  const wills = new MemoryWills(d.io)
  const packet = will()
  await wills.put('a:b', packet)
  packet.topic = 'changed'
  t.equal(wills.size, 1)
  t.equal(wills.get('a:b')?.topic, 'w/gone', 'the caller mutating its packet does not reach the store')
  const got = wills.get('a:b')
  if (got !== undefined) got.topic = 'mutated'
  t.equal(wills.get('a:b')?.topic, 'w/gone', 'get returns a copy')
  t.strictSame(d.keys(), ['w:a%3Ab'])
  t.equal(decodePacket(d.data.get('w:a%3Ab') as Uint8Array).topic, 'w/gone')
})

t.test('take removes the will and its key and returns it; delete of a missing will writes nothing', async (t) => {
  const d = disk()
  const wills = new MemoryWills(d.io)
  await wills.put('c', will())
  const taken = wills.take('c')
  t.equal(taken?.will.topic, 'w/gone')
  await taken?.written
  t.equal(wills.size, 0)
  t.strictSame(d.keys(), [])
  t.equal(wills.take('c'), undefined, 'nothing left to take')
  t.equal(wills.delete('c'), undefined, 'no will, no write')
})

t.test('restore fills the index without writing; entries lists every will', async (t) => {
  const d = disk()
  const wills = new MemoryWills(d.io)
  wills.restore('x', { ...will(), clientId: 'x' })
  wills.restore('y', { ...will(), clientId: 'y' })
  t.strictSame([...wills.entries()].map(([cid]) => cid), ['x', 'y'])
  t.strictSame(d.keys(), [], 'nothing written')
  await wills.delete('x')
  t.equal(wills.get('x'), undefined)
  t.equal(wills.size, 1)
})

t.test('without a backend (memory store) writes return undefined', async (t) => {
  const wills = new MemoryWills(disk(false).io)
  t.equal(wills.put('m', will()), undefined)
  t.equal(wills.get('m')?.topic, 'w/gone')
  t.equal(wills.delete('m'), undefined)
  t.equal(wills.size, 0)
})

t.test('due: the wills of brokers that are not alive, except those inside their Will Delay Interval', async (t) => {
  const wills = new MemoryWills(disk(false).io)
  wills.restore('alive', { ...will(), clientId: 'alive', brokerId: 'up' })
  wills.restore('orphan', { ...will(), clientId: 'orphan', brokerId: 'down' })
  wills.restore('delayed', { ...will(), clientId: 'delayed', brokerId: 'down' })
  wills.restore('delay-over', { ...will(), clientId: 'delay-over', brokerId: 'down' })
  const delays: Record<string, number> = { delayed: 2000, 'delay-over': 500 }
  const due = wills.due({ up: Date.now(), down: 0 }, (cid) => delays[cid], 1000)
  t.strictSame(due.map((w) => w.clientId), ['orphan', 'delay-over'])
  const first = due[0]
  if (first !== undefined) first.topic = 'mutated'
  t.equal(wills.get('orphan')?.topic, 'w/gone', 'copies')
})
