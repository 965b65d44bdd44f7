/**
 * Sessions in Redis: a persistent session with subscriptions and queued QoS
 * 1 messages that disconnects from node A resumes on node C with its
 * subscriptions and queue intact (MQTT 5 with its properties, and 3.1.1);
 * the session's hash names the epoch of the claim that loaded it; so does
 * the session of a client whose node was killed; a node paused past a
 * takeover writes nothing over the session (fencing); a node joining a
 * cluster that holds many sessions reads none of them.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt'
import { encodeRecord } from '../../../lib/persistence/codec.js'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { redisCli, startCluster, startNode, startRedis, waitForLog } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** connects with the message handler attached before the CONNACK (README "Receiving a resumed queue") */
async function resume (t: Test, url: string, opts: mqtt.IClientOptions): Promise<{ client: MqttClient, sessionPresent: boolean, messages: IPublishPacket[] }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  t.teardown(() => { client.end(true) })
  const messages: IPublishPacket[] = []
  client.on('message', (_topic, _payload, packet) => { messages.push(packet) })
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent))
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  return { client, sessionPresent, messages }
}

function sessionFields (redis: { port: number }, clientId: string): string[] {
  return redisCli(redis, '--raw', 'HKEYS', `culex:session:{${clientId}}`).split('\n').filter((f) => f !== '').sort()
}

for (const version of [5, 4] as const) {
  const v = version === 5 ? 'MQTT 5' : '3.1.1'
  t.test(`${v}: a persistent session leaves node A and resumes on node C with its subscriptions and queue`, async (t) => {
    const { redis, nodes: [a, , c] } = await startCluster(t, ['a', 'b', 'c'])
    const id = `traveller-${version}`
    const session = { clientId: id, clean: false, protocolVersion: version, ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) }

    const first = await connectClient(t, a.url, session)
    await first.subscribeAsync('q/#', { qos: 1, ...(version === 5 ? { properties: { subscriptionIdentifier: 7 } } : {}) })
    await first.subscribeAsync('other/+', { qos: 1 })
    await first.endAsync()

    // queued on node A for the offline session, each acknowledged once in Redis
    const publisher = await connectClient(t, a.url, { clientId: `pub-${version}`, protocolVersion: 5 })
    for (let i = 1; i <= 5; i++) {
      await publisher.publishAsync(`q/${i}`, `m${i}`, { qos: 1, properties: { userProperties: { n: String(i) }, contentType: 'text/plain' } })
    }
    t.equal(sessionFields(redis, id).filter((f) => f.startsWith('q:')).length, 5, 'the five queued messages are in the session\'s hash in Redis')

    const resumed = await resume(t, c.url, session)
    t.equal(resumed.sessionPresent, true, '[MQTT-3.2.2-3] Session Present 1 on node C')
    await waitFor(() => resumed.messages.length >= 5, { timeout: 5000, what: () => `5 queued messages on node C (${resumed.messages.length})` })
    t.strictSame(resumed.messages.map((m) => [m.topic, m.payload.toString(), m.qos]),
      [1, 2, 3, 4, 5].map((i) => [`q/${i}`, `m${i}`, 1]), 'the queue, in order, at QoS 1')
    if (version === 5) {
      t.strictSame({ ...resumed.messages[0]?.properties?.userProperties }, { n: '1' }, 'with their MQTT 5 properties')
      t.equal(resumed.messages[0]?.properties?.contentType, 'text/plain')
      t.strictSame(resumed.messages[0]?.properties?.subscriptionIdentifier, 7, 'and the subscription identifier of the stored subscription')
    }

    // its subscriptions moved with it: node C matches them for a new publish there
    const localPublisher = await connectClient(t, c.url, { clientId: `pub-c-${version}`, protocolVersion: 5 })
    const more = collect(resumed.client)
    await localPublisher.publishAsync('other/x', 'after', { qos: 1 })
    const [after] = await more.next(1)
    t.equal(after?.topic, 'other/x', 'a subscription made on node A delivers on node C')

    await waitFor(() => !sessionFields(redis, id).some((f) => f.startsWith('q:')), { timeout: 5000, what: () => `acknowledged messages deleted in Redis (${sessionFields(redis, id).join(' ')})` })
    t.equal(redisCli(redis, '--raw', 'HGET', `culex:session:{${id}}`, 'epoch'), redisCli(redis, '--raw', 'HGET', `{culex}:client:${id}`, 'epoch'),
      'the session is held at the epoch of node C\'s claim')
  })
}

t.test('the session of a client whose node was killed (SIGKILL) resumes on another node with its queue', async (t) => {
  const { nodes: [a, c] } = await startCluster(t, ['a', 'c'])
  const id = 'orphan'
  const session = { clientId: id, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
  const first = await connectClient(t, a.url, session)
  await first.subscribeAsync('k/#', { qos: 1 })
  await first.endAsync()
  const publisher = await connectClient(t, a.url, { clientId: 'orphan-pub' })
  publisher.on('error', () => {})
  for (let i = 1; i <= 3; i++) await publisher.publishAsync(`k/${i}`, `n${i}`, { qos: 1 })
  a.child.kill('SIGKILL')
  await a.exit
  const resumed = await resume(t, c.url, session)
  t.equal(resumed.sessionPresent, true, 'Session Present 1 on node C')
  await waitFor(() => resumed.messages.length >= 3, { timeout: 5000, what: () => `3 queued messages on node C (${resumed.messages.length})` })
  t.strictSame(resumed.messages.map((m) => m.payload.toString()), ['n1', 'n2', 'n3'], 'every acknowledged message, in order')
})

t.test('[fencing] a node paused past a takeover writes nothing over the session its new node loaded', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const id = 'fenced-session'
  const session = { clientId: id, clean: false, protocolVersion: 5 as const, keepalive: 0, properties: { sessionExpiryInterval: 300 } }
  const old = await connectClient(t, a.url, session)
  old.on('error', () => {})
  await old.subscribeAsync('s/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'fenced-pub', keepalive: 0 })
  publisher.on('error', () => {})

  a.child.kill('SIGSTOP')
  await waitForLog(b, (l) => l.msg === 'cluster: node a left', 'b sees a leave once its lease runs out', 8000)
  const fresh = await resume(t, b.url, session)
  t.equal(fresh.sessionPresent, true, 'b loaded the session while a is paused')
  // what the paused node will do when it resumes: a SUBSCRIBE of its stale connection, a message queued for the session
  old.subscribe('stale/#', { qos: 1 })
  publisher.publish('s/stale', 'stale message', { qos: 1 })

  a.child.kill('SIGCONT')
  await waitForLog(a, (l) => typeof l.msg === 'string' && l.msg.startsWith('this node\'s lease had expired'), 'a notices its lease had expired')
  await waitFor(() => !old.connected, { timeout: 5000, what: 'a closes its stale connection' })
  await sleep(500)
  const fields = redisCli(redis, '--raw', 'HGETALL', `culex:session:{${id}}`)
  t.notOk(fields.includes('stale'), 'no stale subscription or message in the session in Redis')
  t.ok(sessionFields(redis, id).some((f) => f.endsWith(':s/#')), 'the session keeps its subscription')
  // b adopted a's sessions when a left (lib/cluster/adoption.ts), then the client's claim on b: the session is at that claim's epoch
  t.equal(redisCli(redis, '--raw', 'HGET', `{culex}:client:${id}`, 'node'), 'b', 'b owns the id')
  t.equal(redisCli(redis, '--raw', 'HGET', `culex:session:{${id}}`, 'epoch'), redisCli(redis, '--raw', 'HGET', `{culex}:client:${id}`, 'epoch'), 'held at the epoch of b\'s claim')
  const refused = a.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('session write refused'))
  t.comment(refused ? 'a\'s stale write reached Redis and was refused' : 'a dropped its copy (the takeover notice) before writing')
  t.equal(fresh.client.connected, true, 'the session\'s connection on b stays')
})

t.test('a node joining a cluster that holds 20,000 sessions reads none of them', async (t) => {
  const redis = await startRedis(t)
  const seeder = new Redis(redis.url)
  const pipeline = seeder.pipeline()
  for (let i = 0; i < 20_000; i++) pipeline.hset(`culex:session:{seeded-${i}}`, 'epoch', '1', `x:seeded-${i}`, Buffer.from(encodeRecord({ expiresAt: null })))
  await pipeline.exec()
  seeder.disconnect()
  t.equal(redisCli(redis, '--raw', 'DBSIZE'), '20000', 'seeded')
  const figures = (): Record<string, number> => {
    const out: Record<string, number> = {}
    for (const line of redisCli(redis, '--raw', 'INFO', 'all').split('\n')) {
      const calls = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line.trim())
      if (calls !== null) out[calls[1] as string] = Number(calls[2])
      const hits = /^keyspace_(hits|misses):(\d+)/.exec(line.trim())
      if (hits !== null) out[`keyspace_${hits[1] as string}`] = Number(hits[2])
    }
    return out
  }
  // every command Redis runs from here on (scripts' own calls included), to see which keys the join touches
  const watcher = new Redis(redis.url)
  const monitor = await watcher.monitor()
  const sessionKeys: string[] = []
  monitor.on('monitor', (_time: string, args: string[]) => {
    for (const arg of args) if (String(arg).startsWith('culex:session:')) sessionKeys.push(String(arg))
  })
  const stopMonitor = (): void => { monitor.removeAllListeners('monitor'); monitor.disconnect(false); watcher.disconnect(false) }
  t.teardown(stopMonitor)
  const before = figures()
  const started = Date.now()
  const node = await startNode(t, redis, ['--node-id', 'joiner'])
  const readyMs = Date.now() - started
  const after = figures()
  const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0)
  const changed = Object.fromEntries(Object.keys(after).map((k) => [k, delta(k)]).filter(([, n]) => Number(n) > 0))
  const times = node.logs.map((l) => Number(l.time))
  const joined = node.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('joined the cluster'))
  t.comment(`node process up in ${readyMs} ms, joined ${Number(joined?.time) - Math.min(...times)} ms after its first log line, with 20,000 sessions in Redis; Redis at its join: ${JSON.stringify(changed)}`)
  t.same(sessionKeys, [], 'no session key touched at join')
  // a read of each session would be 20,000 hits; the node's own keys (lease, nodes, routes) are a handful
  t.ok(delta('keyspace_hits') < 100, `keys read at join: ${delta('keyspace_hits')}`)
  const client = await connectClient(t, node.url, { clientId: 'seeded-7', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 60 } })
  t.ok(client.connected, 'a seeded session is claimed on the new node')
  t.same([...new Set(sessionKeys)], ['culex:session:{seeded-7}'], 'the claim reads its own session only')
  stopMonitor()
})
