/**
 * The timer lock against a real redis-server: one holder at a time; a
 * holder that stops gives it up at once; one that vanishes (its Redis
 * connection gone) loses it when it expires, and another node takes it.
 */
import t from 'tap'
import { openRedis } from '../../lib/cluster/redis.js'
import { TimerLock } from '../../lib/cluster/timer-lock.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

t.test('one holder at a time; stopped: given up; vanished: taken by another once expired', async (t) => {
  const redis = await startRedis(t)
  const locks = await Promise.all(['a', 'b', 'c'].map(async (id) => {
    const pair = await openRedis(redis.url)
    t.teardown(() => pair.close())
    const lock = new TimerLock(pair, 'test:lock', id, silentLogger(), 600, 100)
    t.teardown(() => lock.stop())
    lock.start(() => {})
    return { id, pair, lock }
  }))
  const holders = (): string[] => locks.filter((l) => l.lock.holds()).map((l) => l.id)
  await waitFor(() => holders().length === 1, { what: 'one holder' })
  const first = holders()[0]
  t.equal(redisCli(redis, '--raw', 'GET', 'test:lock'), first, `Redis names ${first ?? ''}`)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(holders(), [first], 'still the one holder after several renewals')

  const stopped = locks.find((l) => l.id === first)
  await stopped?.lock.stop()
  await waitFor(() => holders().length === 1, { timeout: 1000, what: 'another holder once the first stopped' })
  const second = holders()[0]
  t.not(second, first, `${second ?? ''} took it over`)

  const vanished = locks.find((l) => l.id === second)
  const tookAt = Date.now()
  await vanished?.pair.close()
  await waitFor(() => holders().length === 1 && holders()[0] !== second, { timeout: 3000, what: 'the last node takes the lock once it expired' })
  t.pass(`the last node holds it ${Date.now() - tookAt} ms after the holder vanished (lock 600 ms)`)
})
