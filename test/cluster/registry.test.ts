/**
 * The client-id registry's scripts against a real redis-server: epochs go up
 * by one per claim, the previous owner (and only another node) is told, a
 * release with a stale epoch is refused, a re-check closes what another node
 * took and claims back what Redis lost.
 */
import t, { type Test } from 'tap'
import { ClusterNode, type LocalClients } from '../../lib/cluster/index.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { sleep, waitFor } from '../helpers/wait.js'

async function node (t: Test, url: string, nodeId: string): Promise<{ cluster: ClusterNode, takenOver: Array<[string, string]> }> {
  const cluster = await ClusterNode.connect(url, silentLogger())
  const takenOver: Array<[string, string]> = []
  const local: LocalClients = { takenOver (clientId, byNode) { takenOver.push([clientId, byNode]) }, deliver () {} }
  cluster.attachClients(local)
  await cluster.join({ nodeId })
  t.teardown(() => cluster.close())
  return { cluster, takenOver }
}

t.test('claims: the epoch goes up by one each time; the previous owner on another node is told', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const b = await node(t, redis.url, 'b')
  t.equal(await a.cluster.claim('x'), 1)
  t.equal(await a.cluster.claim('x'), 2, 'a claim by the owner itself')
  t.same(a.takenOver, [], 'a node is not told about its own claims')
  t.equal(await b.cluster.claim('x'), 3)
  await waitFor(() => a.takenOver.length === 1, { what: 'a is told' })
  t.same(a.takenOver, [['x', 'b']], 'a is told that b took x')
  t.same(b.takenOver, [])
  t.equal(redisCli(redis, '--raw', 'HMGET', '{culex}:client:x', 'node', 'epoch'), 'b\n3')
})

t.test('a release is a fenced write: refused with a stale epoch, done with the current one', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const b = await node(t, redis.url, 'b')
  const stale = await a.cluster.claim('y')
  const current = await b.cluster.claim('y')
  t.equal(await a.cluster.release('y', stale), false, 'a\'s release with epoch 1 is refused')
  t.equal(await b.cluster.release('y', stale), false, 'so is b\'s with an epoch that is not its own')
  t.equal(redisCli(redis, '--raw', 'HGET', '{culex}:client:y', 'node'), 'b', 'b still owns y')
  t.equal(await b.cluster.release('y', current), true, 'b\'s release at its epoch is done')
  t.equal(redisCli(redis, '--raw', 'HGET', '{culex}:client:y', 'node'), '', 'no owner now')
  t.equal(await a.cluster.claim('y'), current + 1, 'the epoch keeps counting after a release')
  await waitFor(() => b.takenOver.length === 1, { what: 'b is told' })
  t.same(b.takenOver, [['y', 'a']], 'a claim with no owner tells the node that released it last (it holds the offline session)')
  await a.cluster.claim('y')
  await sleep(200)
  t.same(a.takenOver, [['y', 'b']], 'a node is not told about its own claims (only about b\'s, at the start)')
})

t.test('verify: a connection that went live after another node\'s claim is closed', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const b = await node(t, redis.url, 'b')
  await b.cluster.claim('z')
  await a.cluster.verify('z')
  t.same(a.takenOver, [['z', 'b']], 'a closes its connection of z')
  await b.cluster.verify('z')
  t.same(b.takenOver, [], 'the owner keeps its own')
})

t.test('a takeover notice lost while the notice connection was away (its lease intact): the ids are re-checked once it is back', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const b = await node(t, redis.url, 'b')
  await b.cluster.claim('lost')
  // every Pub/Sub connection dropped; each reconnects by itself within about 50 ms
  redisCli(redis, 'CLIENT', 'KILL', 'TYPE', 'pubsub')
  await a.cluster.claim('lost')
  t.equal(redisCli(redis, '--raw', 'HGET', '{culex}:client:lost', 'node'), 'a', 'a owns the id; its notice to b went nowhere')
  await waitFor(() => b.takenOver.length > 0, { timeout: 3000, what: 'b closes its connection of the id once its notice connection is back' })
  t.same(b.takenOver, [['lost', 'a']])
  t.same(a.takenOver, [], 'the owner keeps its own')
})
