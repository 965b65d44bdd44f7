/**
 * MQTT 5 reason codes culex answers with (spec 2.4, 3.4.2.1, 3.5.2.1,
 * 3.6.2.1, 3.7.2.1, 3.9.3, 3.14.2.1), checked on the wire with a raw client.
 *
 * Implemented in lib/protocol/flows/ (acks.ts onOutboundAck for 0x10,
 * sendAck, onClientPubrel/onClientPubrec for 0x92; publish-in.ts
 * refusePublish, onPublish for 0x91; subscribe.ts onSubscribe;
 * disconnect.ts classifyBrokerError for 0x8D and 0x81),
 * lib/protocol/inbound/publish.ts (0x90, 0x99),
 * lib/broker/hooks/publish.ts (authorizePublish for $SYS).
 */
import t from 'tap'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawPublish, rawSubscribe, text, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep } from '../../helpers/wait.js'

type Ack = mqtt.IPubackPacket | mqtt.IPubrecPacket | mqtt.IPubrelPacket | mqtt.IPubcompPacket

t.test('reason codes', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const url = tcpUrl(server)

  await t.test('spec 3.4.2.1: PUBACK 0x10 (No matching subscribers) when nothing matches, 0x00 when a subscription does', async (t) => {
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'rc/none/1', 'x', { qos: 1 })
    t.equal((await c.next('puback') as Ack).reasonCode, ReasonCode.NoMatchingSubscribers, 'no subscriber: 0x10')
    const sub = await connectClient(t, url)
    await sub.subscribeAsync('rc/some/+', { qos: 1 })
    rawPublish(c, 'rc/some/1', 'x', { qos: 1 })
    t.equal((await c.next('puback') as Ack).reasonCode ?? 0, 0, 'a subscriber: 0x00')
  })

  await t.test('spec 3.5.2.1: PUBREC 0x10 when nothing matches, 0x00 when a subscription does', async (t) => {
    const c = await rawClient(t, port, 5)
    const id = rawPublish(c, 'rc/none/2', 'x', { qos: 2 }) as number
    t.equal((await c.next('pubrec') as Ack).reasonCode, ReasonCode.NoMatchingSubscribers, 'no subscriber: 0x10')
    c.send({ cmd: 'pubrel', messageId: id, reasonCode: 0 })
    t.equal((await c.next('pubcomp') as Ack).reasonCode ?? 0, 0, 'the QoS 2 flow completes')
    const sub = await connectClient(t, url)
    await sub.subscribeAsync('rc/some2', { qos: 2 })
    const id2 = rawPublish(c, 'rc/some2', 'x', { qos: 2 }) as number
    t.equal((await c.next('pubrec') as Ack).reasonCode ?? 0, 0, 'a subscriber: 0x00')
    c.send({ cmd: 'pubrel', messageId: id2, reasonCode: 0 })
    await c.next('pubcomp')
  })

  await t.test('spec 3.4.2.1: the subscription of an offline persistent session counts as a match (0x00)', async (t) => {
    const clientId = uniqueId('rc-offline')
    const off = await rawClient(t, port, 5, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
    await rawSubscribe(off, [{ topic: 'rc/offline', qos: 1 }])
    off.send({ cmd: 'disconnect', reasonCode: 0 })
    await off.waitClose()
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'rc/offline', 'x', { qos: 1 })
    t.equal((await c.next('puback') as Ack).reasonCode ?? 0, 0)
  })

  await t.test('[MQTT-4.7.2-1] spec 4.7.2: publishing to $SYS/x is refused with 0x87 (Not authorized)', async (t) => {
    const c = await rawClient(t, port, 5)
    rawPublish(c, '$SYS/x', 'x', { qos: 1 })
    t.equal((await c.next('puback') as Ack).reasonCode, ReasonCode.NotAuthorized, 'PUBACK 0x87')
    const id = rawPublish(c, '$SYS/y', 'x', { qos: 2 }) as number
    t.equal((await c.next('pubrec') as Ack).reasonCode, ReasonCode.NotAuthorized, 'PUBREC 0x87')
    t.notOk(c.closed, 'the connection stays')
    // a failed PUBREC ends the flow [MQTT-4.3.3-9]: the id is free again
    rawPublish(c, 'rc/after', 'x', { qos: 1, messageId: id })
    t.ok((await c.next('puback') as Ack).reasonCode !== undefined)
  })

  await t.test('[MQTT-3.3.2-2] a wildcard in a Topic Name: QoS 1 gets PUBACK 0x90; QoS 0 is dropped and the connection stays', async (t) => {
    const watcher = await connectClient(t, url)
    const got = collect(watcher)
    await watcher.subscribeAsync('#')
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'rc/+/x', 'x', { qos: 1 })
    t.equal((await c.next('puback') as Ack).reasonCode, ReasonCode.TopicNameInvalid, 'PUBACK 0x90')
    rawPublish(c, 'rc/#', 'x', { qos: 0 })
    c.send({ cmd: 'pingreq' })
    await c.next('pingresp')
    t.notOk(c.closed, 'still connected after the QoS 0 one')
    await sleep(100)
    t.same(got.messages.map(m => m.topic).filter(tp => tp.startsWith('rc/')), [], 'neither was published')
  })

  await t.test('spec 3.4.2.1: a QoS 1 PUBLISH reusing the id of an unfinished QoS 2 flow gets PUBACK 0x91 (Packet Identifier in use)', async (t) => {
    const sub = await connectClient(t, url)
    const got = collect(sub)
    await sub.subscribeAsync('rc/inuse', { qos: 2 })
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'rc/inuse', 'two', { qos: 2, messageId: 77 })
    await c.next('pubrec')
    rawPublish(c, 'rc/inuse', 'one', { qos: 1, messageId: 77 })
    t.equal((await c.next('puback') as Ack).reasonCode, ReasonCode.PacketIdentifierInUse, 'PUBACK 0x91')
    c.send({ cmd: 'pubrel', messageId: 77, reasonCode: 0 })
    t.equal((await c.next('pubcomp') as Ack).reasonCode ?? 0, 0, 'the QoS 2 flow still completes')
    await sleep(100)
    t.same(got.messages.map(m => m.payload.toString()), ['two'], 'only the QoS 2 message was published')
  })

  await t.test('spec 3.3.2.3.2: Payload Format Indicator 1 with invalid UTF-8 gets 0x99; valid UTF-8 passes with the indicator unaltered [MQTT-3.3.2-4]', async (t) => {
    const sub = await connectClient(t, url)
    const got = collect(sub)
    await sub.subscribeAsync('rc/pfi', { qos: 1 })
    const c = await rawClient(t, port, 5)
    rawPublish(c, 'rc/pfi', Buffer.from([0x68, 0xc3, 0x28, 0xff]), { qos: 1, properties: { payloadFormatIndicator: true } })
    t.equal((await c.next('puback') as Ack).reasonCode, ReasonCode.PayloadFormatInvalid, 'PUBACK 0x99')
    rawPublish(c, 'rc/pfi', Buffer.from([0xed, 0xa0, 0x80]), { qos: 2, properties: { payloadFormatIndicator: true } })
    t.equal((await c.next('pubrec') as Ack).reasonCode, ReasonCode.PayloadFormatInvalid, 'PUBREC 0x99 (a UTF-16 surrogate is not UTF-8 [MQTT-1.5.4-1])')
    rawPublish(c, 'rc/pfi', 'héllo ✓', { qos: 1, properties: { payloadFormatIndicator: true } })
    t.equal((await c.next('puback') as Ack).reasonCode ?? 0, 0, 'valid UTF-8 is accepted')
    const [m] = await got.next(1)
    t.equal(m?.payload.toString(), 'héllo ✓')
    t.equal(m?.properties?.payloadFormatIndicator, true, 'the indicator is forwarded unaltered')
    t.notOk(c.closed)
  })

  await t.test('spec 3.7.2.1: PUBREL for an unknown packet id gets PUBCOMP 0x92', async (t) => {
    const c = await rawClient(t, port, 5)
    c.send({ cmd: 'pubrel', messageId: 4242, reasonCode: 0 })
    const comp = await c.next('pubcomp') as Ack
    t.equal(comp.messageId, 4242)
    t.equal(comp.reasonCode, ReasonCode.PacketIdentifierNotFound, 'PUBCOMP 0x92')
  })

  await t.test('spec 3.6.2.1: PUBREC for an unknown packet id gets PUBREL 0x92', async (t) => {
    const c = await rawClient(t, port, 5)
    c.send({ cmd: 'pubrec', messageId: 4343, reasonCode: 0 })
    const rel = await c.next('pubrel') as Ack
    t.equal(rel.messageId, 4343)
    t.equal(rel.reasonCode, ReasonCode.PacketIdentifierNotFound, 'PUBREL 0x92')
  })

  await t.test('[MQTT-4.7.1-1] [MQTT-3.9.3-1] SUBACK [0x8F, granted] for [bad/#/x, good]', async (t) => {
    const c = await rawClient(t, port, 5)
    t.same(await rawSubscribe(c, [{ topic: 'bad/#/x', qos: 1 }, { topic: 'good', qos: 1 }]), [ReasonCode.TopicFilterInvalid, 1])
    t.notOk(c.closed)
    const pub = await connectClient(t, url)
    await pub.publishAsync('good', 'ok', { qos: 1 })
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'ok', 'the good filter works')
  })

  await t.test('[MQTT-3.1.2-22] spec 3.14.2.1: a client silent for 1.5 x its Keep Alive (1 s) gets DISCONNECT 0x8D', async (t) => {
    const c = await rawClient(t, port, 5, { keepalive: 1 })
    const started = Date.now()
    const d = await c.next('disconnect', 4000) as mqtt.IDisconnectPacket
    const waited = Date.now() - started
    t.equal(d.reasonCode, ReasonCode.KeepAliveTimeout, 'DISCONNECT 0x8D')
    t.ok(waited >= 1000 && waited < 3500, `after ${waited} ms`)
    await c.waitClose()
  })

  await t.test('spec 2.2.2.2, 4.13: a PUBLISH with an unknown property identifier is a Malformed Packet: DISCONNECT 0x81', async (t) => {
    const c = await rawClient(t, port, 5)
    const bytes = mqtt.generate({ cmd: 'publish', topic: 'rc/m', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false, properties: { payloadFormatIndicator: true } }, { protocolVersion: 5 })
    // fixed header (2) + topic (2 + 4) + packet id (2) + Property Length (1) = the property identifier
    const at = 2 + 2 + 4 + 2 + 1
    if (bytes[at] !== 0x01) throw new Error('unexpected PUBLISH layout')
    bytes[at] = 0x7f
    c.sendRaw(bytes)
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.MalformedPacket, 'DISCONNECT 0x81')
    await c.waitClose()
  })

  await t.test('[MQTT-3.1.2-29] Request Problem Information 0: refusals come without a Reason String; 1 (the default): with one', async (t) => {
    const quiet = await rawClient(t, port, 5, { properties: { requestProblemInformation: false } })
    rawPublish(quiet, 'rc/+', 'x', { qos: 1 })
    const a = await quiet.next('puback') as Ack
    t.equal(a.reasonCode, ReasonCode.TopicNameInvalid)
    t.notOk(a.properties?.reasonString, 'PUBACK 0x90 without Reason String')
    t.notOk(a.properties?.userProperties, 'nor User Properties')
    quiet.send({ cmd: 'pubrel', messageId: 999, reasonCode: 0 })
    const comp = await quiet.next('pubcomp') as Ack
    t.equal(comp.reasonCode, ReasonCode.PacketIdentifierNotFound)
    t.notOk(comp.properties?.reasonString, 'PUBCOMP 0x92 without Reason String')

    const chatty = await rawClient(t, port, 5, { properties: { requestProblemInformation: true } })
    rawPublish(chatty, 'rc/+', 'x', { qos: 1 })
    const b = await chatty.next('puback') as Ack
    t.equal(b.reasonCode, ReasonCode.TopicNameInvalid)
    t.type(b.properties?.reasonString, 'string', 'PUBACK 0x90 with a Reason String')
  })
})

t.test('validatePayloadFormat: false lets a Payload Format Indicator 1 with invalid UTF-8 through', async (t) => {
  const server = await startTestServer(t, { validatePayloadFormat: false })
  const sub = await connectClient(t, tcpUrl(server))
  const got = collect(sub)
  await sub.subscribeAsync('rc/pfi', { qos: 1 })
  const c = await rawClient(t, tcpPort(server), 5)
  const bad = Buffer.from([0x68, 0xc3, 0x28, 0xff])
  rawPublish(c, 'rc/pfi', bad, { qos: 1, properties: { payloadFormatIndicator: true } })
  t.equal((await c.next('puback') as Ack).reasonCode ?? 0, 0, 'PUBACK 0x00')
  const [m] = await got.next(1)
  t.same([...(m?.payload ?? [])], [...bad], 'delivered byte for byte')
})
