/**
 * Membership against a real redis-server: the lease and the live set, a
 * second instance of one node id refused, a lease lost (deleted, as after a
 * Redis restart) taken anew with 'leaseLost', availability lost and regained.
 */
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { Membership } from '../../lib/cluster/membership.js'
import { openRedis } from '../../lib/cluster/redis.js'
import { isCulexError } from '../../lib/errors.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

async function member (t: Test, url: string, nodeId: string, leaseMs = 600, renewMs = 200): Promise<Membership> {
  const redis = await openRedis(url)
  const m = new Membership({ redis, nodeId, logger: silentLogger(), leaseMs, renewMs })
  t.teardown(async () => { await m.stop(); await redis.close() })
  return m
}

t.test('a lease per node, the live set, a join and a leave seen by the other', async (t) => {
  const redis = await startRedis(t)
  const a = await member(t, redis.url, 'a')
  await a.start()
  t.equal(a.available(), true)
  t.same(a.nodes(), ['a'])
  t.match(redisCli(redis, 'PTTL', '{culex}:node:a'), /^\(integer\) [1-6]\d\d$/, 'the lease expires within leaseMs unless renewed')
  const b = await member(t, redis.url, 'b')
  const joined = once(a, 'join')
  await b.start()
  t.same(await joined, ['b'], 'a sees b join')
  t.same(b.nodes(), ['a', 'b'])
  const left = once(a, 'leave')
  await b.stop()
  t.same(await left, ['b'], 'a sees b leave')
  t.same(a.nodes(), ['a'])
})

t.test('a second instance of a live node id is refused', async (t) => {
  const redis = await startRedis(t)
  const first = await member(t, redis.url, 'twin')
  await first.start()
  const second = await member(t, redis.url, 'twin')
  const err = await second.start().then(() => undefined, (e: unknown) => e)
  t.ok(isCulexError(err, 'CULEX_ERR_CLUSTER_NODE_ID_IN_USE'), 'CULEX_ERR_CLUSTER_NODE_ID_IN_USE')
  t.equal(first.available(), true, 'the first keeps its lease')
})

t.test('a lease that vanished is taken anew with leaseLost; a Redis that stops answering makes the node unavailable, then available again', async (t) => {
  const redis = await startRedis(t)
  const a = await member(t, redis.url, 'a')
  await a.start()
  const lost = once(a, 'leaseLost')
  redisCli(redis, 'DEL', '{culex}:node:a')
  await lost
  t.pass('leaseLost after the lease key vanished')
  t.equal(redisCli(redis, '--raw', 'EXISTS', '{culex}:node:a'), '1', 'the lease is held again')

  const down = once(a, 'available')
  redis.child.kill('SIGSTOP')
  t.same(await down, [false], 'unavailable once a renewal gets no answer')
  t.match(a.problem(), /^Redis: /)
  const up = once(a, 'available')
  redis.child.kill('SIGCONT')
  t.same(await up, [true], 'available again')
  await waitFor(() => a.problem() === undefined)
})
