/** lib/shared/retries.ts: delivery counts in the log, backoff, ack timeouts, against a stub dispatcher. */
import t from 'tap'
import pino from 'pino'
import { Group, newMember, type Entry, type Member } from '../../lib/shared/group.js'
import { Retries, clearTimer, type RetryHost } from '../../lib/shared/retries.js'
import { MemoryShareStore, type StoredMessage } from '../../lib/shared/store.js'
import { sleep } from '../helpers/wait.js'

const log = pino({ level: 'silent' })

function setup (policy: Partial<Group['policy']> = {}): { g: Group, e: Entry, m: Member, retries: Retries, calls: string[], writes: StoredMessage[] } {
  const g = new Group('$share/w/a', 'a')
  g.policy = { ...g.policy, ...policy }
  const m = newMember('m1', 1, undefined, false, false, undefined, 0)
  g.members.set('m1', m)
  const e = g.add(1, { topic: 'a', payload: Buffer.from('x'), qos: 1, retain: false })
  const calls: string[] = []
  const writes: StoredMessage[] = []
  const store = new MemoryShareStore()
  const put = store.putMessage.bind(store)
  store.putMessage = (group, seq, message) => { writes.push({ ...message }); return put(group, seq, message) }
  const host: RetryHost = {
    drain: () => { calls.push('drain') },
    unassign: (_g, _m, entry, redelivery, requeue) => {
      calls.push(`unassign ${String(redelivery)} ${String(requeue)}`)
      entry.assignedTo = undefined
      if (requeue) g.requeue(entry)
    },
    untrack: (_c, id) => { calls.push(`untrack ${id}`) }
  }
  return { g, e, m, retries: new Retries(store, host, log), calls, writes }
}

t.test('count: the first delivery is not written, every later one is, with the last member', async (t) => {
  const { g, e, m, retries, writes } = setup()
  retries.count(g, e, m)
  t.equal(e.message.deliveryCount, 1)
  t.same(writes, [], 'no write for a first delivery')
  retries.count(g, e, m)
  t.equal(writes.length, 1)
  t.match(writes[0], { deliveryCount: 2, lastMember: 'm1' })
})

t.test('abandon: taken back without requeue, written with its backoff deadline, offered after it', async (t) => {
  const { g, e, m, retries, calls, writes } = setup({ retryBackoff: { initial: 60, factor: 2, max: 1000 } })
  retries.count(g, e, m)
  e.assignedTo = 'm1'
  const before = Date.now()
  retries.abandon(g, e, undefined)
  t.equal(g.abandoned, 1)
  t.equal(g.delayed, 1)
  t.same(calls, ['unassign false false'])
  t.ok((writes[0]?.notBefore ?? 0) >= before + 60, 'the deadline is in the log')
  t.same(g.pending, [], 'not offered yet')
  await sleep(120)
  t.same(g.pending, [e], 'offered after the backoff')
  t.equal(g.delayed, 0)
  t.equal(e.message.notBefore, undefined)
  t.same(calls, ['unassign false false', 'drain'])
})

t.test('abandon with a delay asked for; a deadline that passed (after a restart) is offered at once', async (t) => {
  const { g, e, retries } = setup({ retryBackoff: { initial: 10000, factor: 1, max: 10000 } })
  e.assignedTo = 'm1'
  retries.abandon(g, e, 0)
  await sleep(20)
  t.same(g.pending, [e], 'the delay asked for, not the 10 s backoff')
  const late = g.add(2, { topic: 'a', payload: Buffer.from('y'), qos: 1, retain: false, notBefore: Date.now() - 5 })
  retries.offerLater(g, late)
  t.same(g.pending, [e, late])
})

t.test('a waiting message whose timer is cleared no longer counts as delayed', async (t) => {
  const { g, e, retries } = setup()
  e.assignedTo = 'm1'
  retries.abandon(g, e, 5000)
  t.equal(g.delayed, 1)
  clearTimer(e)
  t.equal(g.delayed, 0)
  t.equal(e.timer, undefined)
})

t.test('ack timeout: off by default; when set, the delivery is untracked, taken back, and its holder avoided', async (t) => {
  const off = setup()
  off.retries.armAckTimeout(off.g, off.e, 1)
  t.equal(off.e.timer, undefined, 'no timer without ackTimeout')

  const { g, e, retries, calls } = setup({ ackTimeout: 30 })
  e.assignedTo = 'm1'
  e.delivery = 7
  e.forwardedTo = {}
  e.messageId = 42
  retries.armAckTimeout(g, e, 7)
  await sleep(80)
  t.same(calls, ['untrack 42', 'unassign true true', 'drain'])
  t.equal(g.timedOut, 1)
  t.equal(e.avoid, 'm1')
})

t.test('ack timeout of a delivery that was acknowledged, or is another delivery now, does nothing', async (t) => {
  const { g, e, retries, calls } = setup({ ackTimeout: 20 })
  e.assignedTo = 'm1'
  e.delivery = 8
  retries.armAckTimeout(g, e, 7)
  await sleep(60)
  t.same(calls, [])
  t.equal(g.timedOut, 0)
})
