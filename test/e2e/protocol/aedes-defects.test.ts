/**
 * Known defects of aedes 2.0.0-beta.1 that culex neutralises, one test each,
 * run for MQTT 3.1.1 and 5.
 */
import t from 'tap'
import type mqttPacket from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { sleep } from '../../helpers/wait.js'

const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']

for (const version of [4, 5] as const) {
  const v = version === 5 ? 'v5' : 'v3.1.1'

  t.test(`client ids named like Object.prototype members work (GHSA-52qw-whmv-87c5, ${v})`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    for (const clientId of PROTOTYPE_NAMES) {
      const sub = await connectClient(t, url, { protocolVersion: version, clientId })
      const got = collect(sub)
      await sub.subscribeAsync(`proto/${clientId}`, { qos: 1 })
      const pub = await connectClient(t, url, { protocolVersion: version })
      await pub.publishAsync(`proto/${clientId}`, 'hello', { qos: 1 })
      const [m] = await got.next(1)
      t.equal(m?.payload.toString(), 'hello', `${clientId} receives`)
      await sub.endAsync()
      await pub.endAsync()
    }
    // a second connection with the same id takes the session over [MQTT-3.1.4-2]
    const first = await connectClient(t, url, { protocolVersion: version, clientId: 'constructor' })
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
    const second = await connectClient(t, url, { protocolVersion: version, clientId: 'constructor' })
    await closed
    t.ok(second.connected, 'the new connection took over')
    const probe = await connectClient(t, url, { protocolVersion: version })
    t.ok(probe.connected, 'the broker still serves new clients')
  })

  t.test(`topic filters named like Object.prototype members work (${v})`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    const sub = await connectClient(t, url, { protocolVersion: version })
    const got = collect(sub)
    // several filters in one SUBSCRIBE, one of them __proto__
    const filters = Object.fromEntries(['__proto__', 'constructor', 'toString'].map(f => [f, { qos: 1 as const }]))
    t.same(Object.keys(filters), ['__proto__', 'constructor', 'toString'])
    const granted = await sub.subscribeAsync(filters)
    t.same(granted.map(g => g.qos), [1, 1, 1], 'every filter granted QoS 1')
    const pub = await connectClient(t, url, { protocolVersion: version })
    for (const topic of ['__proto__', 'constructor', 'toString']) await pub.publishAsync(topic, topic, { qos: 1 })
    const messages = await got.next(3)
    t.same(messages.map(m => m.topic).sort(), ['__proto__', 'constructor', 'toString'])
    t.same(messages.map(m => m.qos), [1, 1, 1], 'delivered at the granted QoS, not downgraded by an inherited member')
    const unsub = await sub.unsubscribeAsync(['constructor', 'hasOwnProperty'])
    t.ok(unsub, 'UNSUBSCRIBE answered')
  })

  t.test(`[MQTT-3.8.4-8] a message goes at the QoS granted to a matching wildcard subscription (${v})`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    const sub = await connectClient(t, url, { protocolVersion: version })
    const got = collect(sub)
    await sub.subscribeAsync('w/#', { qos: 1 })
    await sub.subscribeAsync('z/+/x', { qos: 0 })
    const pub = await connectClient(t, url, { protocolVersion: version })
    await pub.publishAsync('w/a/b', 'two', { qos: 2 })
    await pub.publishAsync('z/a/x', 'two', { qos: 2 })
    await pub.publishAsync('w/c', 'one', { qos: 1 })
    const messages = await got.next(3)
    const qos = Object.fromEntries(messages.map(m => [m.topic, m.qos]))
    t.equal(qos['w/a/b'], 1, 'QoS 2 message to a QoS 1 wildcard subscription arrives at QoS 1')
    t.equal(qos['z/a/x'], 0, 'QoS 2 message to a QoS 0 wildcard subscription arrives at QoS 0')
    t.equal(qos['w/c'], 1)
  })

  t.test(`inbound QoS 2 state is bounded by the Receive Maximum (spec 4.9, GHSA-5jvp-3p2v-5qgf, ${v})`, async (t) => {
    const server = await startTestServer(t, { receiveMaximum: 5 })
    const port = tcpPort(server)
    const c = await RawClient.connect(port, version)
    for (let id = 1; id <= 5; id++) {
      c.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from(String(id)), qos: 2, messageId: id, retain: false, dup: false })
      await c.next('pubrec')
    }
    // a retransmission of an id in flight is not a new message
    c.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from('1'), qos: 2, messageId: 1, retain: false, dup: true })
    await c.next('pubrec')
    c.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from('6'), qos: 2, messageId: 6, retain: false, dup: false })
    if (version === 5) {
      const d = await c.next('disconnect') as mqttPacket.IDisconnectPacket
      t.equal(d.reasonCode, ReasonCode.ReceiveMaximumExceeded, '[MQTT-3.3.4-7] DISCONNECT 0x93')
    }
    await c.waitClose()
    t.pass('the client that exceeded the window was disconnected')

    // completing flows frees the window
    const ok = await RawClient.connect(port, version)
    for (let round = 0; round < 3; round++) {
      for (let id = 1; id <= 5; id++) {
        ok.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
        await ok.next('pubrec')
        ok.send({ cmd: 'pubrel', messageId: id })
        await ok.next('pubcomp')
      }
    }
    t.notOk(ok.closed, 'a client that completes its QoS 2 flows is never cut off')
  })

  t.test(`inbound QoS 2 state is wiped with a clean session (GHSA-p8r9-qf8w-p73r, ${v})`, async (t) => {
    const server = await startTestServer(t)
    const port = tcpPort(server)
    const sub = await connectClient(t, tcpUrl(server), { protocolVersion: version })
    const got = collect(sub)
    await sub.subscribeAsync('wipe', { qos: 2 })
    const first = await RawClient.connect(port, version, { clientId: 'wiper', clean: true })
    first.send({ cmd: 'publish', topic: 'wipe', payload: Buffer.from('first'), qos: 2, messageId: 7, retain: false, dup: false })
    await first.next('pubrec')
    first.destroy()
    await sleep(50)
    const second = await RawClient.connect(port, version, { clientId: 'wiper', clean: true })
    second.send({ cmd: 'publish', topic: 'wipe', payload: Buffer.from('second'), qos: 2, messageId: 7, retain: false, dup: false })
    await second.next('pubrec')
    second.send({ cmd: 'pubrel', messageId: 7 })
    await second.next('pubcomp')
    const messages = await got.next(2)
    t.same(messages.map(m => m.payload.toString()), ['first', 'second'], 'the same packet id in a new clean session is a new message')
  })
}

t.test('a will is delivered without its Will Delay Interval property (aedes #1098)', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const watcher = await connectClient(t, url, { protocolVersion: 5 })
  const got = collect(watcher)
  await watcher.subscribeAsync('wills/#', { qos: 1 })
  const dying = await connectClient(t, url, {
    protocolVersion: 5,
    clientId: 'dying',
    properties: { sessionExpiryInterval: 10 },
    will: { topic: 'wills/dying', payload: Buffer.from('gone'), qos: 1, retain: true, properties: { willDelayInterval: 1, userProperties: { why: 'test' }, contentType: 'text/plain' } }
  })
  dying.stream.destroy()
  const [will] = await got.next(1, 5000)
  t.equal(will?.payload.toString(), 'gone')
  t.equal(will?.properties?.contentType, 'text/plain', 'other will properties are kept')
  t.same(will?.properties?.userProperties, { why: 'test' })
  t.notOk(will?.properties && 'willDelayInterval' in will.properties, 'no willDelayInterval on the delivered PUBLISH')
  const late = await connectClient(t, url, { protocolVersion: 5 })
  const lateGot = collect(late)
  await late.subscribeAsync('wills/dying', { qos: 1 })
  const [retained] = await lateGot.next(1)
  t.equal(retained?.retain, true)
  t.notOk(retained?.properties && 'willDelayInterval' in retained.properties, 'no willDelayInterval on the retained copy')
})
