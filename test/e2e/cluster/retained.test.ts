/**
 * Retained messages cluster-wide: set on one node, read by a new subscriber
 * on another (with `+` and `#`), replaced on a third, deleted on a fourth;
 * MQTT 5 properties and Message Expiry kept; a node started after the message
 * was set sees it; `$SYS` stays out of Redis (its values reach the other
 * nodes by routing: sys.test.ts).
 */
import t, { type Test } from 'tap'
import type { IPublishPacket } from 'mqtt'
import { connectClient, collect, type Version } from '../../helpers/mqtt.js'
import { redisCli, startCluster, startNode, startRedis } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

let n = 0
/** The retained messages a new subscriber to `filters` on `url` gets. */
async function retainedAt (t: Test, url: string, filters: string[], protocolVersion: Version = 5): Promise<IPublishPacket[]> {
  const client = await connectClient(t, url, { clientId: `reader-${n++}`, protocolVersion })
  const got = collect(client)
  await client.subscribeAsync(filters, { qos: 1 })
  await sleep(150)
  await client.endAsync()
  return got.messages.filter((m) => m.retain)
}

const summary = (messages: IPublishPacket[]): string[] => messages.map((m) => `${m.topic}=${m.payload.toString()}`).sort()

/** Waits until a new subscriber to `filters` on `url` gets exactly `expected` (`topic=payload`, sorted); returns what it got. */
async function seen (t: Test, url: string, filters: string[], expected: string[], protocolVersion: Version = 5): Promise<IPublishPacket[]> {
  let last: IPublishPacket[] = []
  let refused = ''
  await waitFor(async () => {
    try {
      last = await retainedAt(t, url, filters, protocolVersion)
    } catch (err) {
      // CONNACK 0x88 while the node cannot reach Redis (after a Redis restart): it recovers by itself
      refused = String(err)
      return false
    }
    return JSON.stringify(summary(last)) === JSON.stringify(expected)
  }, { timeout: 5000, step: 50, what: () => `${expected.join(', ')} at ${url} (got ${summary(last).join(', ')}; last refusal: ${refused})` })
  return last
}

t.test('set on A, read on B with + and #, replaced on C, deleted on B; a node started later sees it', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])

  const onA = await connectClient(t, a.url, { clientId: 'setter-a', protocolVersion: 5 })
  await onA.publishAsync('r/x/1', 'one', { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, payloadFormatIndicator: true } })
  await onA.publishAsync('r/y', 'why', { qos: 0, retain: true })
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{r/x/1}'), '(integer) 1', 'the QoS 1 retained message is in Redis when A acknowledges it')

  const plus = await seen(t, b.url, ['r/+/1'], ['r/x/1=one'])
  t.match(plus[0], { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, payloadFormatIndicator: true } },
    '[MQTT-3.3.1-9] a new subscriber on B gets it with RETAIN 1 and its MQTT 5 properties')
  await seen(t, b.url, ['r/#'], ['r/x/1=one', 'r/y=why'])
  const v311 = await seen(t, b.url, ['r/#'], ['r/x/1=one', 'r/y=why'], 4)
  t.same(v311.map((m) => m.qos).sort(), [0, 1], 'MQTT 3.1.1 subscriber on B: both, each at its own QoS')
  await seen(t, c.url, ['#'], ['r/x/1=one', 'r/y=why'])

  const onC = await connectClient(t, c.url, { clientId: 'replacer-c', protocolVersion: 4 })
  await onC.publishAsync('r/x/1', 'two', { qos: 1, retain: true })
  const replaced = await seen(t, a.url, ['r/+/1'], ['r/x/1=two'])
  t.equal(replaced[0]?.properties?.contentType, undefined, '[MQTT-3.3.1-5] the replacement replaced the message, properties included')
  await seen(t, b.url, ['r/x/#'], ['r/x/1=two'])

  const onB = await connectClient(t, b.url, { clientId: 'deleter-b', protocolVersion: 5 })
  await onB.publishAsync('r/y', '', { qos: 1, retain: true })
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{r/y}'), '(integer) 0', 'the delete is in Redis when B acknowledges it')
  for (const node of [a, b, c]) await seen(t, node.url, ['r/#'], ['r/x/1=two'])
  t.pass('[MQTT-3.3.1-6] the empty payload deleted r/y on every node')

  const d = await startNode(t, redis, ['--node-id', 'd'])
  await seen(t, d.url, ['r/#'], ['r/x/1=two'])
  await seen(t, d.url, ['r/+/1'], ['r/x/1=two'])
  t.pass('node d, started after the message was set, has it')
})

t.test('Message Expiry is honoured on every node: the remaining interval travels, an expired message is sent nowhere', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const onA = await connectClient(t, a.url, { clientId: 'expiring', protocolVersion: 5 })
  await onA.publishAsync('exp/short', 'soon gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 2 } })
  await onA.publishAsync('exp/long', 'stays', { qos: 1, retain: true, properties: { messageExpiryInterval: 300 } })
  const early = await seen(t, b.url, ['exp/#'], ['exp/long=stays', 'exp/short=soon gone'])
  const long = early.find((m) => m.topic === 'exp/long')
  const interval = long?.properties?.messageExpiryInterval ?? 0
  t.ok(interval > 290 && interval <= 300, `[MQTT-3.3.2-6] B sends the remaining expiry interval (${interval} s)`)
  await sleep(2200)
  for (const node of [a, b]) await seen(t, node.url, ['exp/#'], ['exp/long=stays'])
  t.pass('[MQTT-3.3.2-5] after 2 s the expired message reaches no new subscriber on A or B')
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{exp/short}'), '(integer) 0', 'and Redis dropped its key at the deadline')
  const c = await startNode(t, redis, ['--node-id', 'c'])
  await seen(t, c.url, ['exp/#'], ['exp/long=stays'])
})

t.test('$SYS retained messages are not written to Redis', async (t) => {
  const { redis, nodes: [a] } = await startCluster(t, ['a', 'b'], { nodeArgs: { a: ['--sys-interval', '1'] } })
  await waitFor(async () => (await retainedAt(t, a.url, ['$SYS/brokers/a/cluster/nodes'])).length === 1, { timeout: 5000, what: 'a\'s $SYS' })
  t.equal(redisCli(redis, '--raw', 'KEYS', 'culex:retained:*'), '', 'nothing of $SYS in Redis')
})

t.test('a retained message the writer\'s limits refuse is not written for the cluster', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { nodeArgs: { a: ['--max-retained-payload', '4'] } })
  const onA = await connectClient(t, a.url, { clientId: 'limited', protocolVersion: 5 })
  await onA.publishAsync('lim/big', 'too long', { qos: 1, retain: true })
  await onA.publishAsync('lim/ok', 'fits', { qos: 1, retain: true })
  await seen(t, b.url, ['lim/#'], ['lim/ok=fits'])
  await seen(t, a.url, ['lim/#'], ['lim/ok=fits'])
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{lim/big}'), '(integer) 0', 'over maxRetainedPayload on a: not in Redis')
})

t.test('a retained write Redis cannot take is an error to its publisher, not a hang; the node\'s cache then follows Redis again', async (t) => {
  const redis = await startRedis(t)
  const a = await startNode(t, redis, ['--node-id', 'a'])
  const before = await connectClient(t, a.url, { clientId: 'before', protocolVersion: 5 })
  await before.publishAsync('w/kept', 'kept', { qos: 1, retain: true })
  const v5 = await connectClient(t, a.url, { clientId: 'writer-5', protocolVersion: 5 })
  const v4 = await connectClient(t, a.url, { clientId: 'writer-4', protocolVersion: 4 })
  const closed = (client: typeof v5): Promise<void> => new Promise((resolve) => { client.once('close', () => resolve()) })
  const gone = closed(v4)
  await redis.kill()
  const sentAt = Date.now()
  const refused = v5.publishAsync('w/lost', 'x', { qos: 1, retain: true }).then(() => 0, (err: { code?: number }) => err.code)
  let acked = false
  v4.publish('w/lost4', 'x', { qos: 1, retain: true }, (err) => { if (err === undefined || err === null) acked = true })
  const [reason] = await Promise.all([refused, gone])
  t.ok(Date.now() - sentAt < 2500, `both publishers learn it within ${Date.now() - sentAt} ms`)
  t.equal(reason, 0x80, 'MQTT 5: PUBACK 0x80 Unspecified error')
  t.equal(v5.connected, true, 'MQTT 5: the connection goes on')
  t.equal(acked, false, '3.1.1: the connection is closed, no PUBACK')
  const again = await redis.restart()
  // Redis came back empty (no AOF): after the lost lease the node reads it again and drops what Redis does not hold
  let last = 'nothing read yet'
  await waitFor(async () => {
    try {
      last = summary(await retainedAt(t, a.url, ['w/#'])).join(', ')
      return last === ''
    } catch (err) {
      last = String(err)
      return false
    }
  }, { timeout: 10000, step: 200, what: () => `a's cache emptied like Redis (${last})` })
  t.equal(redisCli(again, '--raw', 'KEYS', 'culex:retained:*'), '', 'Redis holds none')
  t.pass('the node\'s cache holds neither the refused writes nor what the restarted Redis lost')
})

t.test('with Redis\' AOF (appendfsync always) retained messages survive a Redis SIGKILL and restart, on running and new nodes', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { redis: { appendfsync: 'always' } })
  const onA = await connectClient(t, a.url, { clientId: 'durable', protocolVersion: 5 })
  await onA.publishAsync('d/1', 'one', { qos: 1, retain: true, properties: { userProperties: { k: 'v' } } })
  await redis.kill()
  const again = await redis.restart()
  await waitFor(() => redisCli(again, 'EXISTS', 'culex:retained:{d/1}') === '(integer) 1', { what: 'the AOF read back' })
  const onB = await seen(t, b.url, ['d/#'], ['d/1=one'])
  t.match(onB[0]?.properties, { userProperties: { k: 'v' } }, 'b still has it, with its properties')
  const c = await startNode(t, again, ['--node-id', 'c'])
  await seen(t, c.url, ['d/+'], ['d/1=one'])
  t.pass('a node started after the restart reads it from Redis')
})
