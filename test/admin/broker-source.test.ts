/** The broker adapter against a running culex with real clients. */
import t from 'tap'
import { createBrokerSource } from '../../lib/admin/broker-source.js'
import { TrafficCounters } from '../../lib/metrics/counters.js'
import { startTestServer, tcpUrl } from '../helpers/server.js'
import { connectClient, waitForPacket } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

t.test('clients, detail, retained levels, groups, disconnect', async (t) => {
  const server = await startTestServer(t)
  const source = createBrokerSource({ broker: server.broker, counters: new TrafficCounters(), readiness: async () => undefined })
  const url = tcpUrl(server)
  const a = await connectClient(t, url, { clientId: 'a', protocolVersion: 4 })
  await new Promise<void>((resolve, reject) => a.subscribe(['t/1', '$share/g/t/#'], { qos: 1 }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve, reject) => a.publish('r/x/y', 'v', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve, reject) => a.publish('r/x', '', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))

  t.match(source.clients(), [{ clientId: 'a', protocol: '3.1.1', state: 'connected', subscriptions: 2 }])
  const detail = await source.client('a')
  t.same(detail?.subscriptionList.map(s => [s.filter, s.qos, s.shared]), [['$share/g/t/#', 1, true], ['t/1', 1, false]])
  t.equal(detail?.will, null)
  t.equal(await source.client('nobody'), undefined)
  t.match(source.sharedGroups(), [{ group: '$share/g/t/#', shareName: 'g', filter: 't/#', membersOnline: 1 }])

  const root = await source.retainedLevel('r')
  t.same(root.nodes.map(n => [n.topic, n.descendants, n.message?.payload.preview ?? null]), [['r/x', 1, null]], 'an empty retained payload is no message')
  t.equal(await source.deleteRetained('r/none'), false)
  t.equal(await source.deleteRetained('r/x/y'), true)
  t.same((await source.retainedLevel('r')).nodes, [])

  t.equal(source.disconnect('nobody'), false)
  const closed = new Promise<void>((resolve) => a.once('close', () => resolve()))
  t.equal(source.disconnect('a'), true, '3.1.1: closed, no DISCONNECT')
  await closed
})

t.test('an MQTT 5 client gets DISCONNECT 0x98; totals follow the counters', async (t) => {
  const server = await startTestServer(t)
  const counters = new TrafficCounters()
  counters.publishReceived(1, 10)
  counters.clientAccepted('tcp', 5)
  const source = createBrokerSource({ broker: server.broker, counters, readiness: async () => undefined })
  t.match(source.totals(), { messagesIn: 1, bytesIn: 10, connects: 1, connections: 1 })
  const b = await connectClient(t, tcpUrl(server), { clientId: 'b', will: { topic: 'w', payload: Buffer.from([1, 2]), qos: 0, retain: false } })
  t.match((await source.client('b'))?.will, { topic: 'w', payload: { format: 'hex', preview: '01 02' } })
  const packet = waitForPacket(b, 'disconnect')
  source.disconnect('b')
  t.equal(((await packet) as { reasonCode?: number }).reasonCode, 0x98)
})

t.test('an offline persistent session is listed as offline, with its subscriptions ($share too), queue, expiry and delayed will', async (t) => {
  const server = await startTestServer(t)
  const source = createBrokerSource({ broker: server.broker, counters: new TrafficCounters(), readiness: async () => undefined })
  const url = tcpUrl(server)
  const away = await connectClient(t, url, {
    clientId: 'away',
    clean: false,
    properties: { sessionExpiryInterval: 300 },
    will: { topic: 'wills/away', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { willDelayInterval: 60 } }
  })
  await new Promise<void>((resolve, reject) => away.subscribe(['plain/#', '$share/g/jobs/#'], { qos: 1 }, (err) => err ? reject(err) : resolve()))
  t.match(source.clients(), [{ clientId: 'away', state: 'connected', sessionExpiryInterval: 300, sessionExpiresAt: null }], 'connected: listed once, live')
  t.equal((await source.overview()).sessions.offline, 0)
  // closed without DISCONNECT: the session stays, its will waits out the delay
  away.end(true)
  await waitFor(() => source.clients().some(c => c.clientId === 'away' && c.state === 'offline' && c.sessionExpiresAt !== null), { timeout: 3000 })
  const pub = await connectClient(t, url, { clientId: 'pub' })
  await new Promise<void>((resolve, reject) => pub.publish('plain/1', 'queued', { qos: 1 }, (err) => err ? reject(err) : resolve()))

  const offline = source.clients().find(c => c.clientId === 'away')
  t.match(offline, { state: 'offline', username: null, transport: null, protocol: null, subscriptions: 2, queued: 1, sessionExpiryInterval: 300 })
  t.ok((offline?.sessionExpiresAt ?? 0) > Date.now() + 290_000, 'expires about 300 s after it went offline')
  t.equal(source.clients().filter(c => c.clientId === 'away').length, 1, 'once')
  const detail = await source.client('away')
  t.same(detail?.subscriptionList.map(s => [s.filter, s.qos, s.shared]), [['$share/g/jobs/#', 1, true], ['plain/#', 1, false]])
  t.match(detail?.will, { topic: 'wills/away', qos: 1, delayInterval: 60, payload: { format: 'text', preview: 'bye' } })
  t.ok((detail?.willDelayUntil ?? 0) > Date.now() + 50_000, 'the will is published about 60 s after it went offline')
  t.equal((await source.overview()).sessions.offline, 1, 'the overview counts it as the list shows it')
  t.equal(source.disconnect('away'), false, 'an offline session cannot be disconnected')

  const back = await connectClient(t, url, { clientId: 'away', clean: false, properties: { sessionExpiryInterval: 300 } })
  t.ok(back.connected)
  await waitFor(() => source.clients().find(c => c.clientId === 'away')?.state === 'connected', { timeout: 3000 })
  t.equal(source.clients().filter(c => c.clientId === 'away').length, 1, 'back online: listed once, live')
  t.equal((await source.overview()).sessions.offline, 0)
})
