/** lib/shared/replay.ts: dead letters waiting in a group go back into the groups they came from. */
import t from 'tap'
import pino from 'pino'
import { Group, type Entry } from '../../lib/shared/group.js'
import { replayDeadLetters, type ReplayHost } from '../../lib/shared/replay.js'
import { deadLetter } from '../../lib/shared/delivery.js'
import type { StoredMessage } from '../../lib/shared/store.js'

const log = pino({ level: 'silent' })

t.test('each dead letter goes to the groups of its name whose filter matches its topic; others are skipped and stay', async (t) => {
  const dlq = new Group('$share/dlq/$dlq/#', '$dlq/#')
  const jobs = new Group('$share/w/jobs/#', 'jobs/#')
  const other = new Group('$share/w/mail/#', 'mail/#')
  const gone = deadLetter('$dlq/{group}', '$share/gone/x', { topic: 'x', payload: Buffer.from('g'), qos: 1, retain: false }, { reason: 'rejected', clientId: 'c', deliveryCount: 1, reasonCode: 0x80 })
  const ok = deadLetter('$dlq/{group}', '$share/w/jobs/#', { topic: 'jobs/1', payload: Buffer.from('j'), qos: 1, retain: false }, { reason: 'max-deliveries', clientId: 'c', deliveryCount: 3 })
  const asStored = (d: { topic: string, payload: Buffer, properties: Record<string, unknown> }): StoredMessage => ({ topic: d.topic, payload: d.payload, qos: 1, retain: false, properties: d.properties })
  for (const [seq, d] of [[1, gone], [2, ok]] as const) dlq.pending.push(dlq.add(seq, asStored(d)))
  dlq.pending.push(dlq.add(3, { topic: '$dlq/x', payload: Buffer.from('plain'), qos: 1, retain: false }))
  const enqueued: Array<[string, StoredMessage]> = []
  const completed: Entry[] = []
  const host: ReplayHost = {
    group: (key) => key === dlq.key ? dlq : undefined,
    groups: () => [dlq, jobs, other],
    enqueue: async (g, message) => { enqueued.push([g.key, message]) },
    complete: async (g, e) => { completed.push(e); g.pending.splice(g.pending.indexOf(e), 1); g.remove(e) }
  }
  t.same(await replayDeadLetters(host, dlq.key, undefined, log), { replayed: 1, skipped: 2 })
  t.same(enqueued, [['$share/w/jobs/#', { topic: 'jobs/1', payload: Buffer.from('j'), qos: 1, retain: false }]])
  t.same(completed.map(e => e.seq), [2])
  t.same(dlq.pending.map(e => e.seq), [1, 3], 'the skipped ones stay')
  t.same(await replayDeadLetters(host, dlq.key, 1, log), { replayed: 0, skipped: 1 }, 'limit')
  t.equal(await replayDeadLetters(host, 'nope', undefined, log), undefined)
})
