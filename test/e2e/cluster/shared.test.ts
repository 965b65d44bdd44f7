/**
 * Shared subscriptions cluster-wide (lib/cluster/shared-stream.ts): one
 * queue per group across three nodes, each message to exactly one member
 * whatever node it is on [MQTT-4.8.2-2]; a member killed mid-stream hands
 * its unacknowledged messages to the others.
 */
import t from 'tap'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { mosquittoSub } from '../../helpers/mosquitto.js'
import { redisCli, type RedisProcess, startCluster } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { duplicates, nextPublishes, publishMany, rawMember, rawSubscribe, text } from '../../helpers/share.js'

const GROUP = '$share/workers/jobs/#'

/** The nodes reading the group's stream (its consumers), as Redis sees them. */
function consumers (redis: RedisProcess): string[] {
  const out = redisCli(redis, '--raw', 'XINFO', 'CONSUMERS', `culex:share:{${GROUP}}`, 'culex')
  const lines = out.split('\n')
  const names: string[] = []
  for (let i = 0; i < lines.length - 1; i++) if (lines[i] === 'name') names.push(lines[i + 1] as string)
  return names.sort()
}

t.test('3,000 QoS 1 messages published on node A reach a group with members on A, B and C (MQTT 5, 3.1.1, mosquitto_sub -V 5) exactly once each [MQTT-4.8.2-2]', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onA = await connectClient(t, a.url, { clientId: 'member-a', protocolVersion: 5 })
  const onB = await connectClient(t, b.url, { clientId: 'member-b', protocolVersion: 4 })
  const gotA = collect(onA)
  const gotB = collect(onB)
  await onA.subscribeAsync(GROUP, { qos: 1 })
  await onB.subscribeAsync(GROUP, { qos: 1 })
  const subC = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(c.port), '-V', '5', '-i', 'member-c', '-q', '1', '-t', GROUP, '-v'])
  await waitFor(() => consumers(redis).join(',') === 'a,b,c', { timeout: 10000, what: () => `the three nodes reading the group (consumers: ${consumers(redis).join(',')})` })
  // node A learns of the group by notice
  await waitFor(() => redisCli(redis, 'HEXISTS', '{culex}:share:groups', GROUP) === '(integer) 1', { timeout: 5000, what: 'the group known to the cluster' })
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  await waitFor(async () => {
    await publisher.publishAsync('jobs/probe', 'probe', { qos: 1 })
    return gotA.messages.length + gotB.messages.length + subC.lines.length > 0
  }, { timeout: 5000, step: 100, what: 'a probe reaching a member' })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const probes = gotA.messages.length + gotB.messages.length + subC.lines.length

  const N = 3000
  await publishMany(publisher, N, (i) => ({ topic: `jobs/${i % 7}`, payload: String(i) }), 100)
  const payloads = (): string[] => [
    ...gotA.messages.map((m) => m.payload.toString()),
    ...gotB.messages.map((m) => m.payload.toString()),
    ...subC.lines.map((l) => l.slice(l.indexOf(' ') + 1))
  ].filter((p) => p !== 'probe')
  await waitFor(() => payloads().length >= N, { timeout: 30000, what: () => `${N} deliveries (have ${payloads().length})` })
  await new Promise((resolve) => setTimeout(resolve, 500))

  const all = payloads()
  t.equal(all.length, N, 'no duplicate: as many deliveries as messages')
  t.equal(new Set(all).size, N, 'every message delivered, each exactly once')
  const shares = [gotA.messages.length, gotB.messages.length, subC.lines.length]
  t.equal(shares.reduce((x, y) => x + y, 0), N + probes, 'and nothing else')
  // each node reads at most 10 entries per member at a time: the stream is spread over the nodes by their members
  for (const [i, name] of ['a (MQTT 5)', 'b (3.1.1)', 'c (mosquitto_sub)'].entries()) {
    t.ok((shares[i] ?? 0) >= N * 0.15, `member on ${name} got a share of the stream: ${shares[i] ?? 0}`)
  }
  t.ok(gotA.messages.every((m) => m.qos === 1) && gotB.messages.every((m) => m.qos === 1), 'delivered at QoS 1')
  await waitFor(() => redisCli(redis, 'XLEN', `culex:share:{${GROUP}}`) === '(integer) 0', { timeout: 5000, what: 'the stream emptied by the acknowledgements' })
  t.pass('every entry acknowledged and deleted in Redis')
})

t.test('a member killed mid-stream (socket destroyed): the messages it had not acknowledged reach members on other nodes, nothing lost, none twice', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onA = await connectClient(t, a.url, { clientId: 'member-a', protocolVersion: 5 })
  const onC = await connectClient(t, c.url, { clientId: 'member-c', protocolVersion: 4 })
  const gotA = collect(onA)
  const gotC = collect(onC)
  await onA.subscribeAsync(GROUP, { qos: 1 })
  await onC.subscribeAsync(GROUP, { qos: 1 })
  // never acknowledges: whatever it holds when it dies is unacknowledged
  const doomed = await rawMember(t, b.port, { clientId: 'member-b', receiveMaximum: 10 })
  t.same(await rawSubscribe(doomed, [{ topic: GROUP, qos: 1 }]), [1])
  await waitFor(() => consumers(redis).join(',') === 'a,b,c', { timeout: 10000, what: () => `the three nodes reading the group (consumers: ${consumers(redis).join(',')})` })
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })

  const N = 1000
  const publishing = publishMany(publisher, N, (i) => ({ topic: `jobs/${i}`, payload: String(i) }), 20)
  const held = await nextPublishes(doomed, 10, 15000)
  doomed.destroy()
  await publishing
  const others = (): string[] => [...gotA.messages, ...gotC.messages].map((m) => m.payload.toString())
  await waitFor(() => others().length >= N, { timeout: 20000, what: () => `${N} deliveries to the members alive (have ${others().length})` })
  await new Promise((resolve) => setTimeout(resolve, 500))

  const got = others()
  t.equal(held.length, 10, 'the killed member held a full window, unacknowledged')
  t.same(duplicates(got), [], 'no message twice among the members alive')
  t.equal(new Set(got).size, N, 'every message reached a member alive: nothing lost')
  t.ok(held.every((p) => got.includes(text(p))), 'the killed member\'s unacknowledged messages among them')
  await waitFor(() => redisCli(redis, 'XLEN', `culex:share:{${GROUP}}`) === '(integer) 0', { timeout: 5000, what: 'the stream emptied by the acknowledgements' })
})

t.test('a node SIGKILLed mid-stream: its members\' unacknowledged entries reach members on other nodes within the lease + 2 s, zero lost', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onA = await connectClient(t, a.url, { clientId: 'member-a', protocolVersion: 5 })
  const onC = await connectClient(t, c.url, { clientId: 'member-c', protocolVersion: 4 })
  const gotA = collect(onA)
  const gotC = collect(onC)
  await onA.subscribeAsync(GROUP, { qos: 1 })
  await onC.subscribeAsync(GROUP, { qos: 1 })
  const onB = await rawMember(t, b.port, { clientId: 'member-b', receiveMaximum: 10 })
  t.same(await rawSubscribe(onB, [{ topic: GROUP, qos: 1 }]), [1])
  await waitFor(() => consumers(redis).join(',') === 'a,b,c', { timeout: 10000, what: () => `the three nodes reading the group (consumers: ${consumers(redis).join(',')})` })
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })

  const N = 1000
  const publishing = publishMany(publisher, N, (i) => ({ topic: `jobs/${i}`, payload: String(i) }), 20)
  const held = (await nextPublishes(onB, 10, 15000)).map(text)
  b.child.kill('SIGKILL')
  const killedAt = Date.now()
  await b.exit
  await publishing
  const others = (): string[] => [...gotA.messages, ...gotC.messages].map((m) => m.payload.toString())
  await waitFor(() => { const got = new Set(others()); return held.every((p) => got.has(p)) }, { timeout: 15000, step: 20, what: () => `the dead node's entries reaching the members alive (${others().length} deliveries)` })
  const after = Date.now() - killedAt
  await waitFor(() => others().length >= N, { timeout: 20000, what: () => `${N} deliveries to the members alive (have ${others().length})` })
  await new Promise((resolve) => setTimeout(resolve, 500))

  const got = others()
  t.ok(after <= 3000 + 2000, `the dead node's unacknowledged entries reached others ${after} ms after the kill (lease 3 s + 2 s)`)
  t.same(duplicates(got), [], 'no message twice among the members alive')
  t.equal(new Set(got).size, N, 'every message reached a member alive: zero lost')
  await waitFor(() => !consumers(redis).includes('b'), { timeout: 5000, what: 'the dead node no consumer of the group any more' })
})
