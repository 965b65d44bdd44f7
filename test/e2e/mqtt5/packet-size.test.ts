/**
 * Maximum Packet Size both ways (spec 3.1.2.11.4, 3.2.2.3.6): culex
 * advertises its own, and never sends a client more than the client's; a
 * PUBLISH that does not fit is dropped and its flow completed as if it had
 * been delivered, so it neither blocks the client's window nor stays queued.
 *
 * Implemented in lib/protocol/flows/connect.ts (learnConnect,
 * fitConnackToClient) and lib/protocol/flows/publish-out.ts (sendPublish,
 * dropPublish, fitBuf).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe, takePublishes, expectNone, text } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep } from '../../helpers/wait.js'

const BIG = Buffer.alloc(1000, 'b')

/** The size on the wire of a parsed packet: fixed header byte, Remaining Length bytes, the rest. */
function wireSize (p: mqtt.Packet): number {
  const rest = p.length ?? 0
  const lengthBytes = rest < 128 ? 1 : rest < 16384 ? 2 : rest < 2097152 ? 3 : 4
  return 1 + lengthBytes + rest
}

t.test('spec 3.2.2.3.6: CONNACK advertises the configured Maximum Packet Size', async (t) => {
  const server = await startTestServer(t, { maximumPacketSize: 2048 })
  const { connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.properties?.maximumPacketSize, 2048)
})

t.test('[MQTT-3.1.2-24] a client advertising Maximum Packet Size 200 does not get a 1000-byte message, and gets the next small one', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 200 } })
  await rawSubscribe(sub, [{ topic: 'ps/one', qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('ps/one', BIG, { qos: 1 })
  await pub.publishAsync('ps/one', 'small', { qos: 1 })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'small', 'the small message arrives, the big one does not')
  t.ok(wireSize(p) <= 200)
  sub.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await expectNone(sub, 'publish', 200)
})

t.test('[MQTT-3.1.2-25] a dropped message is treated as delivered: it does not consume the window (Receive Maximum 1, 5 big QoS 1 then 1 small)', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 200, receiveMaximum: 1 } })
  await rawSubscribe(sub, [{ topic: 'ps/win', qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server))
  for (let i = 0; i < 5; i++) await pub.publishAsync('ps/win', BIG, { qos: 1 })
  await pub.publishAsync('ps/win', 'small', { qos: 1 })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'small', 'the small one arrives without any acknowledgement from the client')
  sub.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await expectNone(sub, 'publish', 200)
})

t.test('[MQTT-3.1.2-25] the same for QoS 2: dropped messages complete their flow and free the window', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 200, receiveMaximum: 1 } })
  await rawSubscribe(sub, [{ topic: 'ps/q2', qos: 2 }])
  const pub = await connectClient(t, tcpUrl(server))
  for (let i = 0; i < 3; i++) await pub.publishAsync('ps/q2', BIG, { qos: 2 })
  await pub.publishAsync('ps/q2', 'small', { qos: 2 })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(text(p), 'small')
  t.equal(p.qos, 2)
  sub.send({ cmd: 'pubrec', messageId: p.messageId as number, reasonCode: 0 })
  await sub.next('pubrel')
  sub.send({ cmd: 'pubcomp', messageId: p.messageId as number, reasonCode: 0 })
  await expectNone(sub, 'publish', 200)
})

// Messages that wait for a full window are held either by back-pressure on
// aedes (while the client makes progress) or in the gateway's queue (once it
// stalled for slowConsumerTimeout): both paths are checked.
for (const path of ['back-pressure', 'stalled client'] as const) {
  t.test(`[MQTT-3.1.2-25] a too-large message held behind a full window (${path}) is dropped when released, and the messages behind it still follow`, async (t) => {
    const server = await startTestServer(t, path === 'stalled client' ? { slowConsumerTimeout: 100 } : {})
    const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 200, receiveMaximum: 1 } })
    await rawSubscribe(sub, [{ topic: 'ps/held', qos: 1 }])
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync('ps/held', 'first', { qos: 1 })
    const first = await sub.next('publish') as mqtt.IPublishPacket
    t.equal(text(first), 'first')
    // the window (1) is full: these wait
    await pub.publishAsync('ps/held', BIG, { qos: 1 })
    if (path === 'stalled client') await sleep(300)
    for (let i = 0; i < 2; i++) await pub.publishAsync('ps/held', BIG, { qos: 1 })
    await pub.publishAsync('ps/held', 'last', { qos: 1 })
    await sleep(100)
    t.equal(takePublishes(sub).length, 0, 'nothing else while the window is full')
    sub.send({ cmd: 'puback', messageId: first.messageId as number, reasonCode: 0 })
    const next = await sub.next('publish', 5000).catch(() => undefined) as mqtt.IPublishPacket | undefined
    t.equal(next && text(next), 'last', 'after the PUBACK, the big held ones are dropped and the small one behind them arrives')
  })
}

t.test('[MQTT-3.1.2-24] [MQTT-3.3.2-11] adding an outbound Topic Alias never makes a PUBLISH exceed the client Maximum Packet Size', async (t) => {
  const server = await startTestServer(t)
  const max = 100
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: max, topicAliasMaximum: 5 } })
  await rawSubscribe(sub, [{ topic: 'ps/a/#', qos: 0 }])
  const pub = await connectClient(t, tcpUrl(server))
  // QoS 0 to a v5 client, no properties: 1 + 1 (Remaining Length) + 2 + 6 (topic) + 1 (Property Length) + payload
  const payloads = [87, 88, 89].map(n => Buffer.alloc(n, 'x'))
  for (const [i, payload] of payloads.entries()) await pub.publishAsync(`ps/a/${i}`, payload)
  const got: mqtt.IPublishPacket[] = []
  for (let i = 0; i < 3; i++) got.push(await sub.next('publish') as mqtt.IPublishPacket)
  t.same(got.map(p => p.payload.length), [87, 88, 89], 'messages of 98, 99 and 100 bytes fit the limit and are delivered')
  t.same(got.map(wireSize).filter(s => s > max), [], `no PUBLISH on the wire is larger than ${max} bytes`)
})

t.test('[MQTT-3.4.2-2] [MQTT-3.1.2-25] the Reason String is left out of a PUBACK that would not fit the client Maximum Packet Size', async (t) => {
  const server = await startTestServer(t)
  const roomy = await rawClient(t, tcpPort(server), 5)
  rawPublish(roomy, 'ps/bad/+', 'x', { qos: 1 })
  const withReason = await roomy.next('puback') as mqtt.IPubackPacket
  t.equal(withReason.reasonCode, ReasonCode.TopicNameInvalid)
  t.ok(withReason.properties?.reasonString, 'a client without a limit gets the Reason String')

  const tight = await rawClient(t, tcpPort(server), 5, { properties: { maximumPacketSize: 16 } })
  rawPublish(tight, 'ps/bad/+', 'x', { qos: 1 })
  const ack = await tight.next('puback') as mqtt.IPubackPacket
  t.equal(ack.reasonCode, ReasonCode.TopicNameInvalid, 'the refusal still arrives')
  t.notOk(ack.properties?.reasonString, 'without the Reason String')
  t.ok(wireSize(ack) <= 16)
})
