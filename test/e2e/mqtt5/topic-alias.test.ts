/**
 * Topic aliases (spec 3.3.2.3.4) both ways.
 *
 * Inbound: aedes resolves and validates the client's aliases (DISCONNECT
 * 0x94); culex advertises the configured Topic Alias Maximum and follows the
 * mapping in lib/protocol/flows/publish-in.ts (onPublish).
 * Outbound: lib/protocol/outbound/topic-alias.ts (OutboundAliases) and
 * lib/protocol/flows/connect.ts (learnConnect) and
 * lib/protocol/flows/publish-out.ts (sendPublish, alias).
 */
import t, { type Test } from 'tap'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe, takePublishes, text, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { RawClient } from '../../helpers/raw.js'
import { sleep } from '../../helpers/wait.js'

t.test('spec 3.2.2.3.8: CONNACK advertises the configured Topic Alias Maximum', async (t) => {
  const server = await startTestServer(t, { topicAliasMaximum: 4 })
  const { connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.properties?.topicAliasMaximum, 4)
  const defaults = await startTestServer(t)
  const { connack: d } = await rawConnect(t, tcpPort(defaults), 5)
  t.equal(d.properties?.topicAliasMaximum, 10, 'the default, 10')
})

t.test('[MQTT-3.3.2-12] an inbound alias is set with a topic and then used alone; subscribers get the real topic both times', async (t) => {
  const server = await startTestServer(t, { topicAliasMaximum: 4 })
  const sub = await connectClient(t, tcpUrl(server))
  const got = collect(sub)
  await sub.subscribeAsync('ta/#', { qos: 1 })
  const pub = await rawClient(t, tcpPort(server), 5)
  rawPublish(pub, 'ta/one', 'first', { qos: 1, properties: { topicAlias: 4 } })
  await pub.next('puback')
  rawPublish(pub, '', 'second', { qos: 1, properties: { topicAlias: 4 } })
  const ack = await pub.next('puback') as mqtt.IPubackPacket
  t.equal(ack.reasonCode ?? 0, 0, 'the aliased PUBLISH is accepted')
  // an alias can be re-pointed to another topic
  rawPublish(pub, 'ta/two', 'third', { qos: 1, properties: { topicAlias: 4 } })
  await pub.next('puback')
  rawPublish(pub, '', 'fourth', { qos: 1, properties: { topicAlias: 4 } })
  await pub.next('puback')
  const messages = await got.next(4)
  t.same(messages.map(m => [m.topic, m.payload.toString()]), [['ta/one', 'first'], ['ta/one', 'second'], ['ta/two', 'third'], ['ta/two', 'fourth']])
  t.notOk(messages.some(m => m.properties?.topicAlias !== undefined), "the publisher's alias is not forwarded")
})

/** Sends a PUBLISH with a Topic Alias property of `alias`, encoded by hand so any value can be sent. */
function publishWithAlias (c: RawClient, topic: string, alias: number): void {
  const bytes = mqtt.generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } }, { protocolVersion: 5 })
  // properties: [length=3, 0x23, MSB, LSB] right after the topic (QoS 0: no packet id)
  const at = 2 + 2 + Buffer.byteLength(topic)
  if (bytes[at] !== 3 || bytes[at + 1] !== 0x23) throw new Error('unexpected PUBLISH layout')
  bytes.writeUInt16BE(alias, at + 2)
  c.sendRaw(bytes)
}

for (const [name, topic, alias, code] of [
  ['[MQTT-3.3.2-8] a Topic Alias of 0', 'ta/zero', 0, ReasonCode.TopicAliasInvalid],
  ['[MQTT-3.3.2-9] a Topic Alias above the Topic Alias Maximum in CONNACK', 'ta/above', 5, ReasonCode.TopicAliasInvalid],
  ['[MQTT-3.3.2-9] an empty Topic Name with an alias above the maximum', '', 5, ReasonCode.TopicAliasInvalid],
  // within the maximum, the alias is valid but the client never set it: a Protocol Error, as mosquitto answers
  ['spec 3.3.2.3.4: an empty Topic Name with an alias (within the maximum) that has no mapping', '', 3, ReasonCode.ProtocolError]
] as const) {
  t.test(`${name} gets DISCONNECT 0x${code.toString(16)} and the connection is closed`, async (t) => {
    const server = await startTestServer(t, { topicAliasMaximum: 4 })
    const watcher = await connectClient(t, tcpUrl(server))
    const got = collect(watcher)
    await watcher.subscribeAsync('ta/#')
    const c = await rawClient(t, tcpPort(server), 5)
    publishWithAlias(c, topic, alias)
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, code, `DISCONNECT 0x${code.toString(16)}`)
    await c.waitClose()
    await sleep(100)
    t.equal(got.messages.length, 0, 'nothing was published')
  })
}

/** Connects a raw subscriber to `ta/out/#` at QoS 0. */
async function aliasSubscriber (t: Test, port: number, connect: Partial<mqtt.IConnectPacket>): Promise<RawClient> {
  const c = await rawClient(t, port, 5, connect)
  await rawSubscribe(c, [{ topic: 'ta/out/#', qos: 0 }])
  return c
}

async function receive (c: RawClient, n: number): Promise<mqtt.IPublishPacket[]> {
  const out: mqtt.IPublishPacket[] = []
  while (out.length < n) out.push(await c.next('publish') as mqtt.IPublishPacket)
  return out
}

t.test('[MQTT-3.3.2-11] [MQTT-3.3.2-8] [MQTT-3.1.2-26] outbound aliases: topic and alias first, then alias alone; none once the client maximum is used; never 0 or above it', async (t) => {
  const server = await startTestServer(t)
  const sub = await aliasSubscriber(t, tcpPort(server), { properties: { topicAliasMaximum: 2 } })
  const pub = await connectClient(t, tcpUrl(server))
  const topics = ['ta/out/a', 'ta/out/a', 'ta/out/b', 'ta/out/b', 'ta/out/c', 'ta/out/c', 'ta/out/a', 'ta/out/b']
  for (const [i, topic] of topics.entries()) await pub.publishAsync(topic, `p${i}`)
  const got = await receive(sub, topics.length)
  t.same(got.map(p => text(p)), topics.map((_, i) => `p${i}`), 'every message arrived, in order')
  const wire = got.map(p => [p.topic, p.properties?.topicAlias])
  t.same(wire, [
    ['ta/out/a', 1], // first on a topic: topic + new alias
    ['', 1], // then the alias alone
    ['ta/out/b', 2],
    ['', 2],
    ['ta/out/c', undefined], // the client's maximum (2) is used up: no alias
    ['ta/out/c', undefined],
    ['', 1],
    ['', 2]
  ])
  const aliases = got.map(p => p.properties?.topicAlias).filter((a): a is number => a !== undefined)
  t.ok(aliases.every(a => a >= 1 && a <= 2), 'never 0, never above the client maximum')
})

t.test('[MQTT-3.1.2-27] a client that sent no Topic Alias Maximum gets no aliases', async (t) => {
  const server = await startTestServer(t)
  const sub = await aliasSubscriber(t, tcpPort(server), {})
  const pub = await connectClient(t, tcpUrl(server))
  for (let i = 0; i < 3; i++) await pub.publishAsync('ta/out/x', `p${i}`)
  const got = await receive(sub, 3)
  t.same(got.map(p => [p.topic, p.properties?.topicAlias]), [['ta/out/x', undefined], ['ta/out/x', undefined], ['ta/out/x', undefined]])
})

t.test('with outboundTopicAliases: false, no aliases are sent even to a client that accepts them', async (t) => {
  const server = await startTestServer(t, { outboundTopicAliases: false })
  const sub = await aliasSubscriber(t, tcpPort(server), { properties: { topicAliasMaximum: 10 } })
  const pub = await connectClient(t, tcpUrl(server))
  for (let i = 0; i < 3; i++) await pub.publishAsync('ta/out/x', `p${i}`)
  const got = await receive(sub, 3)
  t.same(got.map(p => [p.topic, p.properties?.topicAlias]), [['ta/out/x', undefined], ['ta/out/x', undefined], ['ta/out/x', undefined]])
})

t.test('[MQTT-3.3.2-7] outbound aliases do not carry over to a new network connection', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const clientId = uniqueId('alias-reset')
  const connect = { clientId, clean: false, properties: { topicAliasMaximum: 2, sessionExpiryInterval: 60 } }
  const first = await aliasSubscriber(t, port, connect)
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('ta/out/r', 'one', { qos: 1 })
  await pub.publishAsync('ta/out/r', 'two', { qos: 1 })
  const before = await receive(first, 2)
  t.same(before.map(p => [p.topic, p.properties?.topicAlias]), [['ta/out/r', 1], ['', 1]])
  first.send({ cmd: 'disconnect', reasonCode: 0 })
  await first.waitClose()

  const second = await rawClient(t, port, 5, connect)
  await pub.publishAsync('ta/out/r', 'three', { qos: 1 })
  const [after] = await receive(second, 1)
  t.equal(after?.topic, 'ta/out/r', 'the first message on the new connection carries the topic')
  t.equal(after?.properties?.topicAlias, 1, 'with a newly assigned alias')
  t.equal(takePublishes(second).length, 0)
})

t.test('aliases follow the order messages are sent in when held by flow control', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { topicAliasMaximum: 5, receiveMaximum: 1 } })
  await rawSubscribe(sub, [{ topic: 'ta/out/#', qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server))
  for (const topic of ['ta/out/h1', 'ta/out/h2', 'ta/out/h1', 'ta/out/h2']) await pub.publishAsync(topic, topic, { qos: 1 })
  const got: mqtt.IPublishPacket[] = []
  const topicOfAlias = new Map<number, string>()
  for (let i = 0; i < 4; i++) {
    const p = await sub.next('publish') as mqtt.IPublishPacket
    got.push(p)
    const alias = p.properties?.topicAlias
    // resolve as a client would [MQTT-3.3.2-10]
    if (alias !== undefined && p.topic !== '') topicOfAlias.set(alias, p.topic)
    const topic = p.topic !== '' ? p.topic : topicOfAlias.get(alias as number)
    t.equal(topic, text(p), `message ${i} resolves to its real topic`)
    sub.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  }
  t.same(got.map(p => p.topic), ['ta/out/h1', 'ta/out/h2', '', ''])
})
