/**
 * MQTT 5 features aedes implements and culex keeps working through its
 * gateway, checked on the wire; the ones that exist in 3.1.1 too are run for
 * both versions.
 *
 * aedes implements session expiry, will delay, retain handling, Retain As
 * Published, No Local, Assigned Client Identifier and property pass-through;
 * culex configures Server Keep Alive (keepaliveLimit), Response Information
 * and the server redirect in lib/broker.ts (createBroker: aedes options) and
 * lib/broker/hooks/connect.ts (preConnect) from lib/config/schema.ts.
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe, takePublishes, expectNone, text, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('sessions', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const url = tcpUrl(server)

  await t.test('[MQTT-3.1.2-23] [MQTT-3.2.2-3] v5: a session is resumed within its Session Expiry Interval with Session Present; [MQTT-4.1.0-2] it is gone after it', async (t) => {
    const clientId = uniqueId('se')
    // the first connection's interval (30 s) holds however slowly the resume
    // comes; the resumed connection's own (1 s) is the one that then runs out
    const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 30 } }
    const first = await rawConnect(t, port, 5, connect)
    t.equal(first.connack.sessionPresent, false, 'a new session')
    await rawSubscribe(first.client, [{ topic: 'kf/se', qos: 1 }])
    first.client.send({ cmd: 'disconnect', reasonCode: 0 })
    await first.client.waitClose()

    const pub = await connectClient(t, url)
    await pub.publishAsync('kf/se', 'while away', { qos: 1 })
    const back = await rawConnect(t, port, 5, { ...connect, properties: { sessionExpiryInterval: 1 } })
    t.equal(back.connack.sessionPresent, true, 'resumed within the interval: Session Present 1')
    const p = await back.client.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'while away', 'with its queued message')
    back.client.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
    back.client.send({ cmd: 'disconnect', reasonCode: 0 })
    await back.client.waitClose()

    await sleep(2000)
    await pub.publishAsync('kf/se', 'after expiry', { qos: 1 })
    const late = await rawConnect(t, port, 5, connect)
    t.equal(late.connack.sessionPresent, false, 'after the interval (1 s, set by the resumed connection): no session')
    await expectNone(late.client, 'publish', 200)
    t.pass('and no queued message nor subscription')
  })

  await t.test('v5: a Session Expiry Interval of 0 (absent) ends the session with the connection', async (t) => {
    const clientId = uniqueId('se0')
    const first = await rawClient(t, port, 5, { clientId, clean: false })
    await rawSubscribe(first, [{ topic: 'kf/se0', qos: 1 }])
    first.send({ cmd: 'disconnect', reasonCode: 0 })
    await first.waitClose()
    const back = await rawConnect(t, port, 5, { clientId, clean: false })
    t.equal(back.connack.sessionPresent, false)
  })

  await t.test('[MQTT-3.2.2-3] [MQTT-3.1.2-4] v3.1.1: a persistent session is resumed with Session Present; Clean Session discards it', async (t) => {
    const clientId = uniqueId('se4')
    const first = await rawClient(t, port, 4, { clientId, clean: false })
    await rawSubscribe(first, [{ topic: 'kf/se4', qos: 1 }])
    first.send({ cmd: 'disconnect' })
    await first.waitClose()
    const pub = await connectClient(t, url, { protocolVersion: 4 })
    await pub.publishAsync('kf/se4', 'queued', { qos: 1 })
    const back = await rawConnect(t, port, 4, { clientId, clean: false })
    t.equal(back.connack.sessionPresent, true)
    const p = await back.client.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'queued')
    back.client.send({ cmd: 'puback', messageId: p.messageId as number })
    back.client.send({ cmd: 'disconnect' })
    await back.client.waitClose()
    const clean = await rawConnect(t, port, 4, { clientId, clean: true })
    t.equal(clean.connack.sessionPresent, false, 'Clean Session 1: Session Present 0')
    clean.client.send({ cmd: 'disconnect' })
    await clean.client.waitClose()
    const after = await rawConnect(t, port, 4, { clientId, clean: false })
    t.equal(after.connack.sessionPresent, false, 'the old session was discarded')
  })
})

t.test('wills', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const watcher = await connectClient(t, url)
  const wills = collect(watcher)
  await watcher.subscribeAsync('kf/will/#', { qos: 1 })

  await t.test('[MQTT-3.1.2-8] v5: the Will is published after the Will Delay Interval', async (t) => {
    const clientId = uniqueId('wd')
    const dying = await connectClient(t, url, {
      clientId,
      properties: { sessionExpiryInterval: 10 },
      will: { topic: 'kf/will/delayed', payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    })
    const lost = Date.now()
    dying.stream.destroy()
    await sleep(500)
    t.equal(wills.messages.filter(m => m.topic === 'kf/will/delayed').length, 0, 'not before the delay')
    const [m] = await wills.next(1, 5000)
    t.equal(m?.topic, 'kf/will/delayed')
    t.ok(Date.now() - lost >= 950, `published after ${Date.now() - lost} ms`)
    wills.messages.length = 0
  })

  await t.test('[MQTT-3.1.3-9] v5: no Will when the client reconnects within the delay', async (t) => {
    const clientId = uniqueId('wd-back')
    const opts = {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 10 },
      will: { topic: 'kf/will/cancelled', payload: Buffer.from('never'), qos: 1 as const, retain: false, properties: { willDelayInterval: 2 } }
    }
    const dying = await connectClient(t, url, opts)
    dying.stream.destroy()
    await sleep(300)
    const back = await connectClient(t, url, { ...opts, will: undefined })
    await sleep(2500)
    t.equal(wills.messages.filter(m => m.topic === 'kf/will/cancelled').length, 0, 'the Will was not sent')
    await back.endAsync()
  })

  for (const [code, published] of [[0x00, false], [0x04, true], [0x80, true], [0x83, true]] as const) {
    const name = published ? 'the Will is published' : 'the Will is discarded'
    await t.test(`[MQTT-3.14.4-3] [MQTT-3.1.2-8] v5: after a client DISCONNECT 0x${code.toString(16).padStart(2, '0')} ${name}`, async (t) => {
      const topic = `kf/will/disconnect-${code}`
      const dying = await connectClient(t, url, {
        clientId: uniqueId('wdc'),
        will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false }
      })
      await dying.endAsync(false, { reasonCode: code })
      // a published Will arrives at once; the absence is checked after the same round trip plus a margin
      await watcher.publishAsync('kf/will/marker', 'after', { qos: 1 })
      await wills.next(1, 5000)
      if (published) {
        await waitFor(() => wills.messages.some(m => m.topic === topic), { what: `the Will on ${topic}` })
        t.equal(wills.messages.filter(m => m.topic === topic).length, 1, 'published once')
      } else {
        await sleep(300)
        t.equal(wills.messages.filter(m => m.topic === topic).length, 0, 'not published')
      }
      wills.messages.length = 0
    })
  }
})

t.test('retained messages and subscription options (v5)', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync('kf/rh/x', 'retained', { qos: 1, retain: true })

  await t.test('[MQTT-3.3.1-9] [MQTT-3.8.4-4] Retain Handling 0: retained messages are sent at every SUBSCRIBE', async (t) => {
    const c = await rawClient(t, port, 5)
    await rawSubscribe(c, [{ topic: 'kf/rh/#', qos: 0, rh: 0 }])
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'retained')
    t.equal(p.retain, true, 'with RETAIN 1')
    await rawSubscribe(c, [{ topic: 'kf/rh/#', qos: 0, rh: 0 }])
    const again = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(again), 'retained', 'again when the subscription is replaced')
  })

  await t.test('[MQTT-3.3.1-10] Retain Handling 1: sent only if the subscription did not exist', async (t) => {
    const c = await rawClient(t, port, 5)
    await rawSubscribe(c, [{ topic: 'kf/rh/#', qos: 0, rh: 1 }])
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'retained', 'a new subscription gets it')
    await rawSubscribe(c, [{ topic: 'kf/rh/#', qos: 0, rh: 1 }])
    await expectNone(c, 'publish', 200)
    t.pass('the same subscription again does not')
  })

  await t.test('[MQTT-3.3.1-11] Retain Handling 2: retained messages are not sent', async (t) => {
    const c = await rawClient(t, port, 5)
    await rawSubscribe(c, [{ topic: 'kf/rh/#', qos: 0, rh: 2 }])
    await expectNone(c, 'publish', 200)
    t.pass('none sent')
  })

  await t.test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published: 0 clears RETAIN on live messages, 1 keeps it', async (t) => {
    const plain = await rawClient(t, port, 5)
    await rawSubscribe(plain, [{ topic: 'kf/rap', qos: 0, rap: false }])
    const asPublished = await rawClient(t, port, 5)
    await rawSubscribe(asPublished, [{ topic: 'kf/rap', qos: 0, rap: true }])
    await pub.publishAsync('kf/rap', 'live', { qos: 0, retain: true })
    const a = await plain.next('publish') as mqtt.IPublishPacket
    const b = await asPublished.next('publish') as mqtt.IPublishPacket
    t.equal(a.retain, false, 'RAP 0: RETAIN 0')
    t.equal(b.retain, true, 'RAP 1: RETAIN 1')
  })

  await t.test('[MQTT-3.8.3-3] No Local: a client does not get its own messages on a No Local subscription', async (t) => {
    const c = await rawClient(t, port, 5)
    await rawSubscribe(c, [{ topic: 'kf/nl', qos: 1, nl: true }])
    rawPublish(c, 'kf/nl', 'own', { qos: 1 })
    await c.next('puback')
    await pub.publishAsync('kf/nl', 'other', { qos: 1 })
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'other', 'only the message of another client')
    c.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
    await sleep(100)
    t.same(takePublishes(c), [])
  })
})

t.test('3.1.1 (spec 3.3.1.3): a live message published with RETAIN arrives with RETAIN 0; at subscribe time with RETAIN 1', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const c = await rawClient(t, port, 4)
  await rawSubscribe(c, [{ topic: 'kf/v4r', qos: 0 }])
  const pub = await connectClient(t, tcpUrl(server), { protocolVersion: 4 })
  await pub.publishAsync('kf/v4r', 'v', { qos: 1, retain: true })
  const live = await c.next('publish') as mqtt.IPublishPacket
  t.equal(live.retain, false)
  const later = await rawClient(t, port, 4)
  await rawSubscribe(later, [{ topic: 'kf/v4r', qos: 0 }])
  const stored = await later.next('publish') as mqtt.IPublishPacket
  t.equal(stored.retain, true)
})

t.test('client identifiers', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)

  await t.test('[MQTT-3.2.2-16] [MQTT-3.1.3-7] v5: an empty Client Identifier gets an Assigned Client Identifier, unique per connection', async (t) => {
    const a = await rawConnect(t, port, 5, { clientId: '' })
    const b = await rawConnect(t, port, 5, { clientId: '' })
    const idA = a.connack.properties?.assignedClientIdentifier
    const idB = b.connack.properties?.assignedClientIdentifier
    t.equal(a.connack.reasonCode, 0)
    t.type(idA, 'string')
    t.ok((idA ?? '').length > 0, `assigned ${idA}`)
    t.not(idA, idB, 'another connection gets another identifier')
    const named = await rawConnect(t, port, 5, { clientId: uniqueId('named') })
    t.equal(named.connack.properties?.assignedClientIdentifier, undefined, 'a client with an identifier is not assigned one')
  })

  await t.test('3.1.1 [MQTT-3.1.3-6] [MQTT-3.1.3-8]: an empty Client Identifier is accepted with Clean Session 1, refused with 0x02 otherwise', async (t) => {
    const ok = await rawConnect(t, port, 4, { clientId: '', clean: true })
    t.equal(ok.connack.returnCode, 0)
    // mqtt-packet will not encode this CONNECT: built by hand
    const c = await RawClient.open(port, 4)
    t.teardown(() => c.destroy())
    const header = Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00]) // MQTT, level 4, Clean Session 0, keep alive 60, empty id
    c.sendRaw(Buffer.concat([Buffer.from([0x10, header.length]), header]))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.returnCode, 2, 'identifier rejected')
    await c.waitClose()
  })
})

t.test('keep alive', async (t) => {
  await t.test('[MQTT-3.2.2-21] keepaliveLimit 10: a v5 client asking for 60 s is told Server Keep Alive 10', async (t) => {
    const server = await startTestServer(t, { keepaliveLimit: 10 })
    const { connack } = await rawConnect(t, tcpPort(server), 5, { keepalive: 60 })
    t.equal(connack.reasonCode, 0)
    t.equal(connack.properties?.serverKeepAlive, 10)
    const within = await rawConnect(t, tcpPort(server), 5, { keepalive: 5 })
    t.equal(within.connack.properties?.serverKeepAlive, undefined, '[MQTT-3.2.2-22] a keep-alive within the limit is kept: no Server Keep Alive')
  })

  await t.test('[MQTT-3.2.2-21] [MQTT-3.1.2-22] the server enforces its Server Keep Alive (1 s) over the 60 s the client asked for: DISCONNECT 0x8D', async (t) => {
    const server = await startTestServer(t, { keepaliveLimit: 1 })
    const { client, connack } = await rawConnect(t, tcpPort(server), 5, { keepalive: 60 })
    t.equal(connack.properties?.serverKeepAlive, 1)
    const d = await client.next('disconnect', 4000) as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.KeepAliveTimeout)
  })

  await t.test('3.1.1 [MQTT-3.2.2-6]: a client asking for more than keepaliveLimit is refused with a 3.1.1 return code (or closed without CONNACK)', async (t) => {
    const server = await startTestServer(t, { keepaliveLimit: 10 })
    const c = await RawClient.open(tcpPort(server), 4)
    t.teardown(() => c.destroy())
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId('ka4'), clean: true, keepalive: 60 })
    await c.waitClose()
    const connack = c.packets.find(p => p.cmd === 'connack') as mqtt.IConnackPacket | undefined
    if (connack) {
      t.ok(connack.returnCode !== undefined && connack.returnCode >= 1 && connack.returnCode <= 5, `CONNACK return code ${connack.returnCode} is one of 3.1.1's (1-5)`)
    } else {
      t.pass('closed without CONNACK')
    }
  })
})

t.test('[MQTT-3.1.2-28] Response Information: returned only to a client that asks for it', async (t) => {
  const server = await startTestServer(t, { responseInformation: 'resp/' })
  const asked = await rawConnect(t, tcpPort(server), 5, { properties: { requestResponseInformation: true } })
  t.equal(asked.connack.properties?.responseInformation, 'resp/')
  const notAsked = await rawConnect(t, tcpPort(server), 5)
  t.equal(notAsked.connack.properties?.responseInformation, undefined)
  const refused = await rawConnect(t, tcpPort(server), 5, { properties: { requestResponseInformation: false } })
  t.equal(refused.connack.properties?.responseInformation, undefined)
})

t.test('spec 4.11 server redirection', async (t) => {
  await t.test('serverReference: CONNACK 0x9C (Use another server) with the Server Reference, then close', async (t) => {
    const server = await startTestServer(t, { serverReference: 'other:1883' })
    const { client, connack } = await rawConnect(t, tcpPort(server), 5)
    t.equal(connack.reasonCode, ReasonCode.UseAnotherServer)
    t.equal(connack.properties?.serverReference, 'other:1883')
    await client.waitClose()
    const v4 = await rawConnect(t, tcpPort(server), 4)
    t.equal(v4.connack.returnCode, 0, 'a 3.1.1 client, which cannot be redirected, is served')
  })

  await t.test('serverMoved: CONNACK 0x9D (Server moved)', async (t) => {
    const server = await startTestServer(t, { serverReference: 'other:1883', serverMoved: true })
    const { client, connack } = await rawConnect(t, tcpPort(server), 5)
    t.equal(connack.reasonCode, ReasonCode.ServerMoved)
    t.equal(connack.properties?.serverReference, 'other:1883')
    await client.waitClose()
  })
})

t.test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] request/response properties reach the subscriber unaltered, User Properties in order', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5)
  await rawSubscribe(sub, [{ topic: 'kf/req', qos: 1 }])
  const pub = await rawClient(t, tcpPort(server), 5)
  const correlationData = Buffer.from([0, 1, 2, 0xff])
  const properties = {
    responseTopic: 'kf/resp/42',
    correlationData,
    userProperties: { zeta: 'last-letter', alpha: ['one', 'two'], mid: 'm' },
    contentType: 'application/json',
    payloadFormatIndicator: true
  }
  rawPublish(pub, 'kf/req', '{"q":1}', { qos: 1, properties })
  await pub.next('puback')
  const p = await sub.next('publish') as mqtt.IPublishPacket
  t.equal(p.properties?.responseTopic, 'kf/resp/42')
  t.same([...(p.properties?.correlationData ?? [])], [...correlationData])
  t.equal(p.properties?.contentType, 'application/json')
  t.equal(p.properties?.payloadFormatIndicator, true)
  t.same(p.properties?.userProperties, properties.userProperties)
  t.same(Object.keys(p.properties?.userProperties ?? {}), ['zeta', 'alpha', 'mid'], 'in the order sent')
})
