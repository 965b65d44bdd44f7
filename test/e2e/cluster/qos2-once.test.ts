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
import { connectClient, resumeInto } from '../../helpers/mqtt.js'
import { mosquittoSub, stopChild } from '../../helpers/mosquitto.js'
import { redisCli, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** A QoS 2 store that outlives each connection of the client (MQTT.js keeps a message it got until PUBREL, per connection otherwise). */
class KeptStore extends mqtt.Store {
  override close (cb?: () => void): void { cb?.() }
}

const N = 30

/** A persistent subscriber to `k/#` at QoS 2 with client id `kept`, as one client library runs it. */
interface Subscriber {
  /** connects (resuming the session) to the node at `url`/`port` */
  start: (node: { url: string, port: number }) => Promise<Session>
}
interface Session {
  /** the payloads received so far */
  payloads: () => string[]
  /** drops the connection, the session kept */
  stop: () => Promise<void>
}

function mqttJs (t: Test, version: 4 | 5): Subscriber {
  const incomingStore = new KeptStore()
  const opts: IClientOptions = { clientId: 'kept', protocolVersion: version, clean: false, keepalive: 0, incomingStore, connectTimeout: 30000, ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) }
  let subscribed = false
  return {
    async start (node) {
      const got: string[] = []
      // the handler is there before the CONNACK: a resumed queue comes right after it
      const client = await resumeInto(t, node.url, opts, got)
      if (!subscribed) await client.subscribeAsync('k/#', { qos: 2 })
      subscribed = true
      return { payloads: () => got, stop: async () => { client.end(true) } }
    }
  }
}

function mosquittoSubscriber (t: Test): Subscriber {
  return {
    async start (node) {
      const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(node.port), '-V', 'mqttv311', '-c', '-i', 'kept', '-q', '2', '-t', 'k/#', '-F', '%p'])
      return { payloads: () => sub.lines, stop: async () => { await stopChild(sub.child) } }
    }
  }
}

async function deadInboxAgain (t: Test, subscriber: Subscriber): Promise<void> {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const first = await subscriber.start(b)
  const publisher: MqttClient = await connectClient(t, a.url, { clientId: 'pub' })
  await waitFor(async () => {
    await publisher.publishAsync('k/probe', 'probe', { qos: 1 })
    return first.payloads().length > 0
  }, { timeout: 8000, step: 200, what: 'the route to b' })
  await sleep(300)
  // b publishes what reaches its inbox but cannot acknowledge it
  redisCli(redis, 'ACL', 'SETUSER', 'default', '-xack', '-xdel')
  for (let i = 0; i < N; i++) await publisher.publishAsync(`k/${i}`, String(i), { qos: 2 })
  const numbered = (payloads: string[]): string[] => payloads.filter((p) => p !== 'probe')
  await waitFor(() => numbered(first.payloads()).length >= N, { timeout: 10000, what: () => `all ${N} on b: ${numbered(first.payloads()).length}` })
  // their PUBRECs and PUBCOMPs
  await sleep(500)
  const left = Number(/\d+/.exec(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'))?.[0] ?? 0)
  t.ok(left > 0, `the entries b published are still in its inbox (${left})`)
  b.child.kill('SIGKILL')
  await b.exit
  redisCli(redis, 'ACL', 'SETUSER', 'default', '+xack', '+xdel')
  await first.stop()
  const again = await subscriber.start(c)
  const adopted = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('cluster: adopted the sessions and inbox')
  await waitFor(() => a.logs.some(adopted) || c.logs.some(adopted), { timeout: 15000, what: 'a survivor adopted b' })
  await sleep(1000)
  const all = [...numbered(first.payloads()), ...numbered(again.payloads())]
  t.same([...new Set(all)].sort(), Array.from({ length: N }, (_, i) => String(i)).sort(), 'every acknowledged message arrived')
  t.same(numbered(again.payloads()), [], 'none again on c, where the dead inbox\'s entries were queued into the session again')
  t.equal(all.length, N, `[MQTT-4.3.3-10] each once (${all.length} deliveries of ${N})`)
}

t.test('[MQTT-4.3.3-10] MQTT 5: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  await deadInboxAgain(t, mqttJs(t, 5))
})

t.test('[MQTT-4.3.3-10] MQTT 3.1.1: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  await deadInboxAgain(t, mqttJs(t, 4))
})

t.test('[MQTT-4.3.3-10] mosquitto_sub -V mqttv311 -c: QoS 2 messages node B published into a session but could not acknowledge arrive once when B dies and the session resumes on node C', async (t) => {
  await deadInboxAgain(t, mosquittoSubscriber(t))
})
