/**
 * MatchingSubscribers (lib/broker/subscribers.ts), which decides PUBACK 0x10
 * (No matching subscribers, spec 3.4.2.1), against stubs of the live
 * subscriptions, the store and the shared groups.
 */
import t from 'tap'
import { MatchingSubscribers, SUBSCRIPTION_EVENTS, type SubscribersContext } from '../../lib/broker/subscribers.js'
import type { LiveSubscriptions } from '../../lib/aedes-internals.js'

interface Options {
  known?: number
  live?: number
  holds?: boolean
  storedSync?: boolean
  storedAsync?: number
  group?: boolean
}

function setup (o: Options) {
  const asked: string[] = []
  const live: Pick<LiveSubscriptions, 'count' | 'known'> = {
    known: () => o.known,
    count: () => { asked.push('live'); return o.live ?? 0 }
  }
  const store: ReturnType<SubscribersContext['store']> = {
    ...(o.holds !== undefined ? { holdsSubscriptions: () => o.holds as boolean } : {}),
    ...(o.storedSync !== undefined ? { hasSubscriptionsFor: () => { asked.push('store'); return o.storedSync as boolean } } : {}),
    ...(o.storedAsync !== undefined ? { subscriptionsByTopic: async () => { asked.push('store async'); return new Array(o.storedAsync) } } : {})
  }
  const ctx: SubscribersContext = {
    shared: { hasGroupFor: () => { asked.push('group'); return o.group ?? false } },
    store: () => store
  }
  return { subscribers: new MatchingSubscribers(live, ctx), asked }
}

t.test('a live subscription aedes just matched settles it without asking anything', async (t) => {
  const { subscribers, asked } = setup({ known: 2, storedSync: false })
  t.equal(subscribers.has('a'), true)
  t.same(asked, [])
})

t.test('no live match and a store without subscriptions: only a shared group can match', async (t) => {
  t.equal(setup({ known: 0, holds: false }).subscribers.has('a'), false, '0x10')
  t.equal(setup({ known: 0, holds: false, group: true }).subscribers.has('a'), true, 'a group matches')
})

t.test('the store answers synchronously when it can, and the answer is cached until a subscription changes', async (t) => {
  const { subscribers, asked } = setup({ storedSync: false })
  t.equal(subscribers.has('a'), false)
  t.same(asked, ['store', 'live', 'group'])
  asked.length = 0
  t.equal(subscribers.has('a'), false, 'cached')
  t.same(asked, [])
  subscribers.changed()
  t.equal(subscribers.has('a'), false)
  t.same(asked, ['store', 'live', 'group'], 'asked again after a change')
})

t.test('a store that can only answer asynchronously is asked, and its answer cached', async (t) => {
  const { subscribers, asked } = setup({ storedAsync: 1 })
  t.equal(await subscribers.has('a'), true)
  asked.length = 0
  t.equal(subscribers.has('a'), true, 'cached')
  t.same(asked, [])
})

t.test('an answer found across a change is not cached', async (t) => {
  const { subscribers, asked } = setup({ storedAsync: 0 })
  const pending = subscribers.has('a')
  subscribers.changed()
  t.equal(await pending, false)
  asked.length = 0
  await subscribers.has('a')
  t.same(asked, ['live', 'group', 'store async'], 'asked again')
})

t.test('every aedes event that changes subscriptions forgets the answers', async (t) => {
  t.same([...SUBSCRIPTION_EVENTS], ['subscribe', 'unsubscribe', 'clientDisconnect', 'sessionExpired'])
})
