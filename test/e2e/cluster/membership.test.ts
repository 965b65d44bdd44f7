/**
 * Node membership on Redis: nodes see each other join and leave (a SIGTERM
 * at once, a SIGKILL when its lease runs out); `$SYS/brokers/{node}/` per
 * node; while Redis cannot be reached (paused, or killed and restarted on
 * the same port) /readyz is 503 and new CONNECTs get CONNACK 0x88 (3.1.1:
 * return code 3), and the node recovers by itself when Redis is back.
 */
import t, { type Test } from 'tap'
import { rawConnect } from '../../helpers/raw5.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { readyz, redisCli, startCluster, startNode, startRedis, waitForLog } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'

const joined = (id: string) => (l: Record<string, unknown>) => l.msg === `cluster: node ${id} joined`
const left = (id: string) => (l: Record<string, unknown>) => l.msg === `cluster: node ${id} left`

t.test('three nodes see each other join; a stopped node leaves at once, a killed one when its lease runs out', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'], { nodeArgs: { a: ['--sys-interval', '1'] } })
  for (const [node, others] of [[a, ['b', 'c']], [b, ['a', 'c']], [c, ['a', 'b']]] as const) {
    for (const id of others) await waitForLog(node, joined(id), `node ${id} joined, as seen by another`, 5000)
  }
  t.equal(redisCli(redis, 'ZCARD', '{culex}:nodes'), '(integer) 3', 'three leases in Redis')

  const sys = await connectClient(t, a.url)
  const got = collect(sys)
  await sys.subscribeAsync('$SYS/brokers/a/cluster/nodes')
  await t.resolves(waitFor(() => got.messages.some((m) => m.payload.toString() === '3'), { timeout: 5000, what: '$SYS/brokers/a/cluster/nodes = 3' }), '$SYS/brokers/a/cluster/nodes says 3')

  const stoppedAt = Date.now()
  c.child.kill('SIGTERM')
  await waitForLog(a, left('c'), 'c left, seen by a', 3000)
  await waitForLog(b, left('c'), 'c left, seen by b', 3000)
  t.pass(`a stopped node is seen leaving at once (${Date.now() - stoppedAt} ms)`)

  const killedAt = Date.now()
  b.child.kill('SIGKILL')
  await waitForLog(a, left('b'), 'b left, seen by a', 8000)
  const after = Date.now() - killedAt
  t.ok(after >= 1000, `a killed node is seen leaving when its lease runs out (${after} ms; lease 3000 ms)`)
  t.equal(redisCli(redis, 'ZRANGE', '{culex}:nodes', '0', '-1'), '1) "a"', 'only a is left in Redis')
  await t.resolves(waitFor(() => got.messages.at(-1)?.payload.toString() === '1', { timeout: 5000, what: '$SYS/brokers/a/cluster/nodes = 1' }), '$SYS/brokers/a/cluster/nodes falls to 1')
  t.ok(got.messages.every((m) => m.topic === '$SYS/brokers/a/cluster/nodes'))
})

async function refusedWhileDown (t: Test, port: number): Promise<void> {
  const v5 = await rawConnect(t, port, 5)
  t.equal(v5.connack.reasonCode, 0x88, 'MQTT 5: CONNACK 0x88 Server unavailable')
  const v4 = await rawConnect(t, port, 4)
  t.equal(v4.connack.returnCode, 3, 'MQTT 3.1.1: CONNACK return code 3 (server unavailable)')
}

async function acceptedAgain (t: Test, port: number): Promise<void> {
  const v5 = await rawConnect(t, port, 5)
  t.equal(v5.connack.reasonCode, 0, 'MQTT 5: accepted again')
  const v4 = await rawConnect(t, port, 4)
  t.equal(v4.connack.returnCode, 0, 'MQTT 3.1.1: accepted again')
}

t.test('Redis paused (SIGSTOP): /readyz 503 and CONNECT refused; SIGCONT: the node recovers by itself', async (t) => {
  const redis = await startRedis(t)
  const node = await startNode(t, redis, ['--node-id', 'p'])
  t.equal((await readyz(node)).status, 200, 'ready while Redis answers')
  const live = await connectClient(t, node.url)

  redis.child.kill('SIGSTOP')
  const pausedAt = Date.now()
  let report = await readyz(node)
  await waitFor(async () => (report = await readyz(node)).status === 503, { timeout: 6000, what: '/readyz 503 while Redis is paused' })
  t.pass(`/readyz is 503 ${Date.now() - pausedAt} ms after the pause`)
  t.match(report.body.reasons, [/^cluster: /], 'the reason names the cluster')
  await refusedWhileDown(t, node.port)
  t.equal(live.connected, true, 'a client already connected stays connected')

  redis.child.kill('SIGCONT')
  const resumedAt = Date.now()
  await waitFor(async () => (await readyz(node)).status === 200, { timeout: 6000, what: '/readyz 200 after SIGCONT' })
  t.pass(`/readyz is 200 again ${Date.now() - resumedAt} ms after SIGCONT`)
  await acceptedAgain(t, node.port)
  t.equal(redisCli(redis, 'ZRANGE', '{culex}:nodes', '0', '-1'), '1) "p"', 'the lease is held again')
})

t.test('Redis killed and restarted on the same port: the node recovers without a restart of its own', async (t) => {
  const redis = await startRedis(t)
  const node = await startNode(t, redis, ['--node-id', 'r'])
  await redis.kill()
  await waitFor(async () => (await readyz(node)).status === 503, { timeout: 5000, what: '/readyz 503 while Redis is down' })
  await refusedWhileDown(t, node.port)
  await waitForLog(node, (l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: cannot reach Redis'), 'the log says Redis cannot be reached')

  const again = await redis.restart()
  await waitFor(async () => (await readyz(node)).status === 200, { timeout: 8000, what: '/readyz 200 after the restart' })
  await acceptedAgain(t, node.port)
  t.equal(redisCli(again, 'ZRANGE', '{culex}:nodes', '0', '-1'), '1) "r"', 'the lease is taken anew in the new Redis')
  await waitForLog(node, (l) => l.msg === 'cluster: Redis reachable; accepting new connections', 'the log says Redis is back')
})
