/**
 * Messages from other nodes enter aedes a window at a time
 * (lib/broker/routed-publish.ts): never more than the window in flight, in
 * the order they came, each one's completion (or error) reported to its own
 * caller; publishes that complete at once drain a long queue without
 * recursion.
 */
import t from 'tap'
import type { PublishPacket } from 'aedes'
import { windowedPublish } from '../../lib/broker/routed-publish.js'

const packet = (n: number): PublishPacket => ({ cmd: 'publish', topic: 't', payload: Buffer.from(String(n)), qos: 0, retain: false, dup: false }) as PublishPacket

t.test('at most the window in flight, in order, each completion to its caller', async (t) => {
  const started: number[] = []
  const pending: Array<(err?: Error | null) => void> = []
  let maxInFlight = 0
  const publish = windowedPublish({
    publish: ((p: PublishPacket, done: (err?: Error | null) => void) => {
      started.push(Number(p.payload.toString()))
      pending.push(done)
      maxInFlight = Math.max(maxInFlight, pending.length)
    }) as never
  }, 4)
  const results: Array<string | null> = []
  for (let n = 0; n < 10; n++) publish(packet(n), (err) => { results[n] = err?.message ?? null })
  t.same(started, [0, 1, 2, 3], 'the window, no more')
  pending.shift()?.(new Error('refused'))
  t.same(started, [0, 1, 2, 3, 4], 'one done: the next enters')
  while (pending.length > 0) pending.shift()?.()
  t.same(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'all, in the order they came')
  t.equal(maxInFlight, 4)
  t.same(results, ['refused', null, null, null, null, null, null, null, null, null], 'each caller told of its own publish')
})

t.test('publishes that complete at once drain a long queue without recursion', async (t) => {
  let hold = true
  const held: Array<() => void> = []
  const order: number[] = []
  const publish = windowedPublish({
    publish: ((p: PublishPacket, done: () => void) => {
      order.push(Number(p.payload.toString()))
      if (hold) held.push(done)
      else done()
    }) as never
  }, 2)
  let completed = 0
  const total = 50000
  for (let n = 0; n < total; n++) publish(packet(n), () => { completed++ })
  hold = false
  for (const done of held.splice(0)) done()
  t.equal(completed, total, 'every message completed')
  t.ok(order.every((n, i) => n === i), 'in order')
})
