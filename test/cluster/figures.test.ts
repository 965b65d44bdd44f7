/**
 * Cluster totals against a real redis-server: each node's figures in a hash
 * expiring with its lease, summed over the nodes asked for; a node whose
 * figures expired or that stopped counts nothing.
 */
import t from 'tap'
import { Figures, figuresKey } from '../../lib/cluster/figures.js'
import { openRedis } from '../../lib/cluster/redis.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

t.test('figures are summed over the live nodes; they expire with the lease and go at stop', async (t) => {
  const redis = await startRedis(t)
  const pair = await openRedis(redis.url)
  t.teardown(() => pair.close())
  const a = new Figures(pair, 'a', silentLogger(), 3000, 1000)
  const b = new Figures(pair, 'b', silentLogger(), 400, 100)
  await a.write({ connections: 3, received: 10 })
  await a.write({ connections: 2, received: 12 })
  let bConnections = 5
  b.start(() => ({ connections: bConnections, received: 1 }))
  await waitFor(async () => (await a.totals(['a', 'b'])).connections === 7, { what: 'a and b summed' })
  t.same(await a.totals(['a', 'b']), { connections: 7, received: 13 }, 'each figure summed; the later write replaced the earlier')
  t.same(await a.totals(['a']), { connections: 2, received: 12 }, 'only the nodes asked for')
  bConnections = 6
  await waitFor(async () => (await a.totals(['a', 'b'])).connections === 8, { what: 'b rewrites its figures every interval' })
  const ttl = Number(/-?\d+/.exec(redisCli(redis, 'PTTL', figuresKey('a')))?.[0])
  t.ok(ttl > 0 && ttl <= 3000, `a's figures expire with its lease (PTTL ${ttl})`)
  await b.stop()
  t.equal(redisCli(redis, 'EXISTS', figuresKey('b')), '(integer) 0', 'a stopped node\'s figures go at once')
  t.same(await a.totals(['a', 'b', 'gone']), { connections: 2, received: 12 }, 'a node without figures counts nothing')
})
