/**
 * Cluster totals under `$SYS/cluster/`: the connections and subscriptions
 * of every live node summed, the same on every node, and a killed node's share gone once its
 * lease runs out. A node's own `$SYS/brokers/{node}/` values on every node:
 * routed, retained there, passed on when changed, cleared when it leaves.
 */
import t from 'tap'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub } from '../../helpers/mosquitto.js'
import { redisCli, startCluster, startNode, startRedis } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('$SYS/cluster/clients/connected and subscriptions/count sum the live nodes\' figures; a killed node stops counting after its lease', async (t) => {
  const { nodes: [a, b] } = await startCluster(t, ['a', 'b'], { args: ['--sys-interval', '1'] })
  for (let i = 0; i < 3; i++) await connectClient(t, a.url, { clientId: `on-a-${i}` })
  await (await connectClient(t, a.url, { clientId: 'subs-on-a' })).subscribeAsync(['x/1', 'x/2'])
  await (await connectClient(t, b.url, { clientId: 'subs-on-b', clean: false })).subscribeAsync('y/#', { qos: 1 })
  const watchers = await Promise.all([a, b].map(async (node) => {
    const client = await connectClient(t, node.url, { clientId: `watch-${node === a ? 'a' : 'b'}` })
    const latest = new Map<string, string>()
    client.on('message', (topic, payload) => { latest.set(topic, payload.toString()) })
    await client.subscribeAsync('$SYS/cluster/#')
    return latest
  }))
  // 4 clients and a watcher on a, a client and a watcher on b; subscriptions: 2 + 1 (a watcher's) on a, 1 (persistent) + 1 on b
  for (const [i, latest] of watchers.entries()) {
    await waitFor(() => latest.get('$SYS/cluster/clients/connected') === '7' && latest.get('$SYS/cluster/subscriptions/count') === '5', { timeout: 6000, what: () => `7 connections and 5 subscriptions on node ${i === 0 ? 'a' : 'b'} (${latest.get('$SYS/cluster/clients/connected')}, ${latest.get('$SYS/cluster/subscriptions/count')})` })
    t.equal(latest.get('$SYS/cluster/nodes'), '2', 'two live nodes')
    t.ok(latest.has('$SYS/cluster/messages/received') && latest.has('$SYS/cluster/messages/sent'), 'message totals published too')
  }
  t.pass('both nodes publish the same totals: 7 connections, 5 subscriptions')
  a.child.kill('SIGKILL')
  const onB = watchers[1] as Map<string, string>
  const killedAt = Date.now()
  await waitFor(() => onB.get('$SYS/cluster/clients/connected') === '2' && onB.get('$SYS/cluster/subscriptions/count') === '2' && onB.get('$SYS/cluster/nodes') === '1', { timeout: 8000, what: () => `b's totals without a (${onB.get('$SYS/cluster/clients/connected')}, ${onB.get('$SYS/cluster/subscriptions/count')})` })
  t.pass(`${Date.now() - killedAt} ms after a was killed, b counts only its own connections and subscriptions`)
})

t.test('$SYS/brokers/{node}/ reaches subscribers on another node, retained there, each value once until it changes, cleared when its node dies [MQTT-3.3.1-6] [MQTT-3.3.1-9] [MQTT-4.7.2-1]', async (t) => {
  const redis = await startRedis(t)
  const a = await startNode(t, redis, ['--node-id', 'a', '--sys-interval', '1'])
  // b publishes no $SYS of its own: what its clients get of a's comes from a
  const b = await startNode(t, redis, ['--node-id', 'b', '--sys-interval', '0'])
  const hashClient = await connectClient(t, b.url, { clientId: 'hash-sub', protocolVersion: 5 })
  const hash = collect(hashClient)
  await hashClient.subscribeAsync('#')
  const liveClient = await connectClient(t, b.url, { clientId: 'live-on-b', protocolVersion: 5 })
  const live = collect(liveClient)
  await liveClient.subscribeAsync('$SYS/brokers/a/#')
  const of = (topic: string) => live.messages.filter((m) => m.topic === topic)

  // a published its version once, at its start, before b had a subscriber: it comes with a's next interval
  await waitFor(() => of('$SYS/brokers/a/version').length > 0 && of('$SYS/brokers/a/uptime').length >= 3, { timeout: 8000, what: () => `a's version and three uptimes on b (${live.messages.length} messages)` })
  t.match(of('$SYS/brokers/a/version')[0]?.payload.toString(), /^culex version /, 'a\'s version, published before b\'s subscriber came, reaches it')
  t.equal(of('$SYS/brokers/a/version').length, 1, 'an unchanged value is passed on once, over three of a\'s intervals')
  t.ok(live.messages.every((m) => m.topic.startsWith('$SYS/brokers/a/')), 'only a\'s values: b publishes none of its own')

  // a new subscriber on b gets a's values as retained messages of b's own [MQTT-3.3.1-9]
  const lateClient = await connectClient(t, b.url, { clientId: 'late-on-b', protocolVersion: 4 })
  const late = collect(lateClient)
  await lateClient.subscribeAsync('$SYS/brokers/a/version')
  const [first] = await late.next(1, 2000)
  t.equal(first?.retain, true, 'retained on b')
  t.match(first?.payload.toString(), /^culex version /)
  if (await hasMosquittoClients()) {
    const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(b.port), '-V', '311', '-t', '$SYS/brokers/a/version', '--retained-only', '-C', '1', '-W', '5'])
    const [line] = await sub.lines$(1)
    t.match(line, /^culex version /, 'mosquitto_sub --retained-only on b prints a\'s version')
  }
  t.equal(redisCli(redis, '--raw', 'KEYS', 'culex:retained:*'), '', 'nothing of $SYS in Redis')
  await sleep(1200)
  t.same(hash.messages.filter((m) => m.topic.startsWith('$')), [], '`#` on b gets none of a\'s $SYS [MQTT-4.7.2-1]')

  a.child.kill('SIGKILL')
  await waitFor(() => of('$SYS/brokers/a/version').some((m) => m.payload.length === 0), { timeout: 8000, what: 'a\'s version cleared on b after a\'s lease' })
  t.pass('a\'s values are cleared on b once a has left: an empty message on each topic [MQTT-3.3.1-6]')
  const afterClient = await connectClient(t, b.url, { clientId: 'after-on-b', protocolVersion: 5 })
  const after = collect(afterClient)
  await afterClient.subscribeAsync('$SYS/brokers/a/#')
  await sleep(300)
  t.same(after.messages, [], 'none of a\'s values is retained on b any more')
})
