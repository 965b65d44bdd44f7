import t from 'tap'
import { FailureDelay, RateLimiter } from '../../lib/auth/rate-limit.js'

t.test('RateLimiter: burst up to capacity, then refill over time', async (t) => {
  const rl = new RateLimiter({ capacity: 3, refillPerSecond: 1 })
  const now = 1_000_000
  t.same([rl.take('a', now), rl.take('a', now), rl.take('a', now), rl.take('a', now)], [true, true, true, false])
  t.notOk(rl.take('a', now + 999), 'not yet a whole token')
  t.ok(rl.take('a', now + 1000), 'one token after one second')
  t.notOk(rl.take('a', now + 1000))
  t.ok(rl.take('b', now), 'keys are independent')
  // After a long pause the bucket is full again, but never above capacity.
  const later = now + 60_000
  t.same([rl.take('a', later), rl.take('a', later), rl.take('a', later), rl.take('a', later)], [true, true, true, false])
})

t.test('RateLimiter: a refused take does not spend tokens; cost > 1', async (t) => {
  const rl = new RateLimiter({ capacity: 2, refillPerSecond: 2 })
  t.ok(rl.take('k', 0, 2))
  t.notOk(rl.take('k', 0))
  t.ok(rl.take('k', 500), '0.5 s at 2/s gives one token')
  t.notOk(rl.take('k', 500, 3), 'cost above capacity is never allowed')
})

t.test('RateLimiter: a clock stepping backwards refills nothing', async (t) => {
  const rl = new RateLimiter({ capacity: 1, refillPerSecond: 1 })
  t.ok(rl.take('k', 10_000))
  t.notOk(rl.take('k', 5_000))
  t.notOk(rl.take('k', 10_500))
  t.ok(rl.take('k', 11_000))
})

t.test('RateLimiter: idle keys are forgotten once their bucket is full again', async (t) => {
  const rl = new RateLimiter({ capacity: 2, refillPerSecond: 1 })
  for (let i = 0; i < 100; i++) {
    rl.take(`k${i}`, 0)
    rl.take(`k${i}`, 0)
  }
  t.equal(rl.size, 100)
  rl.take('fresh', 1000)
  t.equal(rl.size, 101, 'after 1 s buckets are not full yet')
  rl.take('fresh', 2000)
  t.equal(rl.size, 1, 'after 2 s the idle buckets are full and dropped')
})

t.test('RateLimiter: memory is bounded by maxKeys (least recently used evicted)', async (t) => {
  const rl = new RateLimiter({ capacity: 1, refillPerSecond: 0.001, maxKeys: 3 })
  t.ok(rl.take('a', 0))
  t.ok(rl.take('b', 0))
  t.ok(rl.take('c', 0))
  t.notOk(rl.take('a', 1), 'a is exhausted and becomes most recently used')
  t.ok(rl.take('d', 2))
  t.equal(rl.size, 3)
  t.notOk(rl.take('a', 3), 'a was kept')
  t.ok(rl.take('b', 4), 'b was evicted, so it starts with a full bucket')
  for (let i = 0; i < 1000; i++) rl.take(`flood${i}`, 5)
  t.equal(rl.size, 3)
})

t.test('RateLimiter: option validation', async (t) => {
  t.throws(() => new RateLimiter({ capacity: 0, refillPerSecond: 1 }), RangeError)
  t.throws(() => new RateLimiter({ capacity: 1, refillPerSecond: -1 }), RangeError)
  t.throws(() => new RateLimiter({ capacity: Number.NaN, refillPerSecond: 1 }), RangeError)
  t.throws(() => new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 0 }), RangeError)
  const never = new RateLimiter({ capacity: 1, refillPerSecond: 0 })
  t.ok(never.take('k', 0))
  t.notOk(never.take('k', 1e12), 'refill 0 never refills')
})

t.test('FailureDelay: 0, 0, 250, 500, 1000, ... capped at 5000', async (t) => {
  const fd = new FailureDelay()
  const delays: number[] = []
  for (let i = 0; i < 10; i++) {
    delays.push(fd.delayFor('1.2.3.4', 1000 + i))
    fd.recordFailure('1.2.3.4', 1000 + i)
  }
  t.same(delays, [0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000])
  t.equal(fd.delayFor('5.6.7.8', 2000), 0, 'other addresses are unaffected')
})

t.test('FailureDelay: success forgives, a quiet period resets', async (t) => {
  const fd = new FailureDelay({ resetAfterMs: 10_000 })
  for (let i = 0; i < 4; i++) fd.recordFailure('a', 0)
  t.equal(fd.delayFor('a', 0), 1000)
  fd.recordSuccess('a')
  t.equal(fd.delayFor('a', 0), 0)

  for (let i = 0; i < 4; i++) fd.recordFailure('b', 0)
  t.equal(fd.delayFor('b', 9_999), 1000)
  t.equal(fd.delayFor('b', 10_000), 0, 'quiet period passed')
  fd.recordFailure('b', 10_000)
  t.equal(fd.delayFor('b', 10_000), 0, 'count restarted at 1')
  fd.recordFailure('b', 10_001)
  t.equal(fd.delayFor('b', 10_001), 250)
})

t.test('FailureDelay: the quiet period counts from the last failure', async (t) => {
  const fd = new FailureDelay({ resetAfterMs: 1000 })
  fd.recordFailure('a', 0)
  fd.recordFailure('a', 900)
  fd.recordFailure('a', 1800)
  t.equal(fd.delayFor('a', 1900), 500, 'failures 900 ms apart keep accumulating')
})

t.test('FailureDelay: bounded memory', async (t) => {
  const fd = new FailureDelay({ resetAfterMs: 1000, maxKeys: 5 })
  for (let i = 0; i < 100; i++) fd.recordFailure(`10.0.0.${i}`, 0)
  t.equal(fd.size, 5)
  t.equal(fd.delayFor('10.0.0.99', 0), 0, 'one failure: free')
  fd.recordFailure('10.0.0.99', 1)
  t.equal(fd.delayFor('10.0.0.99', 1), 250, 'the most recent addresses are kept')
  fd.delayFor('x', 5000)
  t.equal(fd.size, 0, 'expired records are swept')
})

t.test('FailureDelay: custom curve and validation', async (t) => {
  const fd = new FailureDelay({ baseMs: 100, maxMs: 350, freeFailures: 0 })
  const delays: number[] = []
  for (let i = 0; i < 5; i++) {
    fd.recordFailure('a', 0)
    delays.push(fd.delayFor('a', 0))
  }
  t.same(delays, [100, 200, 350, 350, 350])
  t.throws(() => new FailureDelay({ baseMs: -1 }), RangeError)
  t.throws(() => new FailureDelay({ maxKeys: 1.5 }), RangeError)
  const many = new FailureDelay()
  for (let i = 0; i < 10_000; i++) many.recordFailure('a', 0)
  t.equal(many.delayFor('a', 0), 5000, 'no overflow after many failures')
})
