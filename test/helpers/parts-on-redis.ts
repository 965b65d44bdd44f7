/**
 * Imported first, switches test/helpers/part-disk.ts to the Redis store's
 * backend, on a redis-server of the test file's own (test/helpers/store.ts
 * testRedis), before the part tests imported after it run.
 */
import tap from 'tap'
import { Redis } from 'ioredis'
import { partsOnRedis } from './part-disk.js'
import { testRedis } from './store.js'

partsOnRedis(async () => {
  const redis = new Redis((await testRedis()).url)
  tap.teardown(() => { redis.disconnect() })
  return redis
})
