/**
 * Faults of the cluster's Redis and of client-id flapping:
 * - redis-server SIGKILLed with appendonly yes / appendfsync always and
 *   restarted on the same port and directory: the nodes recover without a
 *   restart of their own; the registry's epochs and the retained messages
 *   survive, and takeover and retained writes work again;
 * - 1,000 takeovers of one client id round 3 nodes leave exactly one
 *   connection, none leaked on any node (culex_connections on /metrics), and
 *   one consistent registry record.
 */
import t from 'tap'
import type { MqttClient } from 'mqtt'
import type mqttPacket from 'mqtt-packet'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { readyz, redisCli, type RedisProcess, startCluster } from '../../helpers/redis.js'
import type { CulexProcess } from '../../helpers/cli.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** The owner record of a client id in Redis: "node epoch". */
function owner (redis: Pick<RedisProcess, 'port'>, clientId: string): string {
  return redisCli(redis, '--raw', 'HMGET', `{culex}:client:${clientId}`, 'node', 'epoch').split('\n').join(' ')
}

function disconnected (client: MqttClient): Promise<number | undefined> {
  return new Promise((resolve) => {
    let reasonCode: number | undefined
    client.on('disconnect', (packet) => { reasonCode = packet.reasonCode })
    client.once('close', () => resolve(reasonCode))
  })
}

/** culex_connections summed over a node's transports and versions, from its /metrics. */
async function connectionsOf (node: CulexProcess): Promise<number> {
  const ws = new URL(String(node.logs.find((l) => l.listener === 'ws')?.url))
  const text = await (await fetch(`http://${ws.host}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  return text.split('\n').filter((l) => l.startsWith('culex_connections{')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
}

t.test('Redis SIGKILLed with appendfsync always and restarted: the nodes recover by themselves, epochs and retained messages survive, takeover and retained writes work again', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { redis: { appendfsync: 'always' } })
  const pids = [a.child.pid, b.child.pid]
  const first = await connectClient(t, a.url, { clientId: 'owned' })
  const firstGone = disconnected(first)
  const second = await connectClient(t, b.url, { clientId: 'owned' })
  t.equal(await firstGone, 0x8e, 'a takeover before the kill')
  t.equal(owner(redis, 'owned'), 'b 2')
  const writer = await connectClient(t, a.url, { clientId: 'writer' })
  await writer.publishAsync('f/before', 'one', { qos: 1, retain: true })

  await redis.kill()
  await waitFor(async () => (await readyz(a)).status === 503 && (await readyz(b)).status === 503, { timeout: 5000, what: '/readyz 503 on both while Redis is down' })
  const again = await redis.restart()
  const restartedAt = Date.now()
  await waitFor(async () => (await readyz(a)).status === 200 && (await readyz(b)).status === 200, { timeout: 8000, what: '/readyz 200 on both after the restart' })
  t.comment(`both nodes ready ${Date.now() - restartedAt} ms after Redis answered again`)
  t.same([a.child.pid, b.child.pid], pids, 'the same node processes')
  t.equal(a.child.exitCode, null)
  t.equal(b.child.exitCode, null)
  t.equal(owner(again, 'owned'), 'b 2', 'the AOF kept the registry: owner and epoch')
  t.equal(second.connected, true, 'the connection on b stayed through the outage')
  t.equal(writer.connected, true, 'so did the writer on a')

  const secondGone = disconnected(second)
  const third = await connectClient(t, a.url, { clientId: 'owned' })
  t.equal(await Promise.race([secondGone, sleep(5000).then(() => 'still connected after 5 s')]), 0x8e, 'takeover works again: b sends DISCONNECT 0x8E')
  t.equal(owner(again, 'owned'), 'a 3', 'the epoch goes on from the one before the kill (fencing holds across the restart)')
  await sleep(300)
  t.equal(third.connected, true)

  const onB = await connectClient(t, b.url, { clientId: 'writer-b' })
  await onB.publishAsync('f/after', 'two', { qos: 1, retain: true })
  t.equal(redisCli(again, 'EXISTS', 'culex:retained:{f/after}'), '(integer) 1', 'a retained write works again')
  const reader = await connectClient(t, a.url, { clientId: 'reader' })
  const got = collect(reader)
  await reader.subscribeAsync('f/#', { qos: 1 })
  const messages = await got.next(2)
  t.same(messages.map((m) => `${m.topic}=${m.payload.toString()}`).sort(), ['f/after=two', 'f/before=one'], 'a has the one from before the kill (AOF) and the new one from b')
})

t.test('flapping: 1,000 takeovers of one id round 3 nodes leave one connection, no leaked connection, one consistent registry record', { timeout: 60000 }, async (t) => {
  const { redis, nodes } = await startCluster(t, ['f1', 'f2', 'f3'])
  const id = 'flapper'
  const TAKEOVERS = 1000
  /** CONNECTs in flight at once: the takeovers overlap as well as follow each other */
  const WINDOW = 3
  const clients: Array<{ node: number, client: RawClient, accepted: boolean }> = []
  const latencies: number[] = []
  t.teardown(() => { for (const c of clients) c.client.destroy() })
  const startedAt = Date.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < TAKEOVERS) {
      const i = next++
      const node = i % 3
      const version = i % 2 === 0 ? 5 : 4
      const client = await RawClient.open((nodes[node] as CulexProcess).port, version)
      const entry = { node, client, accepted: false }
      clients.push(entry)
      client.send({ cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: id, clean: true, keepalive: 0 } as mqttPacket.IConnectPacket)
      const sentAt = process.hrtime.bigint()
      try {
        const connack = await client.next('connack', 10000) as mqttPacket.IConnackPacket
        entry.accepted = (connack.reasonCode ?? connack.returnCode) === 0
        latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6)
      } catch {
        // closed before its CONNACK by a later claim: a takeover all the same
      }
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker))
  const open = (): typeof clients => clients.filter((c) => !c.client.closed)
  await waitFor(() => open().length === 1, { timeout: 15000, what: () => `one connection left (${open().length} open, owner ${owner(redis, id)})` })
  latencies.sort((x, y) => x - y)
  const at = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(1)
  t.comment(`${TAKEOVERS} CONNECTs with one id round 3 nodes (${WINDOW} in flight) in ${Date.now() - startedAt} ms; ${clients.filter((c) => c.accepted).length} got CONNACK 0; CONNECT to CONNACK p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`)
  await sleep(500)
  const survivors = open()
  t.equal(survivors.length, 1, 'exactly one connection stays')
  const survivor = survivors[0] as (typeof clients)[number]
  t.equal(survivor.accepted, true, 'it was accepted')
  t.equal(clients.length, TAKEOVERS)

  const expected = [0, 0, 0]
  expected[survivor.node] = 1
  await waitFor(async () => JSON.stringify(await Promise.all(nodes.map(connectionsOf))) === JSON.stringify(expected), { timeout: 5000, what: 'the nodes\' own counts settle' })
  t.same(await Promise.all(nodes.map(connectionsOf)), expected, `culex_connections per node: ${expected.join(', ')} (no leaked connection)`)

  const record = redisCli(redis, '--raw', 'HGETALL', `{culex}:client:${id}`).split('\n')
  t.same(Object.fromEntries([[record[0], record[1]], [record[2], record[3]]]), { epoch: String(TAKEOVERS), node: `f${survivor.node + 1}` }, 'one claim per CONNECT, and Redis names the survivor\'s node')
  t.equal(record.length, 4, 'the record holds node and epoch only')
  t.equal(redisCli(redis, '--raw', 'KEYS', '{culex}:client:*'), `{culex}:client:${id}`, 'one registry record')

  const last = await RawClient.open((nodes[(survivor.node + 1) % 3] as CulexProcess).port, 5)
  clients.push({ node: (survivor.node + 1) % 3, client: last, accepted: false })
  last.send({ cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: id, clean: true, keepalive: 0 } as mqttPacket.IConnectPacket)
  t.equal((await last.next('connack') as mqttPacket.IConnackPacket).reasonCode, 0, 'one more takeover after the flapping is accepted')
  await survivor.client.waitClose(3000)
  t.pass('and closes the previous survivor')
})
