/**
 * Client lifecycle events as CloudEvents 1.0, MQTT binary content mode:
 * JSON data in the payload, datacontenttype as the MQTT 5 Content Type, every
 * other attribute as an MQTT 5 User Property.
 */
import t, { type Test } from 'tap'
import type { IPublishPacket, MqttClient } from 'mqtt'
import { startTestServer, tcpUrl, wsUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import type { CulexServer } from '../../../lib/server.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
/** RFC 3339 date-time, UTC */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/

interface Watcher {
  messages: IPublishPacket[]
  /** the next event on `topic` not taken yet */
  take: (topic: string, ms?: number) => Promise<IPublishPacket>
}

async function watch (t: Test, server: CulexServer, clientId: string, protocolVersion: 4 | 5 = 5): Promise<Watcher> {
  const client = await connectClient(t, tcpUrl(server), { clientId, protocolVersion })
  const got = collect(client)
  await client.subscribeAsync('$events/#', { qos: 0 })
  const taken = new Set<IPublishPacket>()
  return {
    messages: got.messages,
    async take (topic, ms = 5000) {
      let m: IPublishPacket | undefined
      await waitFor(() => (m = got.messages.find(p => p.topic === topic && !taken.has(p))) !== undefined, { timeout: ms, what: () => `an event on ${topic}; got ${got.messages.map(p => p.topic).join(', ')}` })
      taken.add(m as IPublishPacket)
      return m as IPublishPacket
    }
  }
}

function userProps (p: IPublishPacket): Record<string, string> {
  return (p.properties?.userProperties ?? {}) as Record<string, string>
}

/** Checks the CloudEvents attributes of one event and returns its data. */
function checkCloudEvent (t: Test, p: IPublishPacket, server: CulexServer, type: string, subject: string): Record<string, unknown> {
  const attrs = userProps(p)
  t.equal(p.properties?.contentType, 'application/json', 'datacontenttype as the MQTT 5 Content Type')
  t.equal(attrs.specversion, '1.0', 'specversion')
  t.match(attrs.id, UUID, 'id is a UUID')
  t.equal(attrs.source, `/culex/${server.broker.aedes.id}`, 'source')
  t.equal(attrs.type, `io.culex.client.${type}`, 'type')
  t.match(attrs.time, RFC3339, 'time is RFC 3339')
  t.ok(Math.abs(Date.parse(attrs.time as string) - Date.now()) < 10_000, 'time is now')
  t.equal(attrs.subject, subject, 'subject is the client id')
  t.notOk('datacontenttype' in attrs, 'datacontenttype is not repeated as a user property')
  t.equal(p.qos, 0, 'QoS 0')
  t.equal(p.retain, false, 'not retained')
  return JSON.parse(p.payload.toString()) as Record<string, unknown>
}

t.test('connect, subscribe, unsubscribe and disconnect events, to MQTT 5 and 3.1.1 subscribers', async (t) => {
  const server = await startTestServer(t, { lifecycleEvents: true, sysInterval: 0 })
  const v5 = await watch(t, server, 'watcher-5', 5)
  const v4 = await watch(t, server, 'watcher-311', 4)

  const dev: MqttClient = await connectClient(t, wsUrl(server), { clientId: 'dev-1', protocolVersion: 5, properties: { sessionExpiryInterval: 0 } })
  const connected = checkCloudEvent(t, await v5.take('$events/client/dev-1/connected'), server, 'connected', 'dev-1')
  t.match(connected, { clientId: 'dev-1', transport: 'ws', protocolVersion: 5, sessionExpiryInterval: 0, remoteAddress: /^(::ffff:)?127\.0\.0\.1$/ }, 'connected data')

  const plain = await v4.take('$events/client/dev-1/connected')
  t.notOk(plain.properties, 'a 3.1.1 subscriber gets no properties (binary mode is MQTT 5 only)')
  t.same(JSON.parse(plain.payload.toString()), connected, 'and the same JSON data')

  await dev.subscribeAsync('fleet/+/temp', { qos: 1, nl: true })
  const subscribed = checkCloudEvent(t, await v5.take('$events/client/dev-1/subscribed'), server, 'subscribed', 'dev-1')
  t.same(subscribed, { clientId: 'dev-1', subscriptions: [{ topic: 'fleet/+/temp', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 0 }] }, 'subscribed data')

  await dev.unsubscribeAsync('fleet/+/temp')
  const unsubscribed = checkCloudEvent(t, await v5.take('$events/client/dev-1/unsubscribed'), server, 'unsubscribed', 'dev-1')
  t.same(unsubscribed, { clientId: 'dev-1', subscriptions: [{ topic: 'fleet/+/temp' }] }, 'unsubscribed data')

  await dev.endAsync(false, { reasonCode: 0x04 })
  const disconnected = checkCloudEvent(t, await v5.take('$events/client/dev-1/disconnected'), server, 'disconnected', 'dev-1')
  t.match(disconnected, { clientId: 'dev-1', transport: 'ws', protocolVersion: 5 }, 'disconnected data')
  t.ok('reasonCode' in disconnected, 'carries a reasonCode field')
  t.test('the reason code of a DISCONNECT the client sent', async (t) => {
    t.equal(disconnected.reasonCode, 0x04, 'reasonCode 0x04 (Disconnect with Will Message)')
    t.equal(disconnected.by, 'client')
  })

  const ids = v5.messages.filter(p => p.topic.startsWith('$events/')).map(p => userProps(p).id)
  t.equal(new Set(ids).size, ids.length, 'every event has its own id')
})

t.test('a session taken over: disconnected with reason code 0x8E', async (t) => {
  const server = await startTestServer(t, { lifecycleEvents: true, sysInterval: 0 })
  const w = await watch(t, server, 'watcher-takeover')
  await connectClient(t, tcpUrl(server), { clientId: 'twin', protocolVersion: 5 })
  await w.take('$events/client/twin/connected')
  await connectClient(t, tcpUrl(server), { clientId: 'twin', protocolVersion: 5 })
  const data = checkCloudEvent(t, await w.take('$events/client/twin/disconnected'), server, 'disconnected', 'twin')
  t.equal(data.reasonCode, 0x8e, 'reasonCode 0x8E')
  t.equal(data.reason, '0x8e SessionTakenOver', 'reason names it')
  await w.take('$events/client/twin/connected')
  t.pass('the new connection is announced')
})

t.test('session expired', async (t) => {
  const server = await startTestServer(t, { lifecycleEvents: true, sysInterval: 0 })
  const w = await watch(t, server, 'watcher-expiry')
  const c = await connectClient(t, tcpUrl(server), { clientId: 'brief', protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 1 } })
  await c.subscribeAsync('x/y', { qos: 1 })
  await c.endAsync()
  const data = checkCloudEvent(t, await w.take('$events/client/brief/session-expired', 5000), server, 'session-expired', 'brief')
  t.same(data, { clientId: 'brief' })
})

t.test('client ids that are not one topic level are percent-encoded in the topic, exact in subject', async (t) => {
  const server = await startTestServer(t, { lifecycleEvents: true, sysInterval: 0 })
  const w = await watch(t, server, 'watcher-ids')
  await connectClient(t, tcpUrl(server), { clientId: 'plant/7+#%', protocolVersion: 5 })
  const p = await w.take('$events/client/plant%2F7%2B%23%25/connected')
  t.equal(userProps(p).subject, 'plant/7+#%')
  t.equal((JSON.parse(p.payload.toString()) as { clientId: string }).clientId, 'plant/7+#%')
})

t.test('[MQTT-4.7.2-1] events do not reach # subscribers; none at all when lifecycleEvents is off', async (t) => {
  const on = await startTestServer(t, { lifecycleEvents: true, sysInterval: 0 })
  const all = await connectClient(t, tcpUrl(on), { clientId: 'hash-all' })
  const seen: string[] = []
  all.on('message', (topic: string) => seen.push(topic))
  await all.subscribeAsync('#', { qos: 0 })
  const w = await watch(t, on, 'watcher-hash')
  await connectClient(t, tcpUrl(on), { clientId: 'someone' })
  await w.take('$events/client/someone/connected')
  await sleep(100)
  t.same(seen, [], '# sees no $events')

  const off = await startTestServer(t, { sysInterval: 0 })
  const w2 = await watch(t, off, 'watcher-off')
  await connectClient(t, tcpUrl(off), { clientId: 'quiet' })
  await sleep(300)
  t.same(w2.messages.map(p => p.topic), [], 'no events when lifecycleEvents is false (the default)')
})
