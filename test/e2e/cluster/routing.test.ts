/**
 * QoS 0 routing between nodes: a message published on node A reaches a
 * subscriber on node B (wildcards, `a/#` matching `a`, MQTT 5 properties,
 * order per publisher, once per subscriber); a topic no other node
 * subscribes to costs no Redis PUBLISH; an unsubscribe stops the routing.
 */
import t from 'tap'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { redisCli, routeReady, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** Redis' count of PUBLISH commands so far (scripts' included). */
function publishCount (redis: { port: number }): number {
  const stats = redisCli(redis, '--raw', 'INFO', 'commandstats')
  const line = stats.split('\n').find((l) => l.startsWith('cmdstat_publish:'))
  return line === undefined ? 0 : Number(/calls=(\d+)/.exec(line)?.[1] ?? 0)
}

t.test('a QoS 0 message published on node A reaches subscribers on nodes B and C, once each, in order, with its properties', async (t) => {
  const { nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onB = await connectClient(t, b.url, { clientId: 'sub-b', protocolVersion: 5 })
  const onC = await connectClient(t, c.url, { clientId: 'sub-c', protocolVersion: 4 })
  const gotB = collect(onB)
  const gotC = collect(onC)
  await onB.subscribeAsync(['a/#', 'x/+/z'], { qos: 0 })
  await onC.subscribeAsync('a/#', { qos: 0 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub-a', protocolVersion: 5 })
  await routeReady(publisher, 'a/probe', () => gotB.messages.some((m) => m.topic === 'a/probe') && gotC.messages.some((m) => m.topic === 'a/probe'))
  await sleep(100)
  gotB.messages.length = 0
  gotC.messages.length = 0

  for (let i = 0; i < 50; i++) await publisher.publishAsync(`a/n/${i}`, String(i), { qos: 0 })
  await publisher.publishAsync('a', 'parent', { qos: 0 })
  await publisher.publishAsync('x/y/z', 'xyz', { qos: 0, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } })
  await publisher.publishAsync('x/y', 'no match', { qos: 0 })
  await publisher.publishAsync('b/1', 'no match', { qos: 0 })
  await gotB.next(52, 5000)
  await gotC.next(51, 5000)
  await sleep(300)

  const numbered = (got: typeof gotB): string[] => got.messages.filter((m) => m.topic.startsWith('a/n/')).map((m) => m.payload.toString())
  const expected = Array.from({ length: 50 }, (_, i) => String(i))
  t.same(numbered(gotB), expected, 'b: all 50 numbered messages, once each, in the publisher\'s order')
  t.same(numbered(gotC), expected, 'c (MQTT 3.1.1): the same')
  t.same(gotB.messages.filter((m) => m.topic === 'a').map((m) => m.payload.toString()), ['parent'], '[MQTT-4.7.1-2] a/# matches a, across nodes')
  t.same(gotC.messages.filter((m) => m.topic === 'a').map((m) => m.payload.toString()), ['parent'])
  const xyz = gotB.messages.filter((m) => m.topic === 'x/y/z')
  t.equal(xyz.length, 1, 'x/+/z matches x/y/z once')
  t.match(xyz[0]?.properties, { contentType: 'text/plain', userProperties: { k: 'v' } }, 'MQTT 5 properties travel with the message')
  t.equal(gotB.messages.length, 52, 'nothing else reached b (x/y and b/1 match none of its filters)')
  t.equal(gotC.messages.length, 51, 'nothing else reached c')
  t.ok(gotB.messages.every((m) => m.qos === 0 && !m.retain), 'QoS 0, not retained')
})

t.test('a topic with no subscriber on another node costs no Redis PUBLISH; an unsubscribe stops the routing', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const localSub = await connectClient(t, a.url, { clientId: 'local-sub' })
  const gotLocal = collect(localSub)
  await localSub.subscribeAsync('local/#')
  const remote = await connectClient(t, b.url, { clientId: 'remote-sub' })
  const gotRemote = collect(remote)
  await remote.subscribeAsync('remote/#')
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, 'remote/probe', () => gotRemote.messages.length > 0)

  const before = publishCount(redis)
  for (let i = 0; i < 100; i++) await publisher.publishAsync(`local/${i}`, String(i), { qos: 0 })
  await gotLocal.next(100, 5000)
  t.equal(publishCount(redis) - before, 0, '100 messages with only a local subscriber: 0 Redis PUBLISH')

  const beforeRemote = publishCount(redis)
  gotRemote.messages.length = 0
  for (let i = 0; i < 100; i++) await publisher.publishAsync(`remote/${i}`, String(i), { qos: 0 })
  await gotRemote.next(100, 5000)
  const remotePublishes = publishCount(redis) - beforeRemote
  // those routed in one event-loop turn share one PUBLISH (lib/cluster/channel-batch.ts)
  t.ok(remotePublishes >= 1 && remotePublishes <= 100, `100 messages with a subscriber on b: at most one Redis PUBLISH each (${remotePublishes})`)
  t.same(gotRemote.messages.map((m) => m.payload.toString()), Array.from({ length: 100 }, (_, i) => String(i)), 'each once, in order')

  await remote.unsubscribeAsync('remote/#')
  await waitFor(() => redisCli(redis, 'SMEMBERS', '{culex}:routes:b') === '(empty array)', { timeout: 3000, what: 'b\'s route removed in Redis' })
  await sleep(200)
  const afterUnsubscribe = publishCount(redis)
  for (let i = 0; i < 20; i++) await publisher.publishAsync(`remote/${i}`, String(i), { qos: 0 })
  await sleep(200)
  t.equal(publishCount(redis) - afterUnsubscribe, 0, 'after b\'s unsubscribe: no Redis PUBLISH')
})

t.test('a resumed persistent session\'s subscriptions are routed without a new SUBSCRIBE', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  for (const version of [5, 4] as const) {
    const clientId = `keeper-${version}`
    const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false }
    const first = await connectClient(t, b.url, { clientId, protocolVersion: version, ...persistent })
    await first.subscribeAsync(`kept${version}/#`, { qos: 0 })
    await first.endAsync()
    await waitFor(() => redisCli(redis, 'SISMEMBER', '{culex}:routes:b', `kept${version}/#`) === '(integer) 0', { what: 'the route goes with the last live subscriber' })
    const again = await connectClient(t, b.url, { clientId, protocolVersion: version, ...persistent })
    t.equal(again.connected, true)
    const got = collect(again)
    const publisher = await connectClient(t, a.url, { clientId: `pub-${version}` })
    await routeReady(publisher, `kept${version}/probe`, () => got.messages.length > 0)
    t.pass(`MQTT ${version === 5 ? '5' : '3.1.1'}: the restored kept${version}/# is routed from a to b again`)
  }
})

t.test('after Redis is killed and restarted (no AOF), routing comes back by itself', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const sub = await connectClient(t, b.url, { clientId: 'survivor-sub' })
  const got = collect(sub)
  await sub.subscribeAsync('back/#')
  const publisher = await connectClient(t, a.url, { clientId: 'survivor-pub' })
  await routeReady(publisher, 'back/before', () => got.messages.length > 0)
  await redis.kill()
  const again = await redis.restart()
  const restartedAt = Date.now()
  await waitFor(() => redisCli(again, 'SISMEMBER', '{culex}:routes:b', 'back/#') === '(integer) 1', { timeout: 8000, what: 'b writes its routes again' })
  got.messages.length = 0
  await routeReady(publisher, 'back/after', () => got.messages.length > 0)
  t.pass(`a routes to b again ${Date.now() - restartedAt} ms after Redis restarted`)
  t.equal(sub.connected && publisher.connected, true, 'connected clients stayed connected')
})

t.test('a QoS 0 will (no Will Delay) published by its client\'s node reaches a subscriber on another node', async (t) => {
  const { nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const watcher = await connectClient(t, b.url, { clientId: 'watcher' })
  const got = collect(watcher)
  await watcher.subscribeAsync('wills/#')
  const probe = await connectClient(t, a.url, { clientId: 'will-probe' })
  await routeReady(probe, 'wills/probe', () => got.messages.length > 0)
  got.messages.length = 0
  const dying = await connectClient(t, a.url, { clientId: 'dying', will: { topic: 'wills/dying', payload: Buffer.from('gone'), qos: 0, retain: false } })
  dying.stream.destroy()
  const [will] = await got.next(1, 5000)
  t.equal(will?.payload.toString(), 'gone', 'the will of a client of a arrives on b')
})
