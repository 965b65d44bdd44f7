/**
 * A routed QoS 2 message reaches a persistent session exactly once, also
 * when the inbox entry that carried it is published again after the session
 * got it (lib/cluster/routed-id.ts, lib/persistence/routed-ids.ts).
 * Redis is told to refuse XACK and XDEL for a while (an ACL), so node B
 * publishes its inbox's entries into the session, delivers them to the
 * live subscriber, and cannot acknowledge them: they stay in B's inbox, as
 * when a node dies between a publish and its acknowledgement. B is then
 * SIGKILLed and the subscriber reconnects on node C, whose claim queues the
 * dead inbox's entries into the session again (lib/cluster/orphans.ts), and
 * a survivor adopts B (adoption.ts). Each message arrives once
 * [MQTT-4.3.3-10] (MQTT.js 5 and 3.1.1, mosquitto_sub); before the ids, each
 * arrived a second time on C.
 */
import t, { type Test } from 'tap'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { mosquittoSub, stopChild } from '../../helpers/mosquitto.js'
import { redisCli, startNode, startRedis } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** A QoS 2 store that outlives each connection of the client (MQTT.js keeps a message it got until PUBREL, per connection otherwise). */
class KeptStore extends mqtt.Store {
  override close (cb?: () => void): void { cb?.() }
}

const N = 30

async function deadInboxAgain (t: Test, version: 4 | 5): Promise<void> {
  const redis = await startRedis(t)
  const a = await startNode(t, redis, ['--node-id', 'a'])
  const b = await startNode(t, redis, ['--node-id', 'b'])
  const c = await startNode(t, redis, ['--node-id', 'c'])
  const incomingStore = new KeptStore()
  const opts: IClientOptions = { clientId: 'kept', protocolVersion: version, clean: false, keepalive: 0, incomingStore, connectTimeout: 30000, ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) }
  const sub = await connectClient(t, b.url, opts)
  const first = collect(sub)
  await sub.subscribeAsync('k/#', { qos: 2 })
  const publisher: MqttClient = await connectClient(t, a.url, { clientId: 'pub' })
  await waitFor(async () => {
    await publisher.publishAsync('k/probe', 'probe', { qos: 1 })
    return first.messages.length > 0
  }, { timeout: 8000, step: 100, what: 'the route to b' })
  await sleep(300)
  // b publishes what reaches its inbox but cannot acknowledge it
  redisCli(redis, 'ACL', 'SETUSER', 'default', '-xack', '-xdel')
  for (let i = 0; i < N; i++) await publisher.publishAsync(`k/${i}`, String(i), { qos: 2 })
  const numbered = (messages: Array<{ payload: Buffer | string }>): string[] => messages.map((m) => m.payload.toString()).filter((p) => p !== 'probe')
  await waitFor(() => numbered(first.messages).length >= N, { timeout: 10000, what: () => `all ${N} on b: ${numbered(first.messages).length}` })
  // their PUBRECs and PUBCOMPs
  await sleep(500)
  const left = Number(/\d+/.exec(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'))?.[0] ?? 0)
  t.ok(left > 0, `the entries b published are still in its inbox (${left})`)
  b.child.kill('SIGKILL')
  await b.exit
  redisCli(redis, 'ACL', 'SETUSER', 'default', '+xack', '+xdel')
  sub.end(true)
  const again = await connectClient(t, c.url, opts)
  const after = collect(again)
  const adopted = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('cluster: adopted the sessions and inbox')
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  await sleep(1000)
  const all = [...numbered(first.messages), ...numbered(after.messages)]
  const expected = Array.from({ length: N }, (_, i) => String(i))
  t.same([...new Set(all)].sort(), [...expected].sort(), 'every acknowledged message arrived')
  t.same(numbered(after.messages), [], 'none again on c, where the dead inbox\'s entries were queued into the session again')
  t.equal(all.length, N, `[MQTT-4.3.3-10] each once (${all.length} deliveries of ${N})`)
}

t.test('[MQTT-4.3.3-10] MQTT 5: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  await deadInboxAgain(t, 5)
})

t.test('[MQTT-4.3.3-10] MQTT 3.1.1: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  await deadInboxAgain(t, 4)
})

t.test('[MQTT-4.3.3-10] mosquitto_sub -V mqttv311 -c: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  const redis = await startRedis(t)
  const a = await startNode(t, redis, ['--node-id', 'a'])
  const b = await startNode(t, redis, ['--node-id', 'b'])
  const c = await startNode(t, redis, ['--node-id', 'c'])
  const args = (port: number): string[] => ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-c', '-i', 'kept', '-q', '2', '-t', 'k/#', '-F', '%p']
  const first = mosquittoSub(t, args(b.port))
  const publisher: MqttClient = await connectClient(t, a.url, { clientId: 'pub' })
  await waitFor(async () => {
    await publisher.publishAsync('k/probe', 'probe', { qos: 1 })
    return first.lines.length > 0
  }, { timeout: 8000, step: 200, what: 'the route to b' })
  await sleep(300)
  redisCli(redis, 'ACL', 'SETUSER', 'default', '-xack', '-xdel')
  for (let i = 0; i < N; i++) await publisher.publishAsync(`k/${i}`, String(i), { qos: 2 })
  const numbered = (lines: string[]): string[] => lines.filter((p) => p !== 'probe')
  await waitFor(() => numbered(first.lines).length >= N, { timeout: 10000, what: () => `all ${N} on b: ${numbered(first.lines).length}` })
  await sleep(500)
  const left = Number(/\d+/.exec(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'))?.[0] ?? 0)
  t.ok(left > 0, `the entries b published are still in its inbox (${left})`)
  b.child.kill('SIGKILL')
  await b.exit
  redisCli(redis, 'ACL', 'SETUSER', 'default', '+xack', '+xdel')
  await stopChild(first.child)
  const again = mosquittoSub(t, args(c.port))
  const adopted = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('cluster: adopted the sessions and inbox')
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  await sleep(1000)
  const all = [...numbered(first.lines), ...numbered(again.lines)]
  t.same([...new Set(all)].sort(), Array.from({ length: N }, (_, i) => String(i)).sort(), 'every acknowledged message arrived')
  t.same(numbered(again.lines), [], 'none again on c')
  t.equal(all.length, N, `[MQTT-4.3.3-10] each once (${all.length} deliveries of ${N})`)
})
