/**
 * The PUBACK and the live QoS 1 PUBLISH aedes writes are encoded by culex in
 * one piece (lib/protocol/outbound/encode-broker-write.ts, through
 * lib/aedes-internals.ts `offerWritesToStreams`); a PUBLISH with MQTT 5
 * properties is left to mqtt-packet. Either way the gateway's outbound steps
 * follow: topic aliases, the client's Maximum Packet Size, its Receive
 * Maximum, DUP and packet ids on resend. Checked here over real sockets.
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { rawClient, rawPublish, rawSubscribe, expectNone, text, uniqueId } from '../../helpers/raw5.js'
import type { RawClient } from '../../helpers/raw.js'

async function nextPublish (c: RawClient): Promise<mqtt.IPublishPacket> {
  return await c.next('publish') as mqtt.IPublishPacket
}

function ack (c: RawClient, p: mqtt.IPublishPacket): void {
  c.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
}

for (const version of [4, 5] as const) {
  t.test(`${version === 5 ? 'MQTT 5' : '3.1.1'}: the publisher's PUBACK carries its packet id [MQTT-2.2.1-5], in order [MQTT-4.6.0-2]; the subscriber gets each QoS 1 message with a non-zero packet id of its own [MQTT-2.2.1-4], DUP 0 [MQTT-3.3.1-1]`, async (t) => {
    const server = await startTestServer(t)
    const sub = await rawClient(t, tcpPort(server), version)
    await rawSubscribe(sub, [{ topic: 'ow/plain/#', qos: 1 }])
    const pub = await rawClient(t, tcpPort(server), version)
    const sent = [rawPublish(pub, 'ow/plain/a', 'one', { qos: 1, messageId: 300 }), rawPublish(pub, 'ow/plain/é', Buffer.alloc(200, 1), { qos: 1, messageId: 2 }), rawPublish(pub, 'ow/plain/a', '', { qos: 1, messageId: 65535 })]
    const acks: mqtt.IPubackPacket[] = []
    for (let i = 0; i < 3; i++) acks.push(await pub.next('puback') as mqtt.IPubackPacket)
    t.same(acks.map(a => a.messageId), sent, 'one PUBACK per PUBLISH, in order, with its packet id')
    if (version === 5) t.same(acks.map(a => a.reasonCode), [0, 0, 0], 'success')
    const got: mqtt.IPublishPacket[] = []
    for (let i = 0; i < 3; i++) got.push(await nextPublish(sub))
    t.same(got.map(p => [p.topic, p.payload.length, p.qos, p.dup, p.retain]), [['ow/plain/a', 3, 1, false, false], ['ow/plain/é', 200, 1, false, false], ['ow/plain/a', 0, 1, false, false]])
    const ids = got.map(p => p.messageId as number)
    t.ok(ids.every(id => id >= 1 && id <= 65535) && new Set(ids).size === 3, `distinct non-zero packet ids (${ids.join(', ')})`)
    for (const p of got) ack(sub, p)
  })
}

t.test('[MQTT-3.3.2-17] [MQTT-3.3.4-3] a QoS 1 message with User Properties, to a subscription with an identifier: delivered with both (mqtt-packet\'s way), between plain ones', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5)
  await rawSubscribe(sub, [{ topic: 'ow/props/#', qos: 1 }], { subscriptionIdentifier: 7 })
  const pub = await rawClient(t, tcpPort(server), 5)
  rawPublish(pub, 'ow/props/a', 'before', { qos: 1 })
  rawPublish(pub, 'ow/props/a', 'with', { qos: 1, properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } })
  rawPublish(pub, 'ow/props/a', 'after', { qos: 1 })
  const got: mqtt.IPublishPacket[] = []
  for (let i = 0; i < 3; i++) got.push(await nextPublish(sub))
  t.same(got.map(p => text(p)), ['before', 'with', 'after'], 'in order')
  t.same(got[1]?.properties?.userProperties, { k: 'v' }, 'User Properties kept')
  t.equal(got[1]?.properties?.contentType, 'text/plain', 'Content Type kept')
  t.same(got.map(p => p.properties?.subscriptionIdentifier), [7, 7, 7], 'each with the subscription\'s identifier')
  for (const p of got) ack(sub, p)
})

t.test('[MQTT-3.3.2-11] [MQTT-3.1.2-26] QoS 1 messages get outbound topic aliases: topic and alias first, then the alias alone', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { topicAliasMaximum: 1 } })
  await rawSubscribe(sub, [{ topic: 'ow/alias/#', qos: 1 }])
  const pub = await rawClient(t, tcpPort(server), 5)
  for (const payload of ['a', 'b', 'c']) rawPublish(pub, 'ow/alias/x', payload, { qos: 1 })
  const got: mqtt.IPublishPacket[] = []
  for (let i = 0; i < 3; i++) got.push(await nextPublish(sub))
  t.same(got.map(p => [p.topic, p.properties?.topicAlias, text(p), p.qos]), [['ow/alias/x', 1, 'a', 1], ['', 1, 'b', 1], ['', 1, 'c', 1]])
  for (const p of got) ack(sub, p)
})

t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a QoS 1 message over the client\'s Maximum Packet Size is not sent and does not take its window (Receive Maximum 1); the small ones around it are', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 100, receiveMaximum: 1 } })
  await rawSubscribe(sub, [{ topic: 'ow/size', qos: 1 }])
  const pub = await rawClient(t, tcpPort(server), 5)
  rawPublish(pub, 'ow/size', 'first', { qos: 1 })
  rawPublish(pub, 'ow/size', Buffer.alloc(100, 2), { qos: 1 })
  rawPublish(pub, 'ow/size', 'last', { qos: 1 })
  const first = await nextPublish(sub)
  t.equal(text(first), 'first')
  await expectNone(sub, 'publish', 150)
  ack(sub, first)
  const last = await nextPublish(sub)
  t.equal(text(last), 'last', 'the big one was dropped, the next one took the window')
  ack(sub, last)
  await expectNone(sub, 'publish', 150)
})

t.test('[MQTT-4.4.0-1] [MQTT-3.3.1-1] a QoS 1 message not acknowledged is sent again on reconnect with DUP 1 and the same packet id', async (t) => {
  const server = await startTestServer(t)
  const clientId = uniqueId('ow-resend')
  const sub = await rawClient(t, tcpPort(server), 5, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
  await rawSubscribe(sub, [{ topic: 'ow/resend', qos: 1 }])
  const pub = await rawClient(t, tcpPort(server), 5)
  rawPublish(pub, 'ow/resend', 'again', { qos: 1 })
  const first = await nextPublish(sub)
  t.equal(first.dup, false, 'DUP 0 the first time')
  sub.destroy()
  await sub.waitClose()
  const back = await rawClient(t, tcpPort(server), 5, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
  const again = await nextPublish(back)
  t.same([text(again), again.messageId, again.dup, again.qos], ['again', first.messageId, true, 1], 'same packet id, DUP 1')
  ack(back, again)
})
