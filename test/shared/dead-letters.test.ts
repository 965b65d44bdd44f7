/** lib/shared/dead-letters.ts: given-up messages published or dropped and counted; dead letters read back. */
import t from 'tap'
import pino from 'pino'
import { Group } from '../../lib/shared/group.js'
import { DeadLetters, replayable } from '../../lib/shared/dead-letters.js'
import { deadLetter } from '../../lib/shared/delivery.js'
import type { StoredMessage } from '../../lib/shared/store.js'

const log = pino({ level: 'silent' })
const m: StoredMessage = { topic: 'jobs/1', payload: Buffer.from('p'), qos: 2, retain: false, properties: { contentType: 'c', userProperties: { k: 'v' } } }

t.test('without a dead-letter topic: dropped and counted; a poison message counted as poison too', async (t) => {
  const published: unknown[] = []
  const dl = new DeadLetters({ publish: (p: unknown) => { published.push(p) } } as never, log)
  const g = new Group('$share/w/jobs/#', 'jobs/#')
  const e = g.add(1, m)
  dl.giveUp(g, e, { reason: 'rejected', clientId: 'c', deliveryCount: 1, reasonCode: 0x80 })
  dl.giveUp(g, e, { reason: 'max-deliveries', clientId: 'c', deliveryCount: 10 })
  t.same(published, [])
  t.equal(g.dropped, 2)
  t.equal(g.poison, 1)
  t.equal(g.deadLettered, 0)
})

t.test('with the group\'s dead-letter topic: published, counted by reason', async (t) => {
  const published: Array<{ topic: string }> = []
  const dl = new DeadLetters({ publish: (p: { topic: string }) => { published.push(p) } } as never, log)
  const g = new Group('$share/w/jobs/#', 'jobs/#')
  g.policy = { ...g.policy, deadLetterTopic: '$dlq/{group}/{topic}' }
  dl.giveUp(g, g.add(1, m), { reason: 'max-deliveries', clientId: 'c', deliveryCount: 10 })
  t.same(published.map(p => p.topic), ['$dlq/w/jobs/1'])
  t.same(g.deadLetteredBy, { rejected: 0, 'max-deliveries': 1 })
  t.equal(g.poison, 1)
})

t.test('replayable: the original message back from a dead letter; undefined for other messages', async (t) => {
  const d = deadLetter('$dlq/{group}', '$share/w/jobs/#', m, { reason: 'rejected', clientId: 'c', deliveryCount: 3, reasonCode: 0x80, reasonString: 'no' })
  t.same(replayable({ topic: d.topic, payload: d.payload, qos: 1, retain: false, properties: { ...d.properties, subscriptionIdentifier: 4 } }), {
    group: 'w',
    message: { topic: 'jobs/1', payload: m.payload, qos: 1, retain: false, properties: { contentType: 'c', userProperties: { k: 'v' } } }
  })
  t.equal(replayable({ topic: 'x', payload: Buffer.alloc(0), qos: 1, retain: false }), undefined)
  const bare = deadLetter('d', '$share/w/a', { topic: 'a', payload: Buffer.alloc(0), qos: 1, retain: false }, { reason: 'max-deliveries', clientId: undefined, deliveryCount: 2 })
  t.same(replayable({ topic: 'd', payload: bare.payload, qos: 1, retain: false, properties: bare.properties })?.message, { topic: 'a', payload: Buffer.alloc(0), qos: 1, retain: false }, 'no properties left')
})
