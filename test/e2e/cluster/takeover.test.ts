/**
 * The client-id registry across nodes: a CONNECT on node B with an id
 * connected on node A takes it over (A sends DISCONNECT 0x8E, 3.1.1: closes);
 * 50 simultaneous CONNECTs with one id over 3 nodes leave exactly one
 * connection; a node paused (SIGSTOP) past its lease that resumes closes its
 * stale connection and its write with the stale epoch is refused.
 */
import t from 'tap'
import mqtt, { type MqttClient } from 'mqtt'
import { connectClient } from '../../helpers/mqtt.js'
import { redisCli, startCluster, waitForLog } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** The owner record of a client id in Redis: "node epoch". */
function owner (redis: { port: number }, clientId: string): string {
  return redisCli(redis, '--raw', 'HMGET', `{culex}:client:${clientId}`, 'node', 'epoch').split('\n').join(' ')
}

function closed (client: MqttClient): Promise<number | undefined> {
  return new Promise((resolve) => {
    let reasonCode: number | undefined
    client.on('disconnect', (packet) => { reasonCode = packet.reasonCode })
    client.once('close', () => resolve(reasonCode))
  })
}

for (const version of [5, 4] as const) {
  t.test(`MQTT ${version === 5 ? '5' : '3.1.1'}: a CONNECT on node B takes the id over from node A [MQTT-3.1.4-3]`, async (t) => {
    const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
    const id = `moving-${version}`
    const first = await connectClient(t, a.url, { clientId: id, protocolVersion: version })
    const firstClosed = closed(first)
    t.equal(owner(redis, id), 'a 1', 'node a owns the id at epoch 1')

    const started = process.hrtime.bigint()
    const second = await connectClient(t, b.url, { clientId: id, protocolVersion: version })
    const connackAt = process.hrtime.bigint()
    const reasonCode = await firstClosed
    const closedAt = process.hrtime.bigint()
    t.comment(`takeover: CONNECT to CONNACK on b ${Number(connackAt - started) / 1e6} ms, old connection on a closed ${Number(closedAt - connackAt) / 1e6} ms after b's CONNACK`)
    if (version === 5) t.equal(reasonCode, 0x8e, '[MQTT-3.1.4-3] node a sent DISCONNECT 0x8E Session taken over')
    else t.equal(reasonCode, undefined, '3.1.1: node a closed the connection (no DISCONNECT in 3.1.1)')
    t.equal(owner(redis, id), 'b 2', 'node b owns the id at epoch 2')
    await sleep(300)
    t.equal(second.connected, true, 'the new connection stays')
    await waitForLog(a, (l) => l.reason === 'session taken over on node b', 'node a logs why it closed the connection')
  })
}

t.test('50 simultaneous CONNECTs with one id over 3 nodes leave exactly one connection', async (t) => {
  const { redis, nodes } = await startCluster(t, ['n1', 'n2', 'n3'])
  const id = 'contested'
  const clients: Array<{ node: string, client: MqttClient, connacked: boolean, closed: boolean }> = []
  for (let i = 0; i < 50; i++) {
    const n = i % 3
    const client = mqtt.connect((nodes[n] as { url: string }).url, { clientId: id, protocolVersion: i % 2 === 0 ? 5 : 4, reconnectPeriod: 0, connectTimeout: 10000 })
    const entry = { node: `n${n + 1}`, client, connacked: false, closed: false }
    client.on('error', () => {})
    client.once('connect', () => { entry.connacked = true })
    client.once('close', () => { entry.closed = true })
    clients.push(entry)
  }
  t.teardown(() => { for (const c of clients) c.client.end(true) })
  const live = (): typeof clients => clients.filter((c) => !c.closed)
  await waitFor(() => live().length === 1, { timeout: 15000, what: () => `one connection left (${live().length} open: ${JSON.stringify(live().map((c) => [c.node, c.connacked, c.client.options.protocolVersion]))}, owner ${owner(redis, id)})` })
  await sleep(1000)
  const survivors = live()
  t.equal(survivors.length, 1, 'exactly one connection stays')
  const survivor = survivors[0]
  t.equal(survivor?.connacked, true, 'it was accepted')
  t.equal(survivor?.client.connected, true, 'and is still connected')
  t.comment(`${clients.filter((c) => c.connacked).length} of 50 CONNECTs got their CONNACK before a later one took the id over`)
  const [node, epoch] = owner(redis, id).split(' ')
  t.equal(node, survivor?.node, `Redis names the survivor's node (${node}) as the owner`)
  t.equal(epoch, '50', 'one claim per CONNECT: epoch 50')
})

t.test('a node paused past its lease closes its stale connection when it resumes; its stale write is refused', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const id = 'paused-owner'
  const old = await connectClient(t, a.url, { clientId: id, keepalive: 0 })
  const oldClosed = closed(old)
  t.equal(owner(redis, id), 'a 1')

  a.child.kill('SIGSTOP')
  await waitForLog(b, (l) => l.msg === 'cluster: node a left', 'b sees a leave once its lease runs out', 8000)
  const fresh = await connectClient(t, b.url, { clientId: id, keepalive: 0 })
  // 2, or 3 when a survivor ended a's clean session first (session-expiry.ts): a node past its lease counts as dead
  const claimedByB = owner(redis, id)
  t.match(claimedByB, /^b [23]$/, 'b owns the id while a is paused, at a later epoch')
  t.equal(old.connected, true, 'the paused node cannot act yet: its client still sees a connection')

  const resumed = Date.now()
  a.child.kill('SIGCONT')
  t.equal(await oldClosed, 0x8e, 'the resumed node closes its stale connection with DISCONNECT 0x8E')
  t.comment(`stale connection closed ${Date.now() - resumed} ms after SIGCONT`)
  const refused = await waitForLog(a, (l) => l.msg === 'registry write refused: a later claim owns this client id (stale epoch)', 'the stale release is refused')
  t.match(refused, { clientId: id, epoch: 1, owner: 'b' }, 'the write with epoch 1 was refused: b owns the id')
  await waitForLog(a, (l) => typeof l.msg === 'string' && l.msg.startsWith('this node\'s lease had expired'), 'a notices its lease had expired')
  t.equal(owner(redis, id), claimedByB, 'b still owns the id at the epoch of its claim')
  await sleep(500)
  t.equal(fresh.connected, true, 'the connection on b stays')
})

/** culex_connections summed over a node's transports and versions, from its /metrics. */
async function connectionsOf (node: { logs: Array<Record<string, unknown>> }): Promise<number> {
  const ws = new URL(String(node.logs.find((l) => l.listener === 'ws')?.url))
  const text = await (await fetch(`http://${ws.host}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  return text.split('\n').filter((l) => l.startsWith('culex_connections{')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
}

t.test('flapping: 150 takeovers round the 3 nodes leave one connection in all; takeover latency', async (t) => {
  const { redis, nodes } = await startCluster(t, ['f1', 'f2', 'f3'])
  const id = 'flapper'
  const latencies: number[] = []
  let previous: { client: MqttClient, closed: Promise<number | undefined> } | undefined
  for (let i = 0; i < 150; i++) {
    const started = process.hrtime.bigint()
    const client = await connectClient(t, (nodes[i % 3] as { url: string }).url, { clientId: id, protocolVersion: i % 2 === 0 ? 5 : 4 })
    const next = { client, closed: closed(client) }
    if (previous !== undefined) {
      await previous.closed
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
      previous.client.end(true)
    }
    previous = next
  }
  latencies.sort((x, y) => x - y)
  const at = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(1)
  t.comment(`takeover across nodes, from the new CONNECT to the old connection closed: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms (${latencies.length} takeovers)`)
  t.equal(previous?.client.connected, true, 'the last connection stays')
  await waitFor(async () => (await Promise.all(nodes.map(connectionsOf))).reduce((a, b) => a + b, 0) === 1, { timeout: 5000, what: 'one connection in all, by the nodes\' own count' })
  t.same(await Promise.all(nodes.map(connectionsOf)), [0, 0, 1], 'the nodes count 0, 0 and 1 connections (the last CONNECT went to f3)')
  t.equal(owner(redis, id), 'f3 150', 'the registry names f3 at epoch 150')
})
