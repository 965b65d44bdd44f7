/**
 * A client whose node died with entries in its inbox gets its session at
 * once on another node (lib/cluster/orphans.ts): a CONNECT after the dead
 * node's lease ended is answered without waiting for the whole-node
 * adoption, with every acknowledged message in order and none twice (the
 * adoption that follows skips the session); one that comes before the lease
 * ended waits for it (the node may be alive), and no longer. What keeps
 * coming to the dead node's inbox after a claim took the session away from
 * it, the dead node's adoption forwards to the session.
 */
import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { mosquittoSub } from '../../helpers/mosquitto.js'
import { redisCli, startCluster, startRedis } from '../../helpers/redis.js'
import type { CulexProcess } from '../../helpers/cli.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** the nodes' lease (lib/cluster/membership.ts) */
const LEASE_MS = 3000

/** Publishes a probe until the subscriber got one: its route reached the publisher's node. */
async function routeReady (publisher: MqttClient, got: { messages: unknown[] }): Promise<void> {
  await waitFor(async () => {
    await publisher.publishAsync('k/probe', 'probe', { qos: 1 })
    return got.messages.length > 0
  }, { timeout: 8000, step: 100, what: 'the route to the subscriber\'s node' })
}

const claimedAtOnce = (l: Record<string, unknown>): boolean => l.msg === 'cluster: a session of a dead node claimed at once, with the entries of its inbox'
const adopted = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('cluster: adopted the sessions and inbox')
const leaseGone = (redis: { port: number }, node: string): boolean => redisCli(redis, 'EXISTS', `{culex}:node:${node}`) === '(integer) 0'

/**
 * `got` ("{qos} {payload}" each) holds every acknowledged message once, each
 * at its QoS, in the publisher's order per QoS (between QoS 1 and 2 the
 * order is not kept across nodes: README "Not yet").
 */
function assertOnceInOrder (t: Test, got: string[], acked: string[]): void {
  const expected = acked.map((p, i) => `${i % 2 === 0 ? 1 : 2} ${p}`)
  t.same([...got].sort(), [...expected].sort(), `all ${acked.length} acknowledged messages arrived once each, each at its QoS (${got.length} deliveries)`)
  for (const qos of ['1', '2']) {
    t.same(got.filter((l) => l.startsWith(`${qos} `)), expected.filter((l) => l.startsWith(`${qos} `)), `the QoS ${qos} ones in the publisher's order`)
  }
}

interface Cluster { redis: Awaited<ReturnType<typeof startRedis>>, a: CulexProcess, b: CulexProcess, c: CulexProcess, publisher: MqttClient }

/** Three nodes, a persistent session `kept` on b subscribed to k/# at QoS 2, b stopped (SIGSTOP) and `n` messages published on a acknowledged into b's inbox. */
async function stoppedWithEntries (t: Test, version: 4 | 5, n: number): Promise<Cluster & { acked: string[], stoppedAt: number }> {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 600 } } : { clean: false }
  const sub = await connectClient(t, b.url, { clientId: 'kept', protocolVersion: version, keepalive: 0, ...persistent })
  const got = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 2 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, got)
  await sleep(200)
  b.child.kill('SIGSTOP')
  const stoppedAt = Date.now()
  const acked: string[] = []
  for (let i = 0; i < n; i++) {
    await publisher.publishAsync(`k/${i}`, String(i), { qos: i % 2 === 0 ? 1 : 2 })
    acked.push(String(i))
  }
  const pending = Number(/\d+/.exec(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'))?.[0] ?? 0)
  t.ok(pending >= n, `${pending} entries wait in b's inbox`)
  b.child.kill('SIGKILL')
  await b.exit
  return { redis, a, b, c, publisher, acked, stoppedAt }
}

t.test('MQTT 5: a reconnect on node C right after its node B was SIGKILLed waits for B\'s lease to end, no longer, and gets every acknowledged message once, in order', async (t) => {
  const { redis, a, c, acked, stoppedAt } = await stoppedWithEntries(t, 5, 30)
  const again = await connectClient(t, c.url, { clientId: 'kept', clean: false, properties: { sessionExpiryInterval: 600 }, connectTimeout: 30000 })
  const answeredAt = Date.now()
  t.ok(leaseGone(redis, 'b'), 'the CONNACK came once b\'s lease was gone (b might have been alive until then)')
  const waited = answeredAt - stoppedAt
  t.ok(waited <= LEASE_MS + 2500, `CONNACK ${waited} ms after b stopped renewing: within its lease (${LEASE_MS} ms) + 2.5 s, not after an adoption`)
  t.ok(c.logs.some(claimedAtOnce), 'c took the session and its entries from b\'s inbox itself')
  const after = collect(again)
  await waitFor(() => acked.every((p) => after.messages.some((m) => m.payload.toString() === p)), { timeout: 10000, what: () => `every acknowledged message: ${after.messages.length} of ${acked.length}` })
  // the whole-node adoption of b comes after, and must skip the session
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  await waitFor(() => leaseGone(redis, 'b') && redisCli(redis, 'EXISTS', '{culex}:inbox:{b}') === '(integer) 0', { timeout: 5000, what: 'b\'s inbox deleted by its adoption' })
  await sleep(500)
  const numbered = after.messages.filter((m) => m.payload.toString() !== 'probe').map((m) => `${m.qos} ${m.payload.toString()}`)
  assertOnceInOrder(t, numbered, acked)
})

t.test('MQTT 3.1.1, mosquitto_sub -c: a reconnect on node C after node B\'s lease ended is answered at once with every acknowledged message, once each', async (t) => {
  const { redis, a, c, acked } = await stoppedWithEntries(t, 4, 30)
  await waitFor(() => leaseGone(redis, 'b'), { timeout: LEASE_MS + 3000, what: 'b\'s lease gone' })
  const started = Date.now()
  const mosq = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(c.port), '-V', 'mqttv311', '-c', '-i', 'kept', '-q', '2', '-t', 'k/#', '-F', '%q %p'])
  await mosq.lines$(acked.length, 10000)
  const took = Date.now() - started
  t.ok(took < 3000, `the ${acked.length} messages arrived ${took} ms after mosquitto_sub started (${c.logs.some(claimedAtOnce) ? 'c took the session from b\'s inbox itself' : 'the adoption came first and took the session'})`)
  await t.resolves(waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' }), 'a survivor adopted b')
  t.equal(redisCli(redis, 'EXISTS', '{culex}:inbox:{b}'), '(integer) 0', 'b\'s inbox deleted by its adoption')
  await sleep(500)
  assertOnceInOrder(t, mosq.lines, acked)
})

t.test('MQTT 5: node A publishes continuously while the subscriber\'s node B is SIGKILLed and the client reconnects on node C: every acknowledged message arrives', async (t) => {
  const { nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const persistent = { clientId: 'kept', clean: false, properties: { sessionExpiryInterval: 600 } }
  const sub = await connectClient(t, b.url, { ...persistent, keepalive: 0 })
  const first = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, first)
  const acked: string[] = []
  let publishing = true
  const publishes = (async () => {
    for (let i = 0; publishing; i++) {
      try {
        await publisher.publishAsync(`k/${i}`, String(i), { qos: 1 })
        acked.push(String(i))
      } catch {}
      await sleep(4)
    }
  })()
  await sleep(300)
  b.child.kill('SIGKILL')
  const again = await connectClient(t, c.url, { ...persistent, connectTimeout: 30000 })
  const after = collect(again)
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  await sleep(500)
  publishing = false
  await publishes
  const arrived = (): Set<string> => new Set([...first.messages, ...after.messages].map((m) => m.payload.toString()))
  // a wait whose timeout is the assertion below, which names what is missing
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 10000 }).catch(() => {})
  const missing = acked.filter((p) => !arrived().has(p))
  t.ok(acked.length > 300, `${acked.length} messages acknowledged across the kill, the claim on c and b's adoption`)
  const all = [...first.messages, ...after.messages].map((m) => m.payload.toString()).filter((p) => p !== 'probe')
  t.same(missing, [], `every acknowledged message arrived (${all.length - new Set(all).size} duplicates: at least once)`)
})
