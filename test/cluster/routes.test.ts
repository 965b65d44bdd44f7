/**
 * The route table against a real redis-server: a filter gained or lost on
 * one node is seen by another through a notice; matching is local with
 * aedes' rules (`a/#` matches `a`, no `$` topics); a filter written without a
 * notice is found by the next reload; a node that left takes its routes along.
 */
import t, { type Test } from 'tap'
import { openRedis, type RedisPair } from '../../lib/cluster/redis.js'
import { Routes, routesKey, type RoutedMessage } from '../../lib/cluster/routes.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { sleep, waitFor } from '../helpers/wait.js'

async function routes (t: Test, url: string, nodeId: string, live: () => string[]): Promise<{ routes: Routes, got: RoutedMessage[] }> {
  const redis: RedisPair = await openRedis(url)
  const got: RoutedMessage[] = []
  const r = new Routes(redis, nodeId, silentLogger(), (m) => { got.push(m) })
  await r.start(live)
  t.teardown(async () => { r.stop(); await redis.close() })
  return { routes: r, got }
}

const message = (topic: string, payload = 'x'): RoutedMessage => ({ topic, payload: Buffer.from(payload) })

t.test('filters travel by notice; matching follows MQTT rules; a message goes once to each matching node', async (t) => {
  const redis = await startRedis(t)
  const live = (): string[] => ['a', 'b']
  const a = await routes(t, redis.url, 'a', live)
  const b = await routes(t, redis.url, 'b', live)
  t.equal(a.routes.route(message('s/1')), 0, 'no filter anywhere: no node')
  b.routes.subscribed('s/#')
  b.routes.subscribed('s/#')
  b.routes.subscribed('+/x')
  await waitFor(() => a.routes.route(message('probe/none')) === 0 && redisCli(redis, 'SCARD', routesKey('b')) === '(integer) 2', { what: 'b\'s filters in Redis' })
  await waitFor(() => a.routes.route(message('s')) === 1, { what: 'a sees s/# on b' })
  t.equal(a.routes.route(message('s/x')), 1, 'two matching filters on b: one message to b')
  t.equal(a.routes.route(message('$SYS/x')), 0, '[MQTT-4.7.2-1] $ topics are not routed')
  t.equal(a.routes.route(message('t/y')), 0, 'no match: no Redis command')
  await waitFor(() => b.got.length === 2, { what: 'b receives both' })
  t.same(b.got.map((m) => m.topic), ['s', 's/x'], 'in order')

  b.routes.unsubscribed('s/#')
  await sleep(100)
  t.equal(a.routes.route(message('s/1')), 1, 'one of two subscriptions left: still routed')
  b.routes.unsubscribed('s/#')
  await waitFor(() => a.routes.route(message('probe')) === 0 && a.routes.route(message('s/1')) === 0, { what: 'the last s/# went: a stops routing' })
  t.equal(a.routes.route(message('q/x')), 1, '+/x is still there')
})

t.test('a filter written without a notice is found by the next reload; a node that left takes its routes along', async (t) => {
  const redis = await startRedis(t)
  let live = ['a', 'b']
  const a = await routes(t, redis.url, 'a', () => live)
  redisCli(redis, 'SADD', routesKey('b'), 'quiet/#')
  t.equal(a.routes.route(message('quiet/1')), 0, 'the notice was never sent')
  await a.routes.reload()
  t.equal(a.routes.route(message('quiet/1')), 1, 'the reload heals it')
  a.routes.nodeLeft('b')
  t.equal(a.routes.route(message('quiet/1')), 0, 'b left: no route to it')
  live = ['a']
  await a.routes.reload()
  t.equal(a.routes.route(message('quiet/1')), 0, 'routes of a node that is not live are not loaded')
})

t.test('a QoS 1/2 message\'s target nodes, remembered per topic, follow every change of the filters', async (t) => {
  const redis = await startRedis(t)
  let live = ['a', 'b', 'c']
  const a = await routes(t, redis.url, 'a', () => live)
  const b = await routes(t, redis.url, 'b', () => live)
  const c = await routes(t, redis.url, 'c', () => live)
  const targets = (topic: string): string[] => [...a.routes.durableNodes(topic)].sort()
  t.same(targets('q/1'), [], 'no filter anywhere')
  b.routes.subscribed('q/#')
  await waitFor(() => targets('q/1').length === 1, { what: 'a sees b\'s live filter though it matched q/1 before' })
  t.same(targets('q/1'), ['b'])
  c.routes.durableChanged('q/+', true)
  await waitFor(() => targets('q/1').length === 2, { what: 'a sees c\'s durable filter' })
  t.same(targets('q/1'), ['b', 'c'], 'a live and a durable match')
  t.same(targets('$SYS/q'), [], '$ topics are not routed')
  b.routes.unsubscribed('q/#')
  await waitFor(() => targets('q/1').length === 1, { what: 'b\'s filter went' })
  t.same(targets('q/1'), ['c'])
  a.routes.nodeLeft('c')
  t.same(targets('q/1'), ['c'], 'a dead node\'s durable filters stay matched until its adoption')
  live = ['a', 'b']
  await a.routes.reload()
  t.same(targets('q/1'), ['c'], 'and after a reload')
  redisCli(redis, 'SREM', '{culex}:durable:nodes', 'c')
  await a.routes.reload()
  t.same(targets('q/1'), [], 'gone with its durable set')
})
