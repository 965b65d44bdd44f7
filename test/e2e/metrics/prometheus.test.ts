/**
 * Prometheus /metrics: counters move by exactly what a known workload of real
 * MQTT.js clients (TCP and WebSocket, 3.1.1 and 5) and raw sockets did.
 */
import t from 'tap'
import mqtt, { type Packet } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl, wsUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { createObservability } from '../../../lib/metrics/index.js'
import { ConfigSchema } from '../../../lib/config/schema.js'
import { silentLogger } from '../../../lib/logging.js'
import { httpBase, scrape, wireLength } from '../../helpers/metrics.js'
import { waitFor } from '../../helpers/wait.js'

/** Counts the bytes of the PUBLISH packets a client sends, as mqtt-packet encodes them. */
function publishBytesSent (client: MqttClient, protocolVersion: 4 | 5): { total: number } {
  const acc = { total: 0 }
  client.on('packetsend', (packet: Packet) => {
    if (packet.cmd === 'publish') acc.total += mqtt.generate(packet, { protocolVersion }).length
  })
  return acc
}

t.test('a known workload moves every traffic counter by exactly its size', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const N = 4
  const before = await scrape(server)

  const sub = await connectClient(t, tcpUrl(server), { clientId: 'm-sub', protocolVersion: 5 })
  const got = collect(sub)
  let bytesToSub = 0
  sub.on('packetreceive', (p: Packet) => { if (p.cmd === 'publish') bytesToSub += wireLength(p.length ?? 0) })
  await sub.subscribeAsync('m/#', { qos: 2 })

  const publishers = [
    { client: await connectClient(t, tcpUrl(server), { clientId: 'm-tcp5', protocolVersion: 5 }), v: 5 as const },
    { client: await connectClient(t, tcpUrl(server), { clientId: 'm-tcp4', protocolVersion: 4 }), v: 4 as const },
    { client: await connectClient(t, wsUrl(server), { clientId: 'm-ws5', protocolVersion: 5 }), v: 5 as const }
  ]
  const sentBytes = publishers.map(p => publishBytesSent(p.client, p.v))

  const during = await scrape(server)
  t.equal(during.count('culex_connections', { transport: 'tcp', protocol_version: '5' }), 2, 'gauge: 2 MQTT 5 clients on TCP')
  t.equal(during.count('culex_connections', { transport: 'tcp', protocol_version: '4' }), 1, 'gauge: 1 MQTT 3.1.1 client on TCP')
  t.equal(during.count('culex_connections', { transport: 'ws', protocol_version: '5' }), 1, 'gauge: 1 MQTT 5 client on WebSocket')

  for (const { client } of publishers) {
    for (const qos of [0, 1, 2] as const) {
      for (let i = 0; i < N; i++) await client.publishAsync(`m/q${qos}`, `message ${i}`, { qos })
    }
  }
  await got.next(3 * 3 * N)
  const after = await scrape(server)
  const delta = (name: string, labels: Record<string, string> = {}): number => after.count(name, labels) - before.count(name, labels)

  for (const qos of ['0', '1', '2']) {
    t.equal(delta('culex_messages_received_total', { qos }), 3 * N, `received at QoS ${qos}: ${3 * N}`)
    t.equal(delta('culex_messages_sent_total', { qos }), 3 * N, `sent at QoS ${qos}: ${3 * N}`)
  }
  t.equal(delta('culex_bytes_received_total'), sentBytes.reduce((n, s) => n + s.total, 0), 'PUBLISH bytes received = bytes the publishers sent')
  t.equal(delta('culex_bytes_sent_total'), bytesToSub, 'PUBLISH bytes sent = bytes the subscriber received')
  t.equal(delta('culex_connections_total', { transport: 'tcp' }), 3, '3 connections accepted on TCP (subscriber + 2 publishers)')
  t.equal(delta('culex_connections_total', { transport: 'ws' }), 1, '1 connection accepted on WebSocket')
  t.equal(delta('culex_sockets_opened_total', { transport: 'tcp' }), 3, '3 TCP sockets')
  t.notOk(after.has('culex_connects_refused_total'), 'nothing refused')
  t.notOk(after.has('culex_messages_dropped_total'), 'nothing dropped')

  for (const { client } of publishers) await client.endAsync()
  await sub.endAsync()
  await waitFor(async () => (await scrape(server)).count('culex_connections', { transport: 'tcp', protocol_version: '5' }) === 0, { what: 'connections gauge back to 0' })
  const closed = await scrape(server)
  t.equal(closed.count('culex_connections', { transport: 'ws', protocol_version: '5' }), 0, 'WebSocket gauge back to 0')
  t.equal(closed.count('culex_connections', { transport: 'tcp', protocol_version: '4' }), 0, '3.1.1 gauge back to 0')
})

t.test('refused CONNECTs are counted by reason code, not as connections', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const before = await scrape(server)

  // protocol level 6: 3.1.1 CONNACK 0x01 (unacceptable protocol version) = v5 0x84 [MQTT-3.1.2-2]
  const raw = await RawClient.open(tcpPort(server), 4)
  t.teardown(() => raw.destroy())
  raw.sendRaw(Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x78]))
  const connack = await raw.next('connack') as mqtt.IConnackPacket
  t.equal(connack.returnCode, 1, 'CONNACK 0x01')
  await raw.waitClose()

  // an MQTT 5 CONNECT with the reserved flag set is malformed [MQTT-3.1.2-3]: CONNACK 0x81
  const raw5 = await RawClient.open(tcpPort(server), 5)
  t.teardown(() => raw5.destroy())
  const connect = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'bad-flags', clean: true, keepalive: 60 }, { protocolVersion: 5 })
  connect[9] = (connect[9] as number) | 0x01
  raw5.sendRaw(connect)
  const connack5 = await raw5.next('connack') as mqtt.IConnackPacket
  t.equal(connack5.reasonCode, 0x81, 'CONNACK 0x81')
  await raw5.waitClose()

  const after = await scrape(server)
  t.equal(after.count('culex_connects_refused_total', { reason: '0x84' }) - before.count('culex_connects_refused_total', { reason: '0x84' }), 1, 'refused{reason="0x84"} +1')
  t.equal(after.count('culex_connects_refused_total', { reason: '0x81' }) - before.count('culex_connects_refused_total', { reason: '0x81' }), 1, 'refused{reason="0x81"} +1')
  t.equal(after.count('culex_connections_total', { transport: 'tcp' }), before.count('culex_connections_total', { transport: 'tcp' }), 'no connection accepted')
  t.equal(after.count('culex_sockets_opened_total', { transport: 'tcp' }) - before.count('culex_sockets_opened_total', { transport: 'tcp' }), 2, 'two sockets opened')
  t.equal(after.count('culex_connections', { transport: 'tcp', protocol_version: '5' }), 0, 'nobody connected')
})

t.test('the exposition is Prometheus text with process metrics; no shared group families with shared subscriptions off', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0, sharedSubscriptions: false })
  const res = await fetch(`${httpBase(server)}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/, 'text exposition format 0.0.4')
  const text = await res.text()
  t.match(text, /^# TYPE culex_nodejs_eventloop_lag_seconds gauge$/m, 'event loop lag')
  t.match(text, /^culex_process_cpu_user_seconds_total \d/m, 'process CPU')
  t.match(text, /^culex_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m, 'build info')
  t.match(text, /^# TYPE culex_messages_received_total counter$/m)
  // sharedSubscriptions off: no `broker.sharedGroups` provider, so the families are absent, not zero
  t.notMatch(text, /culex_shared_group/, 'no shared group families')
  t.notMatch(text, /culex_store_write_seconds/, 'no store batch histograms: this store reports no batches')
})

t.test('two brokers in one process keep separate registries', async (t) => {
  const a = await startTestServer(t, { sysInterval: 0 })
  const b = await startTestServer(t, { sysInterval: 0 })
  await connectClient(t, tcpUrl(a), { clientId: 'only-on-a' })
  const [sa, sb] = await Promise.all([scrape(a), scrape(b)])
  t.equal(sa.count('culex_connections_total', { transport: 'tcp' }), 1, 'a counted its client')
  t.equal(sb.count('culex_connections_total', { transport: 'tcp' }), 0, 'b did not')
})

t.test('metrics off: /metrics is 404, health still served', async (t) => {
  const server = await startTestServer(t, { metrics: false, sysInterval: 0 })
  const res = await fetch(`${httpBase(server)}/metrics`)
  t.equal(res.status, 404, '/metrics 404')
  await res.text()
  const health = await fetch(`${httpBase(server)}/healthz`)
  t.equal(health.status, 200, '/healthz 200')
  await health.text()
})

t.test('drops reported to the observer are counted by reason', async (t) => {
  const obs = createObservability(ConfigSchema.parse({ sysInterval: 0 }), silentLogger())
  obs.observer.messageDropped('queue-full', 3)
  obs.observer.messageDropped('expired', 1)
  obs.observer.messageDropped('queue-full', 2)
  const text = await obs.scrape() ?? ''
  t.match(text, /^culex_messages_dropped_total\{reason="queue-full"\} 5$/m)
  t.match(text, /^culex_messages_dropped_total\{reason="expired"\} 1$/m)
  await obs.close()
})
