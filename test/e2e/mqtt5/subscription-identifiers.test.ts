/**
 * Subscription Identifiers and overlapping subscriptions (spec 3.3.4,
 * 3.8.2.1.2), Wildcard and Subscription Identifier availability
 * (spec 3.2.2.3.11, 3.2.2.3.12).
 *
 * Implemented in lib/protocol/delivery.ts (forwardCorrections,
 * matchingSubscriptions, shouldDeliverWithQoS), lib/aedes-internals.ts
 * (routeQoS0Delivery), lib/protocol/inbound/subscribe.ts (checkSubscription)
 * and lib/protocol/flows/ (subscribe.ts onSubscribe, connect.ts onConnack).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe, takePublishes, expectNone, subscriptionIds, text, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep } from '../../helpers/wait.js'

t.test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] overlapping subscriptions a/# (id 1) and a/+ (id 2): one message carrying both identifiers', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5)
  t.same(await rawSubscribe(sub, [{ topic: 'a/#', qos: 1 }], { subscriptionIdentifier: 1 }), [1])
  t.same(await rawSubscribe(sub, [{ topic: 'a/+', qos: 1 }], { subscriptionIdentifier: 2 }), [1])
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('a/b', 'both', { qos: 1 })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'both')
  t.same(subscriptionIds(p), [1, 2], 'both identifiers')
  sub.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await expectNone(sub, 'publish', 200)
  t.pass('a single copy')

  await pub.publishAsync('a/b/c', 'deep', { qos: 1 })
  const q = await sub.next('publish') as mqtt.IPublishPacket
  t.same(subscriptionIds(q), [1], 'only a/# matches a/b/c: only its identifier')
})

t.test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] a message queued while a persistent session was offline carries the identifiers of every matching subscription', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const clientId = uniqueId('si-offline')
  const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
  const sub = await rawClient(t, port, 5, connect)
  await rawSubscribe(sub, [{ topic: 'a/#', qos: 1 }], { subscriptionIdentifier: 1 })
  await rawSubscribe(sub, [{ topic: 'a/+', qos: 1 }], { subscriptionIdentifier: 2 })
  sub.send({ cmd: 'disconnect', reasonCode: 0 })
  await sub.waitClose()

  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('a/q', 'queued', { qos: 1 })
  const { client: back, connack } = await rawConnect(t, port, 5, connect)
  t.equal(connack.sessionPresent, true)
  const p = await back.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'queued')
  t.same(subscriptionIds(p), [1, 2], 'both identifiers on the queued message')
  back.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await sleep(200)
  const extra = takePublishes(back)
  t.same(extra.map(e => [text(e), subscriptionIds(e)]), [], 'a single copy, as on live delivery (extra copies would each have to carry only their own identifier [MQTT-3.3.4-5])')
})

t.test('[MQTT-3.3.4-5] spec 3.8.4: a retained message sent because of a new subscription carries that subscription identifier', async (t) => {
  const server = await startTestServer(t)
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('r/x', 'kept', { qos: 1, retain: true })
  const sub = await rawClient(t, tcpPort(server), 5)
  await rawSubscribe(sub, [{ topic: 'r/+', qos: 1 }], { subscriptionIdentifier: 9 })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(p.retain, true)
  t.same(subscriptionIds(p), [9])
  // a later, different subscription that also matches sends the retained message with its own identifier
  await rawSubscribe(sub, [{ topic: 'r/#', qos: 1 }], { subscriptionIdentifier: 10 })
  const q = await sub.next('publish') as mqtt.IPublishPacket
  t.same(subscriptionIds(q), [10])
})

t.test('a subscription without an identifier adds none; a message matching only it carries none', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5)
  await rawSubscribe(sub, [{ topic: 'n/#', qos: 0 }], { subscriptionIdentifier: 3 })
  await rawSubscribe(sub, [{ topic: 'n/x', qos: 0 }])
  await rawSubscribe(sub, [{ topic: 'm/x', qos: 0 }])
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('n/x', 'n')
  await pub.publishAsync('m/x', 'm')
  const a = await sub.next('publish') as mqtt.IPublishPacket
  const b = await sub.next('publish') as mqtt.IPublishPacket
  t.same(subscriptionIds(a), [3])
  t.same(subscriptionIds(b), [])
})

t.test('[MQTT-3.3.4-6] a PUBLISH from a client carrying a Subscription Identifier is a Protocol Error', async (t) => {
  const server = await startTestServer(t)
  const c = await rawClient(t, tcpPort(server), 5)
  rawPublish(c, 'x/y', 'z', { qos: 1, properties: { subscriptionIdentifier: 4 } })
  const d = await c.next('disconnect') as mqtt.IDisconnectPacket
  t.equal(d.reasonCode, ReasonCode.ProtocolError, 'DISCONNECT 0x82')
  await c.waitClose()
})

t.test('subscriptionIdentifierAvailable: false', async (t) => {
  const server = await startTestServer(t, { subscriptionIdentifierAvailable: false })
  const { client, connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.properties?.subscriptionIdentifiersAvailable, false, 'spec 3.2.2.3.12: CONNACK states Subscription Identifiers Available 0')
  t.same(await rawSubscribe(client, [{ topic: 'si/x', qos: 1 }], { subscriptionIdentifier: 5 }), [ReasonCode.SubscriptionIdentifiersNotSupported], 'spec 3.9.3: SUBACK 0xA1')
  t.same(await rawSubscribe(client, [{ topic: 'si/y', qos: 1 }]), [1], 'a SUBSCRIBE without identifier is granted')
  t.notOk(client.closed)
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('si/x', 'refused', { qos: 1 })
  await pub.publishAsync('si/y', 'granted', { qos: 1 })
  const p = await client.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'granted', 'only the granted subscription delivers')
  t.same(subscriptionIds(p), [])
})

t.test('wildcardSubscriptionAvailable: false', async (t) => {
  const server = await startTestServer(t, { wildcardSubscriptionAvailable: false })
  const { client, connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.properties?.wildcardSubscriptionAvailable, false, 'spec 3.2.2.3.11: CONNACK states Wildcard Subscription Available 0')
  const codes = await rawSubscribe(client, [{ topic: 'w/#', qos: 1 }, { topic: 'w/plain', qos: 1 }, { topic: 'w/+/x', qos: 0 }])
  t.same(codes, [ReasonCode.WildcardSubscriptionsNotSupported, 1, ReasonCode.WildcardSubscriptionsNotSupported], '[MQTT-3.9.3-1] spec 3.9.3: SUBACK 0xA2 for each wildcard filter, the plain filter granted, in order')
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('w/plain', 'plain', { qos: 1 })
  const p = await client.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'plain')
  client.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await expectNone(client, 'publish', 150)
})

for (const order of ['wildcard first', 'exact first'] as const) {
  t.test(`[MQTT-3.3.4-2] overlapping a/# at QoS 0 and a/b at QoS 1 (${order}): a QoS 1 message arrives once, at QoS 1`, async (t) => {
    const server = await startTestServer(t)
    const sub = await rawClient(t, tcpPort(server), 5)
    const subs = [{ topic: 'a/#', qos: 0 as const }, { topic: 'a/b', qos: 1 as const }]
    if (order === 'exact first') subs.reverse()
    for (const s of subs) await rawSubscribe(sub, [s])
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync('a/b', 'once', { qos: 1 })
    const p = await sub.next('publish') as mqtt.IPublishPacket
    t.equal(p.qos, 1, 'at the highest granted QoS')
    sub.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
    await sleep(200)
    t.same(takePublishes(sub), [], 'exactly once')
    // a topic only the QoS 0 subscription matches stays at QoS 0
    await pub.publishAsync('a/c', 'zero', { qos: 1 })
    const q = await sub.next('publish') as mqtt.IPublishPacket
    t.equal(q.qos, 0)
  })
}

t.test('[MQTT-3.3.4-2] the same through MQTT.js, for 3.1.1 and 5', async (t) => {
  const server = await startTestServer(t)
  for (const protocolVersion of [4, 5] as const) {
    const sub = await connectClient(t, tcpUrl(server), { protocolVersion })
    const got = collect(sub)
    await sub.subscribeAsync('o/#', { qos: 0 })
    await sub.subscribeAsync('o/b', { qos: 2 })
    const pub = await connectClient(t, tcpUrl(server), { protocolVersion })
    await pub.publishAsync('o/b', `v${protocolVersion}`, { qos: 2 })
    const [m] = await got.next(1)
    t.equal(m?.qos, 2, `v${protocolVersion}: QoS 2`)
    await sleep(150)
    t.equal(got.messages.length, 1, `v${protocolVersion}: once`)
    await sub.endAsync()
  }
})
