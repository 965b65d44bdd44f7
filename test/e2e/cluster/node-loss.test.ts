/**
 * Nothing acknowledged is lost when the subscriber's node dies: QoS 1
 * messages published on node A for a persistent session held on node B are
 * acknowledged once they are in B's inbox; B is SIGKILLed mid-stream (or
 * SIGSTOPped, then SIGKILLed and restarted, with entries still in its
 * inbox); a survivor, or B's next run, adopts B's sessions and inbox
 * (lib/cluster/adoption.ts); the client resumes on another node, or on B
 * again, and every acknowledged message arrives (counted; duplicates are
 * allowed at QoS 1 and reported).
 */
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { redisCli, startCluster, startNode } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const persistent = { clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 600 } }

/** Publishes a probe until the subscriber got one: its route reached the publisher's node. */
async function routeReady (publisher: MqttClient, got: { messages: unknown[] }): Promise<void> {
  await waitFor(async () => {
    await publisher.publishAsync('k/probe', 'probe', { qos: 1 })
    return got.messages.length > 0
  }, { timeout: 8000, step: 100, what: 'the route to the subscriber\'s node' })
}

const adopted = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('cluster: adopted the sessions and inbox')

t.test('the subscriber\'s node is SIGKILLed mid-stream of QoS 1 messages: the session resumes on node C with every acknowledged message', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const sub = await connectClient(t, b.url, { clientId: 'kept', ...persistent })
  const got = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, got)

  const N = 150
  const acked: string[] = []
  let killedAt = -1
  for (let i = 0; i < N; i++) {
    if (i === 50) {
      b.child.kill('SIGKILL')
      killedAt = acked.length
    }
    try {
      await publisher.publishAsync(`k/${i}`, String(i), { qos: 1 })
      acked.push(String(i))
    } catch {}
  }
  t.ok(killedAt > 0, `${killedAt} acknowledged before the kill, ${acked.length - killedAt} after`)
  t.equal(acked.length, N, 'every PUBLISH was acknowledged (the inbox writes succeed while b is dead)')
  const before = got.messages.filter((m) => m.topic !== 'k/probe').map((m) => m.payload.toString())

  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  t.equal([a, c].filter((n) => n.logs.some(adopted)).length, 1, 'one survivor adopted b\'s sessions and inbox')
  t.equal(redisCli(redis, 'EXISTS', '{culex}:inbox:{b}'), '(integer) 0', 'b\'s inbox was drained and deleted')

  const again = await connectClient(t, c.url, { clientId: 'kept', ...persistent })
  const after = collect(again)
  const arrived = (): Set<string> => new Set([...before, ...after.messages.map((m) => m.payload.toString())])
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 20000, what: () => `every acknowledged message: ${acked.filter((p) => arrived().has(p)).length} of ${acked.length}` })
  await sleep(300)
  const all = [...before, ...after.messages.map((m) => m.payload.toString())].filter((p) => p !== 'probe')
  const missing = acked.filter((p) => !arrived().has(p))
  t.same(missing, [], `acknowledged ${acked.length}, arrived ${arrived().size - (arrived().has('probe') ? 1 : 0)} distinct (${all.length - new Set(all).size} duplicates, allowed at QoS 1)`)
})

t.test('the subscriber\'s node is stopped with entries in its inbox, SIGKILLed and restarted: the session resumes on it with every acknowledged message', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const sub = await connectClient(t, b.url, { clientId: 'kept', ...persistent, keepalive: 0 })
  const got = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, got)
  await sleep(200)
  const before = got.messages.length

  b.child.kill('SIGSTOP')
  const N = 50
  const acked: string[] = []
  for (let i = 0; i < N; i++) {
    await publisher.publishAsync(`k/${i}`, String(i), { qos: 1 })
    acked.push(String(i))
  }
  const pending = Number(/\d+/.exec(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'))?.[0] ?? 0)
  t.ok(pending >= N, `${pending} entries wait in b's inbox`)
  b.child.kill('SIGKILL')
  await b.exit
  t.equal(got.messages.length, before, 'the subscriber got none of them before the kill')
  const b2 = await startNode(t, redis, ['--node-id', 'b'])
  await waitFor(() => b2.logs.some(adopted) || a.logs.some(adopted), { timeout: 15000, what: 'b\'s next run, or a, adopted the previous run\'s sessions and inbox' })
  t.pass(`adopted by ${b2.logs.some(adopted) ? 'b\'s next run' : 'the survivor a'}`)

  const again = await connectClient(t, b2.url, { clientId: 'kept', ...persistent })
  const after = collect(again)
  const arrived = (): Set<string> => new Set(after.messages.map((m) => m.payload.toString()))
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 20000, what: () => `every acknowledged message: ${acked.filter((p) => arrived().has(p)).length} of ${acked.length}` })
  await sleep(300)
  const numbered = after.messages.map((m) => m.payload.toString()).filter((p) => p !== 'probe')
  t.same([...new Set(numbered)], acked, `all ${N} acknowledged messages arrived, in order (${numbered.length - new Set(numbered).size} duplicates)`)
})

t.test('the subscriber reconnects on node C right after its node B was SIGKILLed: the claim waits for B\'s lease to end, and every acknowledged message arrives', async (t) => {
  const { nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const sub = await connectClient(t, b.url, { clientId: 'kept', ...persistent })
  const got = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub' })
  await routeReady(publisher, got)
  // b stops reading its inbox, then dies with entries in it
  b.child.kill('SIGSTOP')
  const acked: string[] = []
  for (let i = 0; i < 30; i++) {
    await publisher.publishAsync(`k/${i}`, String(i), { qos: 1 })
    acked.push(String(i))
  }
  b.child.kill('SIGKILL')
  const killedAt = Date.now()
  const again = await connectClient(t, c.url, { clientId: 'kept', ...persistent, connectTimeout: 30000 })
  const waited = Date.now() - killedAt
  const after = collect(again)
  const arrived = (): Set<string> => new Set(after.messages.map((m) => m.payload.toString()))
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 10000, what: () => `every acknowledged message: ${acked.filter((p) => arrived().has(p)).length} of ${acked.length}` })
  t.pass(`the CONNECT on c was answered ${waited} ms after the kill (b's lease ended meanwhile; dead-holder.test.ts bounds it)`)
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  const numbered = after.messages.map((m) => m.payload.toString()).filter((p) => p !== 'probe')
  t.same([...new Set(numbered)], acked, `all ${acked.length} acknowledged messages arrived on c, in order`)
})
