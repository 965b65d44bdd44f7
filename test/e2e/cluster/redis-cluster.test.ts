/**
 * culex on a Redis Cluster of three masters (lib/cluster/redis.ts opens
 * ioredis' Cluster client when the URL's server says cluster_enabled:1; the
 * key layout: lib/cluster/keys.ts). Three culex nodes on it: routing at QoS
 * 0, 1 and 2 across nodes with wildcards, a persistent session that leaves
 * node A and resumes on node C with its queue, a retained message set on one
 * node and read on another, one shared group with members on all three nodes
 * (each message exactly once); and the keys really spread over the masters,
 * each script's keys in one slot (Redis Cluster refuses anything else, so
 * every step here that passes ran its scripts there).
 */
import t from 'tap'
import mqtt from 'mqtt'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { startNode, routeReady } from '../../helpers/redis.js'
import { clusterCli, keysByMaster, masterOf, startRedisCluster } from '../../helpers/redis-cluster.js'
import { duplicates, publishMany } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('three culex nodes on a three-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(t)
  const a = await startNode(t, cluster, ['--node-id', 'a'])
  const b = await startNode(t, cluster, ['--node-id', 'b'])
  const c = await startNode(t, cluster, ['--node-id', 'c'])
  t.ok(a.logs.some((l) => l.redisCluster === true), 'node A says it runs on a Redis Cluster')
  const durability = a.logs.find((l) => typeof l.durability === 'object')?.durability as { known?: boolean, appendonly?: string } | undefined
  t.strictSame([durability?.known, durability?.appendonly], [true, 'no'], 'and read the masters\' persistence settings (CONFIG GET on each)')

  await t.test('QoS 0, 1 and 2 published on node A reach subscribers on B and C with wildcards, each once, in order, at the granted QoS [MQTT-3.8.4-6]', async (t) => {
    const onB = await connectClient(t, b.url, { clientId: 'sub-b', protocolVersion: 5 })
    const onC = await connectClient(t, c.url, { clientId: 'sub-c', protocolVersion: 4 })
    const gotB = collect(onB)
    const gotC = collect(onC)
    await onB.subscribeAsync('r/#', { qos: 2 })
    await onC.subscribeAsync('r/+/x', { qos: 1 })
    const publisher = await connectClient(t, a.url, { clientId: 'pub-a', protocolVersion: 5 })
    await routeReady(publisher, 'r/probe/x', () => gotB.messages.some((m) => m.topic === 'r/probe/x') && gotC.messages.some((m) => m.topic === 'r/probe/x'), { step: 50 })
    await sleep(100)
    gotB.messages.length = 0
    gotC.messages.length = 0

    const sent: Array<[string, string, 0 | 1 | 2]> = []
    for (let i = 0; i < 30; i++) sent.push([`r/${i}/x`, String(i), (i % 3) as 0 | 1 | 2])
    for (const [topic, payload, qos] of sent) await publisher.publishAsync(topic, payload, { qos })
    await publisher.publishAsync('r', 'parent', { qos: 1 })
    await publisher.publishAsync('r/1/y', 'b only', { qos: 2 })
    await gotB.next(32, 10000)
    await gotC.next(30, 10000)
    await sleep(300)

    // order holds per QoS: QoS 0 travels on the node's channel, QoS 1/2 through its inbox stream [MQTT-4.6.0-6]
    const perQos = (list: Array<[string, string, number]>, qos: number): string[] => list.filter((m) => m[2] === qos).map((m) => m[1])
    const onBx = gotB.messages.filter((m) => m.topic.endsWith('/x')).map((m): [string, string, number] => [m.topic, m.payload.toString(), m.qos])
    const onCx = gotC.messages.map((m): [string, string, number] => [m.topic, m.payload.toString(), m.qos])
    t.strictSame([...onBx].sort(), [...sent].sort(), 'B (r/#, QoS 2): every message once, at its own QoS')
    for (const qos of [0, 1, 2]) t.strictSame(perQos(onBx, qos), perQos(sent, qos), `B: the QoS ${qos} messages in the publisher's order`)
    const downgraded = sent.map(([topic, p, qos]): [string, string, number] => [topic, p, Math.min(qos, 1)])
    t.strictSame([...onCx].sort(), [...downgraded].sort(), 'C (3.1.1, r/+/x, QoS 1): every message once, QoS 2 downgraded to 1')
    for (const qos of [0, 1]) t.strictSame(perQos(onCx, qos), perQos(downgraded, qos), `C: the QoS ${qos} messages in the publisher's order`)
    t.strictSame(gotB.messages.filter((m) => !m.topic.endsWith('/x')).map((m) => m.payload.toString()).sort(), ['b only', 'parent'], '[MQTT-4.7.1-2] r/# matches r, across nodes')
  })

  await t.test('a persistent session leaves node A and resumes on node C with the QoS 1 messages published on B meanwhile', async (t) => {
    const session = { clientId: 'traveller', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
    const first = await connectClient(t, a.url, session)
    const live = collect(first)
    await first.subscribeAsync('q/#', { qos: 1 })
    const publisher = await connectClient(t, b.url, { clientId: 'pub-b', protocolVersion: 5 })
    await routeReady(publisher, 'q/probe', () => live.messages.some((m) => m.topic === 'q/probe'), { qos: 1, step: 50 })
    await first.endAsync()
    for (let i = 1; i <= 5; i++) await publisher.publishAsync(`q/${i}`, `m${i}`, { qos: 1 })

    // the handler attached before the CONNACK: the queue follows it at once
    const resumed = mqtt.connect(c.url, { reconnectPeriod: 0, connectTimeout: 5000, ...session })
    t.teardown(() => { resumed.end(true) })
    const got = collect(resumed)
    const present = await new Promise<boolean>((resolve, reject) => {
      resumed.once('connect', (connack) => resolve(connack.sessionPresent))
      resumed.once('error', reject)
    })
    t.equal(present, true, '[MQTT-3.2.2-3] Session Present 1 on node C')
    await got.next(5, 10000)
    await sleep(200)
    t.strictSame(got.messages.map((m) => [m.topic, m.payload.toString(), m.qos]), [1, 2, 3, 4, 5].map((i) => [`q/${i}`, `m${i}`, 1]),
      'the five queued messages, once each, in order, on node C')
  })

  await t.test('a session ends on the cluster at its expiry [MQTT-3.1.2-23]: the registry in the {culex} slot, then the hash on its own master; the client finds no session', async (t) => {
    const session = { clientId: 'brief', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 1 } }
    const first = await connectClient(t, b.url, session)
    await first.subscribeAsync('brief/#', { qos: 1 })
    const hash = 'culex:session:{brief}'
    t.equal(clusterCli(masterOf(cluster, hash), 'EXISTS', hash), '1', 'the session\'s hash is in Redis')
    await first.endAsync()
    await waitFor(() => clusterCli(masterOf(cluster, hash), 'EXISTS', hash) === '0', { timeout: 6000, what: 'the hash deleted once the interval passed' })
    const record = masterOf(cluster, '{culex}:client:brief')
    t.not(record, masterOf(cluster, hash), 'the registry record and the hash are on different masters')
    t.equal(clusterCli(record, 'HGET', '{culex}:client:brief', 'ended'), clusterCli(record, 'HGET', '{culex}:client:brief', 'epoch'), 'the record names the epoch the session ended at')
    const again = mqtt.connect(a.url, { reconnectPeriod: 0, connectTimeout: 5000, ...session })
    t.teardown(() => { again.end(true) })
    const present = await new Promise<boolean>((resolve, reject) => {
      again.once('connect', (connack) => resolve(connack.sessionPresent))
      again.once('error', reject)
    })
    t.equal(present, false, 'Session Present 0 on node A')
  })

  await t.test('retained messages set on node A are read by a subscriber on node C, and a delete on B reaches it too; a node started after them loads them from every master', async (t) => {
    const setter = await connectClient(t, a.url, { clientId: 'ret-a', protocolVersion: 5 })
    for (let i = 0; i < 6; i++) await setter.publishAsync(`ret/${i}`, `v${i}`, { qos: 1, retain: true })
    const deleter = await connectClient(t, b.url, { clientId: 'ret-b', protocolVersion: 5 })
    await deleter.publishAsync('ret/5', '', { qos: 1, retain: true })
    const readOn = async (url: string): Promise<boolean> => {
      const reader = await connectClient(t, url, { clientId: `ret-reader-${Date.now()}`, protocolVersion: 5 })
      const got = collect(reader)
      await reader.subscribeAsync('ret/+', { qos: 1 })
      await sleep(300)
      await reader.endAsync()
      return got.messages.map((m) => `${m.topic}=${m.payload.toString()}`).sort().join(',') === 'ret/0=v0,ret/1=v1,ret/2=v2,ret/3=v3,ret/4=v4'
    }
    await waitFor(async () => await readOn(c.url), { timeout: 5000, step: 100, what: 'the retained messages of A, less the one B deleted, on node C' })
    t.pass('node C holds what A set and B deleted')
    const masters = new Set([0, 1, 2, 3, 4].map((i) => masterOf(cluster, `culex:retained:{ret/${i}}`)))
    t.ok(masters.size >= 2, `the five topics are on ${masters.size} masters`)
    const d = await startNode(t, cluster, ['--node-id', 'd'])
    t.ok(await readOn(d.url), 'node D, started after them, read all five at its join (a SCAN of each master)')
    d.child.kill('SIGTERM')
    await d.exit
  })

  await t.test('one shared group with members on A, B and C: 600 QoS 1 messages from A, each delivered exactly once [MQTT-4.8.2-2]; the keys spread over the masters', async (t) => {
    const group = '$share/workers/jobs/#'
    const members = await Promise.all([a, b, c].map(async (node, i) => await connectClient(t, node.url, { clientId: `member-${i}`, protocolVersion: i === 1 ? 4 : 5 })))
    const got = members.map(collect)
    for (const m of members) await m.subscribeAsync(group, { qos: 1 })
    await waitFor(() => clusterCli(masterOf(cluster, `culex:share:{${group}}`), 'XINFO', 'CONSUMERS', `culex:share:{${group}}`, 'culex').split('\n').filter((l) => /^[abc]$/.test(l)).length === 3,
      { timeout: 10000, what: 'the three nodes reading the group\'s stream' })
    const publisher = await connectClient(t, a.url, { clientId: 'pub-share', protocolVersion: 5 })
    const all = (): string[] => got.flatMap((g) => g.messages.map((m) => m.payload.toString()))
    await routeReady(publisher, 'jobs/probe', () => all().length > 0, { qos: 1, step: 50 })
    await sleep(300)
    for (const g of got) g.messages.length = 0

    const N = 600
    await publishMany(publisher, N, (i) => ({ topic: `jobs/${i % 5}`, payload: String(i) }), 50)
    await waitFor(() => all().length >= N, { timeout: 20000, what: () => `${N} deliveries (have ${all().length})` })
    await sleep(500)
    t.same(duplicates(all()), [], 'no message twice')
    t.equal(new Set(all()).size, N, 'every message delivered')
    t.equal(all().length, N, 'and nothing else')
    got.forEach((g, i) => { t.ok(g.messages.length > 0, `the member on node ${'abc'[i] as string} got a share: ${g.messages.length}`) })

    // while the group has members (its stream goes with the last of them)
    const coordination = masterOf(cluster, '{culex}:nodes')
    const entity = keysByMaster(cluster, 'culex:*')
    const keys = [...entity.values()].flat()
    t.ok(keys.includes('culex:session:{traveller}'), 'the session\'s hash is in the cluster')
    t.ok(keys.includes(`culex:share:{${group}}`), 'so is the group\'s stream')
    t.equal(keys.filter((k) => k.startsWith('culex:retained:')).length, 5, 'and the five retained topics')
    const holding = [...entity].filter(([, keys]) => keys.length > 0).map(([port]) => port)
    t.ok(holding.length >= 2, `the per-entity keys are on ${holding.length} masters`)
    t.ok(holding.some((port) => port !== coordination), 'some on a master other than the coordination slot\'s')
    const tagged = keysByMaster(cluster, '{culex}:*')
    t.same([...tagged].filter(([, keys]) => keys.length > 0).map(([port]) => port), [coordination], 'every {culex}: key on the one master of its slot')
  })
})
