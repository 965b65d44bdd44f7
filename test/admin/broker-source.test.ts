/** The broker adapter against a running culex with real clients. */
import t from 'tap'
import { createBrokerSource } from '../../lib/admin/broker-source.js'
import { TrafficCounters } from '../../lib/metrics/counters.js'
import { startTestServer, tcpUrl } from '../helpers/server.js'
import { connectClient, waitForPacket } from '../helpers/mqtt.js'

t.test('clients, detail, retained levels, groups, disconnect', async (t) => {
  const server = await startTestServer(t)
  const source = createBrokerSource({ broker: server.broker, counters: new TrafficCounters(), readiness: async () => undefined })
  const url = tcpUrl(server)
  const a = await connectClient(t, url, { clientId: 'a', protocolVersion: 4 })
  await new Promise<void>((resolve, reject) => a.subscribe(['t/1', '$share/g/t/#'], { qos: 1 }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve, reject) => a.publish('r/x/y', 'v', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve, reject) => a.publish('r/x', '', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))

  t.match(source.clients(), [{ clientId: 'a', protocol: '3.1.1', state: 'connected', subscriptions: 2 }])
  const detail = source.client('a')
  t.same(detail?.subscriptionList.map(s => [s.filter, s.qos, s.shared]), [['$share/g/t/#', 1, true], ['t/1', 1, false]])
  t.equal(detail?.will, null)
  t.equal(source.client('nobody'), undefined)
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
  t.match(source.client('b')?.will, { topic: 'w', payload: { format: 'hex', preview: '01 02' } })
  const packet = waitForPacket(b, 'disconnect')
  source.disconnect('b')
  t.equal(((await packet) as { reasonCode?: number }).reasonCode, 0x98)
})
