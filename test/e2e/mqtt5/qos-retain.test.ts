/**
 * Maximum QoS and Retain Available (spec 3.2.2.3.4, 3.2.2.3.5): advertised
 * in CONNACK when restricted, enforced on PUBLISH, SUBSCRIBE and the Will.
 *
 * Implemented in lib/protocol/inbound/publish.ts (checkPublishHeader),
 * lib/protocol/inbound/subscribe.ts (checkSubscription) and
 * lib/protocol/flows/connect.ts (onConnect for the Will, onConnack).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep } from '../../helpers/wait.js'

t.test('maximumQoS: 1', async (t) => {
  const server = await startTestServer(t, { maximumQoS: 1 })
  const port = tcpPort(server)

  await t.test('[MQTT-3.2.2-9] CONNACK states Maximum QoS 1', async (t) => {
    const { connack } = await rawConnect(t, port, 5)
    t.equal(connack.reasonCode, 0)
    t.equal(connack.properties?.maximumQoS, 1)
  })

  await t.test('[MQTT-3.2.2-11] a QoS 2 PUBLISH gets DISCONNECT 0x9B', async (t) => {
    const watcher = await connectClient(t, tcpUrl(server))
    const got = collect(watcher)
    await watcher.subscribeAsync('mq/#', { qos: 1 })
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'mq/two', 'x', { qos: 2 })
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.QoSNotSupported, 'DISCONNECT 0x9B')
    await c.waitClose()
    await sleep(100)
    t.equal(got.messages.length, 0, 'the message was not published')
  })

  await t.test('[MQTT-3.2.2-10] a SUBSCRIBE at QoS 2 is accepted and granted QoS 1; messages arrive at QoS 1', async (t) => {
    const c = await rawClient(t, port, 5)
    t.same(await rawSubscribe(c, [{ topic: 'mq/sub', qos: 2 }, { topic: 'mq/zero', qos: 0 }]), [1, 0])
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync('mq/sub', 'hi', { qos: 1 })
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(p.qos, 1)
  })

  await t.test('[MQTT-3.2.2-12] a Will at QoS 2 is refused with CONNACK 0x9B and the connection closed; QoS 1 is accepted', async (t) => {
    const { client, connack } = await rawConnect(t, port, 5, { will: { topic: 'mq/will', payload: Buffer.from('w'), qos: 2, retain: false } })
    t.equal(connack.reasonCode, ReasonCode.QoSNotSupported, 'CONNACK 0x9B')
    t.equal(connack.sessionPresent, false)
    await client.waitClose()
    const ok = await rawConnect(t, port, 5, { will: { topic: 'mq/will', payload: Buffer.from('w'), qos: 1, retain: false } })
    t.equal(ok.connack.reasonCode, 0, 'a QoS 1 Will is accepted')
  })
})

t.test('maximumQoS: 0', async (t) => {
  const server = await startTestServer(t, { maximumQoS: 0 })
  const { client, connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.properties?.maximumQoS, 0, '[MQTT-3.2.2-9] CONNACK states Maximum QoS 0')
  t.same(await rawSubscribe(client, [{ topic: 'mq0/x', qos: 2 }]), [0], '[MQTT-3.2.2-10] SUBSCRIBE QoS 2 granted QoS 0')
  rawPublish(client, 'mq0/x', 'x', { qos: 1 })
  const d = await client.next('disconnect') as mqtt.IDisconnectPacket
  t.equal(d.reasonCode, ReasonCode.QoSNotSupported, '[MQTT-3.2.2-11] a QoS 1 PUBLISH gets DISCONNECT 0x9B')
})

t.test('retainAvailable: false', async (t) => {
  const server = await startTestServer(t, { retainAvailable: false })
  const port = tcpPort(server)

  await t.test('spec 3.2.2.3.5: CONNACK states Retain Available 0', async (t) => {
    const { connack } = await rawConnect(t, port, 5)
    t.equal(connack.properties?.retainAvailable, false)
  })

  await t.test('[MQTT-3.2.2-14] a retained PUBLISH gets DISCONNECT 0x9A and nothing is retained', async (t) => {
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'ra/x', 'kept?', { qos: 1, retain: true })
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.RetainNotSupported, 'DISCONNECT 0x9A')
    await c.waitClose()
    const late = await rawClient(t, port, 5)
    await rawSubscribe(late, [{ topic: 'ra/x', qos: 1 }])
    await sleep(200)
    t.equal(late.packets.filter(p => p.cmd === 'publish').length, 0, 'no retained message for a later subscriber')
  })

  await t.test('[MQTT-3.2.2-13] a retained Will is refused with CONNACK 0x9A and the connection closed; a plain Will is accepted', async (t) => {
    const { client, connack } = await rawConnect(t, port, 5, { will: { topic: 'ra/will', payload: Buffer.from('w'), qos: 0, retain: true } })
    t.equal(connack.reasonCode, ReasonCode.RetainNotSupported, 'CONNACK 0x9A')
    await client.waitClose()
    const ok = await rawConnect(t, port, 5, { will: { topic: 'ra/will', payload: Buffer.from('w'), qos: 0, retain: false } })
    t.equal(ok.connack.reasonCode, 0)
  })

  await t.test('a non-retained PUBLISH is delivered as usual', async (t) => {
    const sub = await connectClient(t, tcpUrl(server))
    const got = collect(sub)
    await sub.subscribeAsync('ra/plain', { qos: 1 })
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'ra/plain', 'fine', { qos: 1 })
    await c.next('puback')
    const [m] = await got.next(1)
    t.equal(m?.payload.toString(), 'fine')
  })
})

t.test('spec 3.2.2.3.4, 3.2.2.3.5, 3.2.2.3.11, 3.2.2.3.12: by default CONNACK leaves out Maximum QoS, Retain, Wildcard and Subscription Identifier Available (absent = available)', async (t) => {
  const server = await startTestServer(t)
  const { connack } = await rawConnect(t, tcpPort(server), 5)
  const props = connack.properties ?? {}
  t.notOk('maximumQoS' in props, 'no Maximum QoS')
  t.notOk('retainAvailable' in props, 'no Retain Available')
  t.notOk('wildcardSubscriptionAvailable' in props, 'no Wildcard Subscription Available')
  t.notOk('subscriptionIdentifiersAvailable' in props, 'no Subscription Identifiers Available')
  const c = await rawClient(t, tcpPort(server), 5)
  t.same(await rawSubscribe(c, [{ topic: 'def/#', qos: 2 }]), [2], 'QoS 2 is granted')
})
