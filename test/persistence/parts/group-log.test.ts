// The group log alone: members and messages, written through, and the
// in-memory fallback lib/shared uses.
import t from 'tap'
import { MemoryGroupLog, StoreGroupLog, type GroupLog, type StoredMessage } from '../../../lib/persistence/parts/group-log.js'
import { disk } from '../../helpers/part-disk.js'

async function all<T> (items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

const message = (topic: string): StoredMessage => ({ topic, payload: Buffer.from('p'), qos: 1, retain: false, messageExpiry: 123, publisherId: 'pub' })

for (const [name, make] of [['StoreGroupLog', () => new StoreGroupLog(disk().io)], ['MemoryGroupLog', () => new MemoryGroupLog()]] as Array<[string, () => GroupLog]>) {
  t.test(`${name}: members and messages per group, in seq order`, async (t) => {
    const log = make()
    await log.putMember({ group: 'g', clientId: 'a', qos: 1 })
    await log.putMember({ group: 'g', clientId: 'b', qos: 2 })
    await log.delMember('g', 'a')
    t.strictSame((await all(log.members())).map((m) => m.clientId), ['b'])
    await log.putMessage('g', 1, message('one'))
    await log.putMessage('g', 2, message('two'))
    await log.putMessage('h', 1, message('other'))
    await log.delMessage('g', 1)
    t.strictSame((await all(log.messages())).map((e) => [e.group, e.seq, e.message.topic]), [['g', 2, 'two'], ['h', 1, 'other']])
    t.equal(log.delMessage('g', 99), undefined, 'deleting what is not there waits for nothing')
  })
}

t.test('StoreGroupLog writes gm: and gq: keys, leaves groups with a session, and restores', async (t) => {
  const d = disk()
  const log = new StoreGroupLog(d.io)
  await log.putMember({ group: 'g/1', clientId: 'c', qos: 1 })
  await log.putMember({ group: 'g/2', clientId: 'c', qos: 1 })
  await log.putMessage('g/1', 16, message('m'))
  t.strictSame(d.keys(), ['gm:g%2F1:c', 'gm:g%2F2:c', 'gq:g%2F1:0000000000000010'])
  await log.removeClient('c')
  t.strictSame(await all(log.members()), [])
  t.strictSame(d.keys(), ['gq:g%2F1:0000000000000010'])
  const fresh = new StoreGroupLog(disk().io)
  fresh.restoreMember({ group: 'g', clientId: 'x', qos: 2 })
  fresh.restoreMessage('g', 3, { cmd: 'publish', topic: 't', payload: 'text', qos: 2, retain: true, messageExpiry: 5, publisherId: 'p' })
  t.strictSame((await all(fresh.members())).map((m) => m.clientId), ['x'])
  const [entry] = await all(fresh.messages())
  t.strictSame(entry?.message, { topic: 't', payload: Buffer.from('text'), qos: 2, retain: true, messageExpiry: 5, publisherId: 'p' })
})

t.test('StoreGroupLog refuses writes once the store is closed', async (t) => {
  const d = disk(false)
  const log = new StoreGroupLog(d.io)
  t.equal(log.putMessage('g', 1, message('m')), undefined, 'in memory only: nothing to wait for')
  d.io.closed = true
  await t.rejects(log.putMember({ group: 'g', clientId: 'c', qos: 1 }), { code: 'CULEX_ERR_PERSISTENCE_CLOSED' })
  t.throws(() => log.putMessage('g', 2, message('m')), { code: 'CULEX_ERR_PERSISTENCE_CLOSED' })
})
