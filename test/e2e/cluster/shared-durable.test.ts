/**
 * A cluster-wide shared group whose members are all offline (persistent
 * sessions) keeps its messages in Redis (lib/cluster/shared-stream.ts), through
 * a node's restart and a Redis SIGKILL and restart (appendfsync always); the
 * first member back, on any node, gets every one of them.
 */
import t from 'tap'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { readyz, redisCli, type RedisProcess, startCluster, startNode, startRedis } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { duplicates, publishMany } from '../../helpers/share.js'

const GROUP = '$share/durable/orders/#'
const STREAM = `culex:share:{${GROUP}}`

function xlen (redis: RedisProcess): number {
  return Number(/\d+/.exec(redisCli(redis, 'XLEN', STREAM))?.[0] ?? -1)
}

t.test('every member offline: the group queues in Redis through a node restart and a Redis SIGKILL + restart; the first member back, on another node, gets everything', async (t) => {
  let redis = await startRedis(t, { appendfsync: 'always' })
  const a = await startNode(t, redis, ['--node-id', 'a'])
  let b = await startNode(t, redis, ['--node-id', 'b'])
  const c = await startNode(t, redis, ['--node-id', 'c'])
  const v5 = { clientId: 'durable-v5', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } }
  const v4 = { clientId: 'durable-v4', protocolVersion: 4 as const, clean: false }
  const first = await connectClient(t, b.url, v5)
  const second = await connectClient(t, c.url, v4)
  await first.subscribeAsync(GROUP, { qos: 1 })
  await second.subscribeAsync(GROUP, { qos: 1 })
  await waitFor(() => redisCli(redis, 'HEXISTS', '{culex}:share:groups', GROUP) === '(integer) 1', { timeout: 5000, what: 'the group known to the cluster' })
  await first.endAsync()
  await second.endAsync()

  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  const refusals: string[] = []
  publisher.on('error', (err) => { refusals.push(err.message) })
  const N = 500
  await publishMany(publisher, N, (i) => ({ topic: `orders/${i}`, payload: String(i) }), 50)
  t.equal(xlen(redis), N, 'with every member offline, the group\'s messages wait in its stream')

  // the node the v5 member was on restarts
  b.child.kill('SIGKILL')
  await b.exit
  b = await startNode(t, redis, ['--node-id', 'b'])
  // and Redis dies and comes back from its append-only file
  await redis.kill()
  redis = await redis.restart()
  t.equal(xlen(redis), N, 'the queue survived Redis\' SIGKILL (appendfsync always)')
  await waitFor(async () => {
    try {
      await publisher.publishAsync('orders/after', 'after', { qos: 1 })
      return true
    } catch (err) {
      refusals.push(String(err))
      return false
    }
  }, { timeout: 15000, step: 250, what: 'node A publishing again once Redis is back' })

  await waitFor(async () => (await readyz(a)).status === 200, { timeout: 15000, step: 250, what: 'node A ready again' })
  // the v5 member comes back on node A, a node it never was on
  const back = await connectClient(t, a.url, v5)
  const got = collect(back)
  const expected = N + 1
  await waitFor(() => got.messages.length >= expected, { timeout: 20000, what: () => `the returning member getting the queue (${got.messages.length} of ${expected}; stream ${xlen(redis)}, pending ${redisCli(redis, 'XPENDING', STREAM, 'culex')}; logs ${JSON.stringify([a, b, c].map((n) => n.logs.filter((l) => l.module === 'cluster' && Number(l.level) >= 30 && String(l.msg).includes('shar'))))})` })
  await new Promise((resolve) => setTimeout(resolve, 500))
  const payloads = got.messages.map((m) => m.payload.toString())
  t.same(duplicates(payloads), [], 'each once')
  t.equal(new Set(payloads).size, expected, 'every queued message, zero lost')
  t.ok(payloads.includes('after'), 'and the one published after Redis came back')
  t.comment(`publishes refused while Redis was away: ${refusals.length} (${refusals[0] ?? ''})`)
  await waitFor(() => xlen(redis) === 0, { timeout: 5000, what: () => `the stream emptied by the acknowledgements (${xlen(redis)} left)` })
})

t.test('Redis refusing the write of a message for a cluster group (out of memory): MQTT 5 PUBACK 0x80 with the reason, not a silent loss; accepted again once memory is freed', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { redis: { args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] } })
  const member = await connectClient(t, b.url, { clientId: 'member', protocolVersion: 5 })
  const got = collect(member)
  await member.subscribeAsync('$share/oom/o/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  publisher.on('error', () => {})
  await waitFor(async () => {
    await publisher.publishAsync('o/probe', 'probe', { qos: 1 })
    return got.messages.length > 0
  }, { timeout: 5000, step: 100, what: 'a probe reaching the member on node B' })

  redisCli(redis, 'SETRANGE', 'filler', String(6 * 1024 * 1024), 'x')
  const reasons: string[] = []
  publisher.on('packetreceive', (p) => { if (p.cmd === 'puback' && typeof p.properties?.reasonString === 'string') reasons.push(p.properties.reasonString) })
  let refusal: (Error & { code?: number }) | undefined
  try {
    await publisher.publishAsync('o/refused', 'refused', { qos: 1 })
  } catch (err) {
    refusal = err as Error & { code?: number }
  }
  t.equal(refusal?.code, 0x80, 'PUBACK 0x80 Unspecified error')
  t.match(reasons[0] ?? '', /shared subscription groups not stored: the cluster's Redis is out of memory/, 'its Reason String says the groups did not get it, and why')
  redisCli(redis, 'DEL', 'filler')
  await waitFor(async () => (await readyz(a)).status === 200, { timeout: 10000, step: 200, what: 'node A ready again' })
  await publisher.publishAsync('o/accepted', 'accepted', { qos: 1 })
  await waitFor(() => got.messages.some((m) => m.topic === 'o/accepted'), { timeout: 5000, what: 'the next message reaching the member' })
  t.notOk(got.messages.some((m) => m.topic === 'o/refused'), 'the refused message reached no member')
})
