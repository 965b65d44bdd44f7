// lib/protocol/timer-wheel.ts: an entry expires once, never before its
// deadline, and within a tick or so after it; a deadline moved on is kept to;
// an entry its owner dropped never expires; the wheel's timer stops when it
// holds nothing. Deadlines are a few hundred ms on the real clock (the lower
// bounds are what the keep-alive must keep; the upper ones are generous).
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { TimerWheel, wheelNow, type WheelEntry } from '../../lib/protocol/timer-wheel.js'

class Entry implements WheelEntry {
  armed = true
  expiredAt: number[] = []
  constructor (public due: number) {}
  expire (): void { this.expiredAt.push(wheelNow()) }
}

t.test('expires once, not before its deadline', async (t) => {
  const wheel = new TimerWheel(20)
  const start = wheelNow()
  const early = new Entry(start + 60)
  const late = new Entry(start + 150)
  wheel.add(late)
  wheel.add(early)
  await sleep(100)
  t.equal(early.expiredAt.length, 1, 'the early one expired')
  t.ok((early.expiredAt[0] as number) >= early.due, 'not before its deadline')
  t.equal(late.expiredAt.length, 0, 'the late one not yet')
  await sleep(150)
  t.equal(late.expiredAt.length, 1, 'then the late one, once')
  t.ok((late.expiredAt[0] as number) >= late.due)
  t.equal(early.expiredAt.length, 1, 'the early one not again')
  t.equal(wheel.entries, 0, 'nothing left')
})

t.test('a deadline moved on is kept to; a dropped entry never expires', async (t) => {
  const wheel = new TimerWheel(20)
  const moved = new Entry(wheelNow() + 40)
  const dropped = new Entry(wheelNow() + 40)
  wheel.add(moved)
  wheel.add(dropped)
  await sleep(20)
  moved.due = wheelNow() + 120
  dropped.armed = false
  await sleep(60)
  t.equal(moved.expiredAt.length, 0, 'not at the first deadline')
  t.equal(dropped.expiredAt.length, 0)
  t.equal(wheel.entries, 1, 'the dropped one forgotten, the moved one filed again')
  await sleep(150)
  t.equal(moved.expiredAt.length, 1, 'at the moved deadline')
  t.ok((moved.expiredAt[0] as number) >= moved.due)
  t.equal(dropped.expiredAt.length, 0, 'the dropped one never')
})

t.test('a deadline already past expires at the next turn; expiries may add entries', async (t) => {
  const wheel = new TimerWheel(20)
  const again = new Entry(wheelNow() + 30)
  const past = new Entry(wheelNow() - 1000)
  const first = new Entry(wheelNow() + 20)
  first.expire = () => { first.expiredAt.push(wheelNow()); wheel.add(past); wheel.add(again) }
  wheel.add(first)
  await sleep(150)
  t.equal(first.expiredAt.length, 1)
  t.equal(past.expiredAt.length, 1, 'the past one added during a turn expired')
  t.equal(again.expiredAt.length, 1)
  t.equal(wheel.entries, 0)
})
