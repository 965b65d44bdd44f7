/**
 * Message Expiry Interval (spec 3.3.2.3.3): a message that waited past its
 * interval is not delivered [MQTT-3.3.2-5]; one delivered late carries the
 * interval minus the wait [MQTT-3.3.2-6], whether it waited in an offline
 * session's queue or in the client's flow-control window.
 *
 * Implemented in lib/protocol/delivery.ts (forwardCorrections) and
 * lib/protocol/flows/publish-out.ts (sendPublish, ageHeld).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawSubscribe, takePublishes, text, uniqueId } from '../../helpers/raw5.js'
import { sleep } from '../../helpers/wait.js'

t.test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] queued for an offline persistent session: expiry 1 s is gone after 2 s, expiry 100 s arrives reduced by the wait', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const clientId = uniqueId('expiry-offline')
  const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
  const sub = await rawClient(t, port, 5, connect)
  await rawSubscribe(sub, [{ topic: 'me/q/#', qos: 1 }])
  sub.send({ cmd: 'disconnect', reasonCode: 0 })
  await sub.waitClose()

  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('me/q/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync('me/q/long', 'long', { qos: 1, properties: { messageExpiryInterval: 100 } })
  await pub.publishAsync('me/q/none', 'none', { qos: 1 })
  await sleep(2100)

  const { client: back, connack } = await rawConnect(t, port, 5, connect)
  t.equal(connack.sessionPresent, true)
  const got: mqtt.IPublishPacket[] = []
  for (let i = 0; i < 2; i++) {
    const p = await back.next('publish') as mqtt.IPublishPacket
    got.push(p)
    back.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  }
  await sleep(200)
  got.push(...takePublishes(back))
  t.same(got.map(text), ['long', 'none'], 'the expired message is not delivered')
  const long = got.find(p => text(p) === 'long')
  const interval = long?.properties?.messageExpiryInterval as number
  t.ok(interval < 100 && interval >= 97, `the interval is reduced by the wait: ${interval}`)
  t.equal(got.find(p => text(p) === 'none')?.properties?.messageExpiryInterval, undefined, 'a message without expiry gets none')
})

t.test('[MQTT-3.3.2-6] live delivery without a wait keeps the interval', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5)
  await rawSubscribe(sub, [{ topic: 'me/live', qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('me/live', 'x', { qos: 1, properties: { messageExpiryInterval: 30 } })
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(p.properties?.messageExpiryInterval, 30)
})

// Messages that wait for a full window are held either by back-pressure on
// aedes (while the client makes progress) or in the gateway's queue (once it
// stalled for slowConsumerTimeout): both paths must age them.
for (const path of ['back-pressure', 'stalled client'] as const) {
  t.test(`[MQTT-3.3.2-5] [MQTT-3.3.2-6] held in the window (${path}; Receive Maximum 1, first message unacknowledged for over 2 s): one arrives with the interval reduced, one that expired never arrives, the rest still follow`, async (t) => {
    const server = await startTestServer(t, path === 'stalled client' ? { slowConsumerTimeout: 100 } : {})
    const sub = await rawClient(t, tcpPort(server), 5, { properties: { receiveMaximum: 1 } })
    await rawSubscribe(sub, [{ topic: 'me/held', qos: 1 }])
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync('me/held', 'first', { qos: 1 })
    const first = await sub.next('publish') as mqtt.IPublishPacket
    t.equal(text(first), 'first')
    await pub.publishAsync('me/held', 'ten', { qos: 1, properties: { messageExpiryInterval: 10 } })
    if (path === 'stalled client') await sleep(300)
    await pub.publishAsync('me/held', 'two', { qos: 1, properties: { messageExpiryInterval: 2 } })
    await pub.publishAsync('me/held', 'last', { qos: 1 })

    await sleep(2100)
    t.same(takePublishes(sub), [], 'nothing else while the window is full')
    sub.send({ cmd: 'puback', messageId: first.messageId as number, reasonCode: 0 })

    const ten = await sub.next('publish') as mqtt.IPublishPacket
    t.equal(text(ten), 'ten')
    const interval = ten.properties?.messageExpiryInterval as number
    t.ok(interval <= 8 && interval >= 7, `the interval is reduced by the wait: ${interval}`)
    sub.send({ cmd: 'puback', messageId: ten.messageId as number, reasonCode: 0 })

    const next = await sub.next('publish', 5000).catch(() => undefined) as mqtt.IPublishPacket | undefined
    const late = next !== undefined && text(next) === 'two' ? ` (it came after waiting 2.1 s with Message Expiry Interval ${String(next.properties?.messageExpiryInterval)})` : ''
    t.not(next && text(next), 'two', `the message that expired while held is never delivered${late}`)
    t.equal(next && text(next), 'last', 'the message behind the expired one still follows')
  })
}
