/**
 * QoS 1/2 routing between nodes (lib/cluster/inbox.ts): a message published
 * on node A reaches subscribers on nodes B and C (MQTT.js 5 and 3.1.1,
 * mosquitto_sub -V 5) once per subscription, in the publisher's order, with
 * the subscription's QoS, its Subscription Identifier and the message's
 * MQTT 5 properties; `a/#` matches `a`; No Local holds; PUBACK/PUBREC 0x10
 * only when no node has a matching subscriber.
 */
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub } from '../../helpers/mosquitto.js'
import { redisCli, routeReady, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** The reason code of a QoS 1/2 PUBLISH's PUBACK or PUBREC (0 when absent), published and acknowledged one at a time. */
async function ackCode (client: MqttClient, topic: string, payload: string, qos: 1 | 2, properties?: Record<string, unknown>): Promise<number> {
  let code: number | undefined
  const on = (packet: { cmd: string, reasonCode?: number }): void => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubrec') code = packet.reasonCode ?? 0
  }
  client.on('packetreceive', on)
  try {
    await client.publishAsync(topic, payload, { qos, ...(properties !== undefined ? { properties } : {}) })
  } finally {
    client.removeListener('packetreceive', on)
  }
  if (code === undefined) throw new Error(`no PUBACK/PUBREC for ${topic}`)
  return code
}

t.test('QoS 1 and 2 messages published on node A reach subscribers on B and C once per subscription, in order, with QoS, identifiers and properties [MQTT-4.6.0-6]', async (t) => {
  if (!await hasMosquittoClients()) {
    t.fail('mosquitto-clients is not installed')
    return
  }
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onB = await connectClient(t, b.url, { clientId: 'sub-b', protocolVersion: 5 })
  const gotB = collect(onB)
  await onB.subscribeAsync('q/#', { qos: 2, properties: { subscriptionIdentifier: 7 } })
  await onB.subscribeAsync('x/+/z', { qos: 1, properties: { subscriptionIdentifier: 9 } })
  const onC = await connectClient(t, c.url, { clientId: 'sub-c', protocolVersion: 4 })
  const gotC = collect(onC)
  await onC.subscribeAsync('q/#', { qos: 1 })
  const mosq = mosquittoSub(t, ['-h', '127.0.0.1', '-p', new URL(c.url).port, '-V', '5', '-q', '2', '-i', 'mosq-c', '-F', '%q %t %p', '-t', 'q/n/#'])
  const publisher = await connectClient(t, a.url, { clientId: 'pub-a', protocolVersion: 5 })
  await routeReady(publisher, 'q/n/probe', () => gotB.messages.some((m) => m.topic === 'q/n/probe') && gotC.messages.some((m) => m.topic === 'q/n/probe') && mosq.lines.includes('0 q/n/probe probe'), { timeout: 8000, step: 50 })
  await sleep(200)
  gotB.messages.length = 0
  gotC.messages.length = 0
  mosq.lines.length = 0

  const codes: number[] = []
  for (let i = 0; i < 60; i++) codes.push(await ackCode(publisher, `q/n/${i}`, String(i), i % 2 === 0 ? 1 : 2))
  codes.push(await ackCode(publisher, 'q', 'parent', 1))
  codes.push(await ackCode(publisher, 'x/y/z', 'xyz', 2, { contentType: 'text/plain', userProperties: { k: 'v' }, correlationData: Buffer.from('cd'), responseTopic: 'r/t', messageExpiryInterval: 300 }))
  t.same(codes, codes.map(() => 0), 'every PUBACK/PUBREC is 0x00: the matching subscribers are on other nodes, not 0x10 [MQTT-3.4.2-1]')
  t.equal(await ackCode(publisher, 'nobody/1', 'x', 1), 0x10, 'no subscriber on any node: PUBACK 0x10')
  t.equal(await ackCode(publisher, 'nobody/2', 'x', 2), 0x10, 'no subscriber on any node: PUBREC 0x10')

  await gotB.next(62, 10000)
  await gotC.next(61, 10000)
  await waitFor(() => mosq.lines.length >= 60, { timeout: 10000, what: () => `mosquitto_sub printed ${mosq.lines.length} of 60` })
  await sleep(500)

  const expected = Array.from({ length: 60 }, (_, i) => String(i))
  const numbered = (got: typeof gotB): typeof gotB.messages => got.messages.filter((m) => m.topic.startsWith('q/n/'))
  const atQos = (got: typeof gotB, qos: number): string[] => numbered(got).filter((m) => m.qos === qos).map((m) => m.payload.toString())
  t.same([...numbered(gotB).map((m) => m.payload.toString())].sort((x, y) => Number(x) - Number(y)), expected, 'b: 60 messages, once each')
  t.same(atQos(gotB, 1), expected.filter((_, i) => i % 2 === 0), 'b (subscribed at QoS 2): the QoS 1 ones at QoS 1, in the publisher\'s order [MQTT-4.6.0-6]')
  t.same(atQos(gotB, 2), expected.filter((_, i) => i % 2 === 1), 'b: the QoS 2 ones at QoS 2, in the publisher\'s order [MQTT-4.6.0-6]')
  t.ok(numbered(gotB).every((m) => (m.properties?.subscriptionIdentifier as unknown as number[] | number) !== undefined && [m.properties?.subscriptionIdentifier].flat().includes(7)), 'b: Subscription Identifier 7 on each [MQTT-3.3.4-3]')
  t.same(numbered(gotC).map((m) => m.payload.toString()), expected, 'c (MQTT 3.1.1): the same 60 in order')
  t.ok(numbered(gotC).every((m) => m.qos === 1), 'c (subscribed at QoS 1): QoS 1 each [MQTT-3.8.4-8]')
  for (const qos of [1, 2]) {
    t.same(mosq.lines.filter((l) => l.startsWith(`${qos} q/n/`)), expected.filter((_, i) => i % 2 === qos - 1).map((p) => `${qos} q/n/${p} ${p}`), `mosquitto_sub -V 5 on c: the 30 at QoS ${qos}, once each, in order`)
  }
  t.equal(mosq.lines.length, 60, 'mosquitto_sub: nothing else')
  t.same(gotB.messages.filter((m) => m.topic === 'q').map((m) => m.payload.toString()), ['parent'], '[MQTT-4.7.1-2] q/# matches q, across nodes')
  t.same(gotC.messages.filter((m) => m.topic === 'q').map((m) => m.payload.toString()), ['parent'])
  const xyz = gotB.messages.filter((m) => m.topic === 'x/y/z')
  t.equal(xyz.length, 1, 'x/+/z matches x/y/z once')
  t.equal(xyz[0]?.qos, 1, 'x/y/z at the subscription\'s QoS 1')
  t.match(xyz[0]?.properties, { contentType: 'text/plain', userProperties: { k: 'v' }, responseTopic: 'r/t', subscriptionIdentifier: 9 }, 'MQTT 5 properties travel with the message [MQTT-3.3.2-20]')
  t.equal(xyz[0]?.properties?.correlationData?.toString(), 'cd')
  const expiry = xyz[0]?.properties?.messageExpiryInterval ?? 0
  t.ok(expiry > 290 && expiry <= 300, `Message Expiry Interval carried (${expiry}) [MQTT-3.3.2-6]`)
  t.equal(gotB.messages.length, 62, 'nothing else reached b')
  t.equal(gotC.messages.length, 61, 'nothing else reached c')
  t.ok([...gotB.messages, ...gotC.messages].every((m) => !m.retain), 'RETAIN 0, as routed QoS 0')
  t.equal(redisCli(redis, 'XLEN', '{culex}:inbox:{b}'), '(integer) 0', 'b\'s inbox is empty: every entry acknowledged and deleted')
})

t.test('No Local across nodes: the publisher\'s own subscription does not get its message, another node\'s does [MQTT-3.8.3-3]', async (t) => {
  const { nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const self = await connectClient(t, a.url, { clientId: 'self' })
  const gotSelf = collect(self)
  await self.subscribeAsync('nl/#', { qos: 1, nl: true })
  const other = await connectClient(t, b.url, { clientId: 'other' })
  const gotOther = collect(other)
  await other.subscribeAsync('nl/#', { qos: 1, nl: true })
  await routeReady(self, 'nl/probe', () => gotOther.messages.length > 0, { timeout: 8000, step: 50 })
  gotOther.messages.length = 0
  for (let i = 0; i < 10; i++) await self.publishAsync(`nl/${i}`, String(i), { qos: i % 2 === 0 ? 1 : 2 })
  await gotOther.next(10, 5000)
  await sleep(300)
  t.same(gotOther.messages.map((m) => m.payload.toString()), Array.from({ length: 10 }, (_, i) => String(i)), 'the other node\'s No Local subscriber gets all 10')
  t.equal(gotSelf.messages.length, 0, 'the publisher\'s own No Local subscription gets none')
})

t.test('Redis refuses the inbox write (out of memory): MQTT 5 PUBACK 0x80 (QoS 2: DISCONNECT 0x80), 3.1.1 closed, and the message reaches no subscriber on any node', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { redis: { args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] } })
  const remote = await connectClient(t, b.url, { clientId: 'remote' })
  const gotRemote = collect(remote)
  await remote.subscribeAsync('oom/#', { qos: 1 })
  const local = await connectClient(t, a.url, { clientId: 'local' })
  const gotLocal = collect(local)
  await local.subscribeAsync('oom/#', { qos: 1 })
  const v5 = await connectClient(t, a.url, { clientId: 'pub-5', protocolVersion: 5 })
  const v4 = await connectClient(t, a.url, { clientId: 'pub-4', protocolVersion: 4 })
  const q2 = await connectClient(t, a.url, { clientId: 'pub-5-q2', protocolVersion: 5 })
  await routeReady(v5, 'oom/probe', () => gotRemote.messages.length > 0, { timeout: 8000, step: 50 })
  t.equal(await ackCode(v5, 'oom/before', 'kept', 1), 0, 'before: PUBACK 0x00')
  await waitFor(() => gotRemote.messages.some((m) => m.topic === 'oom/before'), { timeout: 5000, what: 'oom/before on b' })

  redisCli(redis, 'SETRANGE', 'filler', String(6 * 1024 * 1024), 'x')
  t.match(redisCli(redis, 'XADD', 'probe', '*', 'f', 'v'), /^\(error\) OOM command not allowed/, 'Redis refuses XADD')
  gotRemote.messages.length = 0
  gotLocal.messages.length = 0
  const sentAt = Date.now()
  let code: number | undefined
  try {
    await v5.publishAsync('oom/refused', 'no', { qos: 1 })
  } catch (err) {
    code = (err as { code?: number }).code
  }
  const took = Date.now() - sentAt
  t.equal(code, 0x80, 'MQTT 5: PUBACK 0x80 Unspecified error [MQTT-3.4.2-1]')
  t.ok(took < 3000, `answered in ${took} ms, not a hang`)
  t.equal(v5.connected, true, 'MQTT 5: the connection goes on')
  let q2reason: number | undefined
  const q2gone = new Promise<void>((resolve) => {
    q2.on('disconnect', (packet) => { q2reason = packet.reasonCode })
    q2.once('close', () => resolve())
  })
  q2.publish('oom/refused2', 'no', { qos: 2 })
  await q2gone
  t.equal(q2reason, 0x80, 'MQTT 5, QoS 2: DISCONNECT 0x80, no PUBREC (as a refused retained QoS 2)')
  const gone = new Promise<void>((resolve) => { v4.once('close', () => resolve()) })
  let acked = false
  v4.publish('oom/refused4', 'no', { qos: 1 }, (err) => { if (err === undefined || err === null) acked = true })
  await gone
  t.equal(acked, false, '3.1.1: closed, no PUBACK')
  await sleep(500)
  t.same(gotRemote.messages.map((m) => m.topic), [], 'nothing reached b')
  t.same(gotLocal.messages.map((m) => m.topic), [], 'nothing reached the local subscriber on a either: the inbox write comes before any delivery')
  redisCli(redis, 'DEL', 'filler')
  await waitFor(async () => {
    try { return await ackCode(v5, 'oom/after', 'ok', 1) === 0 } catch { return false }
  }, { timeout: 8000, step: 200, what: 'QoS 1 accepted again once Redis has memory' })
  await waitFor(() => gotRemote.messages.some((m) => m.topic === 'oom/after'), { timeout: 5000, what: 'oom/after on b' })
  t.pass('routed again once Redis has memory')
})
