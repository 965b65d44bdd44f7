/**
 * The store as the broker uses it (lib/broker/store.ts): culex's stores and
 * aedes' in-memory one told apart, and the inbound QoS 2 lookup.
 */
import t from 'tap'
import { holdsIncoming, isCulexStore, sharedStoreOf } from '../../lib/broker/store.js'
import { createPersistence } from '../../lib/persistence/index.js'
import { MemoryShareStore } from '../../lib/shared/store.js'

t.test('culex\'s stores are told from aedes\' in-memory one by putSession', async (t) => {
  t.ok(isCulexStore(createPersistence({ kind: 'memory' })))
  t.notOk(isCulexStore({ subscriptionsByTopic: async () => [] }))
  t.notOk(isCulexStore(undefined))
})

t.test('shared groups use the store\'s own group store when it has one', async (t) => {
  const groups = new MemoryShareStore()
  t.equal(sharedStoreOf({ sharedStore: () => groups }), groups)
  t.equal(sharedStoreOf({}), undefined)
  t.equal(sharedStoreOf(undefined), undefined)
})

t.test('holdsIncoming: whether the store still holds an inbound QoS 2 message (PUBREL of an unknown id: PUBCOMP 0x92)', async (t) => {
  const asked: unknown[] = []
  const store = {
    incomingGetPacket: async (client: { id: string }, packet: { messageId: number }) => {
      asked.push([client.id, packet.messageId])
      return packet.messageId === 1 ? { cmd: 'publish' } : undefined
    }
  }
  t.equal(await holdsIncoming(store, 'c1', 1), true, 'held')
  t.equal(await holdsIncoming(store, 'c1', 2), false, 'not held')
  t.same(asked, [['c1', 1], ['c1', 2]])
  t.equal(await holdsIncoming({ incomingGetPacket: async () => { throw new Error('not found') } }, 'c1', 3), false, 'a lookup that fails: not held')
  t.equal(await holdsIncoming({}, 'c1', 4), true, 'a store that cannot tell: assumed held')
  t.equal(await holdsIncoming(undefined, 'c1', 4), true)
})
