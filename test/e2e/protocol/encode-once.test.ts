/**
 * A live QoS 0 message is encoded once for all its subscribers and the frame
 * handed to each subscriber's gateway (lib/protocol/outbound/encode-once.ts,
 * lib/broker/hooks/forward.ts `sendEncodedOnce`, `sealEncoded`, and
 * sendEncoded / sealEncoded / flushEncoded in lib/protocol/flows/fast-paths.ts);
 * culex falls back to aedes'
 * per-subscriber path while a client is congested, before CONNACK or while
 * closing.
 *
 * The shared encoding must still be per protocol version, per retain flag and
 * per properties (Subscription Identifiers, Message Expiry), must still go
 * through each client's own outbound steps (topic aliases, Maximum Packet
 * Size), and must keep the order of delivery. Every check here is on real
 * clients over real sockets; subscribers of different kinds are interleaved
 * in subscription order (aedes' delivery order) so that a frame wrongly
 * shared by two neighbours shows whichever of them comes first.
 */
import t, { type Test } from 'tap'
import type net from 'node:net'
import mqttPacket from 'mqtt-packet'
import type { MqttClient, IClientPublishOptions } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawSubscribe, takePublishes, text, subscriptionIds, describe } from '../../helpers/raw5.js'
import type { RawClient } from '../../helpers/raw.js'
import { sleep } from '../../helpers/wait.js'

const PUBLISH = 3

/**
 * Splits what `socket` receives from now on into whole MQTT packets, as the
 * bytes came on the wire (the fixed header byte carries DUP, QoS and RETAIN).
 */
function wireFrames (socket: net.Socket): Buffer[] {
  const frames: Buffer[] = []
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    pending = pending.length === 0 ? d : Buffer.concat([pending, d])
    for (;;) {
      let length = 0
      let multiplier = 1
      let i = 1
      let complete = false
      while (i < pending.length && i <= 4) {
        const b = pending[i] as number
        length += (b & 0x7f) * multiplier
        multiplier *= 128
        i++
        if ((b & 0x80) === 0) { complete = true; break }
      }
      if (!complete || pending.length < i + length) return
      frames.push(Buffer.from(pending.subarray(0, i + length)))
      pending = pending.subarray(i + length)
    }
  })
  return frames
}

const publishFrames = (frames: Buffer[]): Buffer[] => frames.filter(f => (f[0] as number) >> 4 === PUBLISH)

/** A raw subscriber whose PUBLISH bytes are recorded too. */
async function rawSubscriber (t: Test, port: number, version: 4 | 5, subscription: mqttPacket.ISubscription, connect: Partial<mqttPacket.IConnectPacket> = {}, properties?: mqttPacket.ISubscribePacket['properties']): Promise<{ client: RawClient, frames: Buffer[] }> {
  const client = await rawClient(t, port, version, connect)
  const frames = wireFrames(client.socket)
  const codes = await rawSubscribe(client, [subscription], properties)
  if ((codes[0] as number) >= 0x80) throw new Error(`SUBSCRIBE refused: ${codes[0]}`)
  return { client, frames }
}

/** Waits until `c` received n PUBLISH packets (taken), failing after `ms`. */
async function receive (c: RawClient, n: number, ms = 5000): Promise<mqttPacket.IPublishPacket[]> {
  const out: mqttPacket.IPublishPacket[] = []
  while (out.length < n) out.push(await c.next('publish', ms) as mqttPacket.IPublishPacket)
  return out
}

async function mqttjsSubscriber (t: Test, url: string, protocolVersion: 4 | 5, topic: string, opts: { qos: 0 | 1 | 2, rap?: boolean, properties?: { subscriptionIdentifier?: number } } = { qos: 0 }): Promise<{ client: MqttClient, got: ReturnType<typeof collect> }> {
  const client = await connectClient(t, url, { protocolVersion })
  const got = collect(client)
  const granted = await client.subscribeAsync(topic, opts)
  if ((granted[0]?.qos ?? 0x80) >= 0x80) throw new Error('SUBSCRIBE refused')
  return { client, got }
}

t.test('QoS 0 messages to 20 subscribers of MQTT 5 and 3.1.1 (MQTT.js and raw): each gets each exactly once, in its own protocol version, with the publisher\'s properties (MQTT 5) and DUP 0 [MQTT-3.3.1-2]', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const url = tcpUrl(server)
  const topic = 'eo/fan'
  // interleaved: v5, v4, raw v5, raw v4, ... so every neighbour pair differs in version
  const js5: Array<ReturnType<typeof collect>> = []
  const js4: Array<ReturnType<typeof collect>> = []
  const raw5: Array<{ client: RawClient, frames: Buffer[] }> = []
  const raw4: Array<{ client: RawClient, frames: Buffer[] }> = []
  for (let i = 0; i < 5; i++) {
    js5.push((await mqttjsSubscriber(t, url, 5, topic)).got)
    js4.push((await mqttjsSubscriber(t, url, 4, topic)).got)
    raw5.push(await rawSubscriber(t, port, 5, { topic, qos: 0 }))
    raw4.push(await rawSubscriber(t, port, 4, { topic, qos: 0 }))
  }
  t.equal(js5.length + js4.length + raw5.length + raw4.length, 20)

  const pub = await connectClient(t, url, { protocolVersion: 5 })
  type Props = NonNullable<IClientPublishOptions['properties']>
  const sent: Array<{ payload: string, properties: Props }> = [
    {
      payload: 'first message',
      properties: {
        userProperties: { origin: 'sensor-1', tags: ['a', 'b'] },
        contentType: 'text/plain',
        correlationData: Buffer.from('corr-1'),
        responseTopic: 'eo/reply/1'
      }
    },
    {
      // a second message on the same topic: nothing of the first may be reused
      payload: 'second, longer message',
      properties: {
        userProperties: { origin: 'sensor-2' },
        contentType: 'application/json',
        correlationData: Buffer.from('corr-2')
      }
    },
    // no properties, and a 3-byte Remaining Length (over 16383)
    { payload: 'z'.repeat(20000), properties: {} }
  ]
  for (const m of sent) await pub.publishAsync(topic, m.payload, { qos: 0, properties: m.properties })

  for (const [i, got] of js5.entries()) {
    const messages = await got.next(3)
    t.same(messages.map(m => m.payload.toString()), sent.map(m => m.payload), `MQTT.js v5 #${i}: all three payloads, in order`)
    for (const [k, m] of messages.entries()) {
      const want = sent[k]?.properties
      t.same(m.properties?.userProperties, want?.userProperties, `MQTT.js v5 #${i} message ${k}: the publisher's User Properties`)
      t.equal(m.properties?.contentType, want?.contentType, 'its Content Type')
      t.same(m.properties?.correlationData, want?.correlationData, 'its Correlation Data')
      t.equal(m.properties?.responseTopic, want?.responseTopic, 'its Response Topic')
      t.equal(m.qos, 0)
      t.equal(m.dup, false, '[MQTT-3.3.1-2] DUP 0')
    }
  }
  for (const [i, got] of js4.entries()) {
    const messages = await got.next(3)
    t.same(messages.map(m => m.payload.toString()), sent.map(m => m.payload), `MQTT.js 3.1.1 #${i}: all three payloads exactly (no MQTT 5 properties read as payload)`)
    t.ok(messages.every(m => m.properties === undefined && m.qos === 0 && !m.dup), 'no properties, QoS 0, DUP 0')
  }
  for (const [i, s] of raw5.entries()) {
    const got = await receive(s.client, 3)
    t.same(got.map(text), sent.map(m => m.payload), `raw v5 #${i}: all three payloads`)
    t.same(got.map(p => p.properties?.userProperties), sent.map(m => m.properties.userProperties), 'with the User Properties')
    const frames = publishFrames(s.frames)
    t.equal(frames.length, 3, 'three PUBLISH packets on the wire')
    t.same(frames.map(f => f[0]), [0x30, 0x30, 0x30], '[MQTT-3.3.1-2] first byte 0x30: PUBLISH, DUP 0, QoS 0, RETAIN 0')
    const plain = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(sent[2]?.payload ?? ''), qos: 0, retain: false, dup: false }, { protocolVersion: 5 })
    t.equal(frames[2]?.toString('hex'), plain.toString('hex'), 'the message without properties: exactly the bytes of an MQTT 5 QoS 0 PUBLISH (Property Length 0)')
  }
  for (const [i, s] of raw4.entries()) {
    const got = await receive(s.client, 3)
    t.same(got.map(text), sent.map(m => m.payload), `raw 3.1.1 #${i}: all three payloads`)
    const want = sent.map(m => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(m.payload), qos: 0, retain: false, dup: false }, { protocolVersion: 4 }))
    t.same(publishFrames(s.frames).map(f => f.toString('hex')), want.map(b => b.toString('hex')), 'exactly the bytes of a 3.1.1 QoS 0 PUBLISH, DUP 0')
  }

  // nothing more arrives: each message was delivered once
  await sleep(200)
  t.same([...js5, ...js4].map(g => g.messages.length), new Array(10).fill(3), 'MQTT.js subscribers: exactly 3 messages each')
  t.same([...raw5, ...raw4].map(s => takePublishes(s.client).length), new Array(10).fill(0), 'raw subscribers: nothing beyond the 3')
  t.same([...raw5, ...raw4].map(s => publishFrames(s.frames).length), new Array(10).fill(3), 'raw subscribers: exactly 3 PUBLISH packets on the wire')
})

for (const publisherVersion of [4, 5] as const) {
  t.test(`consecutive messages on one topic without properties (${publisherVersion === 4 ? '3.1.1' : 'MQTT 5'} publisher, one write): every subscriber gets each one's own payload, in order [MQTT-4.6.0-6]`, async (t) => {
    const server = await startTestServer(t)
    const port = tcpPort(server)
    const topic = 'eo/same'
    // the last subscriber of one message and the first of the next speak the same version
    const versions = [5, 4, 5, 4, 4, 5] as const
    const subs: Array<{ client: RawClient, frames: Buffer[] }> = []
    for (const v of versions) subs.push(await rawSubscriber(t, port, v, { topic, qos: 0 }))
    const pub = await rawClient(t, port, publisherVersion)
    // same length payloads, so a reused frame would still parse
    const payloads = Array.from({ length: 50 }, (_, i) => `msg-${String(i).padStart(3, '0')}`)
    pub.sendRaw(Buffer.concat(payloads.map(payload => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, { protocolVersion: publisherVersion }))))
    for (const [i, s] of subs.entries()) {
      const got = await receive(s.client, payloads.length)
      t.same(got.map(text), payloads, `subscriber ${i} (${versions[i] === 5 ? 'v5' : '3.1.1'}): each payload once, in publish order`)
    }
    await sleep(150)
    t.same(subs.map(s => takePublishes(s.client).length), subs.map(() => 0), 'nothing more')
  })
}

t.test('[MQTT-4.6.0-6] a client with a plain and a shared subscription on one topic gets its copies in publish order (the shared copy, sent by aedes, is not overtaken by later encoded ones)', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const topic = 'eo/mixed'
  const sub = await rawClient(t, port, 5)
  await rawSubscribe(sub, [{ topic, qos: 0 }], { subscriptionIdentifier: 1 })
  await rawSubscribe(sub, [{ topic: `$share/g/${topic}`, qos: 0 }], { subscriptionIdentifier: 2 })
  const other = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const pub = await rawClient(t, port, 5)
  const N = 200
  pub.sendRaw(Buffer.concat(Array.from({ length: N }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))))
  const got = await receive(sub, 2 * N)
  const seq = got.map(p => Number(text(p)))
  t.same(got.filter(p => subscriptionIds(p)[0] === 1).map(p => Number(text(p))), Array.from({ length: N }, (_, i) => i), 'the plain subscription: every message once, in order')
  t.same(got.filter(p => subscriptionIds(p)[0] === 2).map(p => Number(text(p))), Array.from({ length: N }, (_, i) => i), 'the shared subscription: every message once, in order')
  const firstInversion = seq.findIndex((n, i) => i > 0 && n < (seq[i - 1] as number))
  t.equal(firstInversion, -1, `no message after a later one (first inversion at ${firstInversion}: ${seq.slice(Math.max(0, firstInversion - 3), firstInversion + 3).join(',')})`)
  const plain = await receive(other.client, N)
  t.same(plain.map(p => Number(text(p))), Array.from({ length: N }, (_, i) => i), 'another subscriber: every message once, in order')
})

t.test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] live delivery of a RETAIN 1 message: RETAIN 1 only where the subscription has Retain As Published, on the wire', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const topic = 'eo/rap'
  // alternating, so a shared frame would carry a neighbour's flag whichever comes first
  const subs: Array<{ rap: boolean, version: 4 | 5, s: { client: RawClient, frames: Buffer[] } }> = []
  for (const rap of [true, false, true, false, false, true]) {
    subs.push({ rap, version: 5, s: await rawSubscriber(t, port, 5, { topic, qos: 0, rap }) })
  }
  subs.push({ rap: false, version: 4, s: await rawSubscriber(t, port, 4, { topic, qos: 0 }) })

  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync(topic, 'retained-live', { qos: 0, retain: true })
  // the next message only once this one arrived everywhere: aedes handles the packets of one
  // read in parallel, a RETAIN 0 message right behind a RETAIN 1 one (waiting for the retained
  // store) overtakes it, and aedes' per-client dedupe (brokerCounter) then drops the retained one
  for (const { s } of subs) await s.client.next('publish').then((p) => { s.client.packets.unshift(p) })
  await pub.publishAsync(topic, 'plain-live', { qos: 0, retain: false })
  for (const { rap, version, s } of subs) {
    const got = await receive(s.client, 2)
    const label = version === 4 ? '3.1.1 (spec 3.3.1.3)' : `RAP ${rap ? 1 : 0}`
    t.same(got.map(text), ['retained-live', 'plain-live'], `${label}: both messages`)
    t.same(got.map(p => p.retain), [rap, false], `${label}: RETAIN ${rap ? 1 : 0} on the retained message, 0 on the other`)
    const firstBytes = publishFrames(s.frames).map(f => f[0])
    t.same(firstBytes, [rap ? 0x31 : 0x30, 0x30], `${label}: fixed header bytes on the wire`)
  }
  // and a retained message still goes out with RETAIN 1 to a new subscription
  const later = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const [stored] = await receive(later.client, 1)
  t.equal(stored?.retain, true, '[MQTT-3.3.1-9] RETAIN 1 at subscribe time')
})

t.test('[MQTT-3.3.4-3] subscribers with and without a Subscription Identifier on one topic: only the ones that set one get it, each its own', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const topic = 'eo/si'
  const subs: Array<{ id: number | undefined, s: { client: RawClient, frames: Buffer[] } }> = []
  for (const id of [7, undefined, 9, undefined, undefined, 300]) {
    subs.push({ id, s: await rawSubscriber(t, port, 5, { topic, qos: 0 }, {}, id === undefined ? undefined : { subscriptionIdentifier: id }) })
  }
  const v4 = await rawSubscriber(t, port, 4, { topic, qos: 0 })

  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync(topic, 'one', { qos: 0, properties: { userProperties: { k: 'v' } } })
  await pub.publishAsync(topic, 'two', { qos: 0 })
  for (const { id, s } of subs) {
    const got = await receive(s.client, 2)
    t.same(got.map(text), ['one', 'two'])
    t.same(got.map(subscriptionIds), [id === undefined ? [] : [id], id === undefined ? [] : [id]], id === undefined ? 'no Subscription Identifier' : `Subscription Identifier ${id} only`)
    t.same(got[0]?.properties?.userProperties, { k: 'v' }, 'the User Property kept either way')
  }
  const got4 = await receive(v4.client, 2)
  t.same(got4.map(text), ['one', 'two'], '3.1.1: the payloads exactly')
})

t.test('[MQTT-3.3.2-6] a QoS 0 message with a Message Expiry Interval: every MQTT 5 subscriber gets the remaining interval, 3.1.1 ones no properties', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const url = tcpUrl(server)
  const topic = 'eo/expiry'
  const raw5: RawClient[] = []
  const raw4: RawClient[] = []
  const js5: Array<ReturnType<typeof collect>> = []
  for (let i = 0; i < 3; i++) {
    raw5.push((await rawSubscriber(t, port, 5, { topic, qos: 0 })).client)
    raw4.push((await rawSubscriber(t, port, 4, { topic, qos: 0 })).client)
    js5.push((await mqttjsSubscriber(t, url, 5, topic)).got)
  }
  // one subscriber with an identifier as well: its copy differs, the others' must not pick it up
  const withId = (await rawSubscriber(t, port, 5, { topic, qos: 0 }, {}, { subscriptionIdentifier: 4 })).client

  const pub = await connectClient(t, url)
  await pub.publishAsync(topic, 'expiring', { qos: 0, properties: { messageExpiryInterval: 30, contentType: 'x/y' } })
  await pub.publishAsync(topic, 'forever', { qos: 0 })

  const check = (label: string, ms: Array<{ payload: string | Buffer, properties?: { messageExpiryInterval?: number, contentType?: string } }>): void => {
    t.same(ms.map(text), ['expiring', 'forever'], `${label}: both messages`)
    const interval = ms[0]?.properties?.messageExpiryInterval
    t.ok(typeof interval === 'number' && interval > 0 && interval <= 30, `${label}: a remaining interval, 0 < ${String(interval)} <= 30`)
    t.equal(ms[0]?.properties?.contentType, 'x/y', `${label}: the other properties kept`)
    t.equal(ms[1]?.properties?.messageExpiryInterval, undefined, `${label}: no interval on the message published without one`)
  }
  for (const [i, c] of raw5.entries()) check(`raw v5 #${i}`, await receive(c, 2))
  for (const [i, g] of js5.entries()) check(`MQTT.js v5 #${i}`, await g.next(2))
  const idGot = await receive(withId, 2)
  check('with identifier', idGot)
  t.same(idGot.map(subscriptionIds), [[4], [4]], 'the identifier on both')
  for (const c of raw5) t.same(c.packets.filter(p => p.cmd === 'publish'), [], 'nothing more')
  for (const [i, c] of raw4.entries()) {
    const got = await receive(c, 2)
    t.same(got.map(text), ['expiring', 'forever'], `raw 3.1.1 #${i}: both payloads exactly`)
  }
})

t.test('[MQTT-4.6.0-6] ordering: 500 messages alternating QoS 0 and QoS 1 on one topic, written at once; per QoS in publish order, each exactly once', async (t) => {
  const N = 500
  // the publisher has more than the default Receive Maximum (100) in flight at once
  const server = await startTestServer(t, { receiveMaximum: 1000 })
  const port = tcpPort(server)
  const url = tcpUrl(server)
  const topic = 'eo/order'
  const atQoS1 = await mqttjsSubscriber(t, url, 5, topic, { qos: 1 })
  const atQoS0 = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const atQoS0v4 = await mqttjsSubscriber(t, url, 4, topic, { qos: 0 })

  const pub = await rawClient(t, port, 5)
  const packets: Buffer[] = []
  for (let i = 0; i < N; i++) {
    const qos = i % 2 === 0 ? 0 : 1
    const p: mqttPacket.IPublishPacket = { cmd: 'publish', topic, payload: Buffer.from(String(i)), qos, retain: false, dup: false }
    if (qos === 1) p.messageId = i
    packets.push(mqttPacket.generate(p, { protocolVersion: 5 }))
  }
  pub.sendRaw(Buffer.concat(packets))

  const expect0 = Array.from({ length: N / 2 }, (_, k) => 2 * k)
  const expect1 = Array.from({ length: N / 2 }, (_, k) => 2 * k + 1)

  const m1 = await atQoS1.got.next(N, 10000)
  const n1 = (qos: number): number[] => m1.filter(m => m.qos === qos).map(m => Number(m.payload.toString()))
  t.same(n1(0), expect0, 'QoS 1 subscription: the QoS 0 messages, all, in publish order')
  t.same(n1(1), expect1, 'QoS 1 subscription: the QoS 1 messages, all, in publish order')

  const m0 = await receive(atQoS0.client, N, 10000)
  const n0 = m0.map(m => Number(text(m)))
  t.ok(m0.every(m => m.qos === 0), 'QoS 0 subscription: everything at QoS 0 [MQTT-3.8.4-8]')
  t.same(n0.filter(n => n % 2 === 0), expect0, 'QoS 0 subscription: the messages published at QoS 0 in order')
  t.same(n0.filter(n => n % 2 === 1), expect1, 'QoS 0 subscription: the messages published at QoS 1 in order')
  t.same(publishFrames(atQoS0.frames).map(f => f[0]).filter(b => b !== 0x30), [], 'every PUBLISH byte 0x30 (DUP 0, QoS 0) [MQTT-3.3.1-2]')

  const m4 = await atQoS0v4.got.next(N, 10000)
  t.same(m4.map(m => Number(m.payload.toString())).filter(n => n % 2 === 0), expect0, '3.1.1 QoS 0 subscription: the QoS 0 messages in order')

  await sleep(200)
  t.equal(atQoS1.got.messages.length, N, 'no duplicates (QoS 1 subscription)')
  t.equal(takePublishes(atQoS0.client).length, 0, 'no duplicates (QoS 0 subscription)')
  t.equal(atQoS0v4.got.messages.length, N, 'no duplicates (3.1.1)')
  let acks = 0
  for (const p of pub.packets) if (p.cmd === 'puback') acks++
  t.equal(acks, N / 2, 'the publisher got a PUBACK for every QoS 1 message')
})

for (const version of [5, 4] as const) {
  t.test(`[MQTT-3.3.4-2] ${version === 5 ? 'MQTT 5' : '3.1.1'}: overlapping subscriptions eo/ov/# at QoS 0 and eo/ov/x at QoS 1: each message once`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    // a plain QoS 0 subscriber before and after, sharing the encoding
    const before = await mqttjsSubscriber(t, url, 5, 'eo/ov/#')
    const client = await connectClient(t, url, { protocolVersion: version })
    const got = collect(client)
    await client.subscribeAsync('eo/ov/#', { qos: 0 })
    await client.subscribeAsync('eo/ov/x', { qos: 1 })
    const after = await mqttjsSubscriber(t, url, 4, 'eo/ov/#')

    const pub = await connectClient(t, url)
    const sent: Array<{ topic: string, qos: 0 | 1, payload: string }> = []
    for (let i = 0; i < 20; i++) {
      sent.push({ topic: i % 3 === 2 ? 'eo/ov/y' : 'eo/ov/x', qos: i % 2 === 0 ? 0 : 1, payload: `m${i}` })
    }
    await Promise.all(sent.map(m => pub.publishAsync(m.topic, m.payload, { qos: m.qos })))
    await got.next(sent.length)
    await before.got.next(sent.length)
    await after.got.next(sent.length)
    await sleep(250)
    const payloads = got.messages.map(m => m.payload.toString())
    t.same([...payloads].sort(), sent.map(m => m.payload).sort(), 'every message exactly once')
    const qosOf = new Map(got.messages.map(m => [m.payload.toString(), m.qos]))
    t.same(sent.map(m => qosOf.get(m.payload)), sent.map(m => (m.topic === 'eo/ov/x' ? m.qos : 0)), 'at the highest QoS of the matching subscriptions')
    t.equal(before.got.messages.length, sent.length, 'the plain subscriber before it: each once')
    t.equal(after.got.messages.length, sent.length, 'the plain subscriber after it: each once')
    const publishedAt0 = got.messages.filter(m => m.qos === 0).map(m => Number(m.payload.toString().slice(1))).filter(i => sent[i]?.qos === 0)
    t.same(publishedAt0, sent.map((m, i) => ({ m, i })).filter(({ m }) => m.qos === 0).map(({ i }) => i), '[MQTT-4.6.0-6] the messages published at QoS 0 in publish order')
  })
}

t.test('[MQTT-3.3.2-11] [MQTT-3.1.2-26] outbound topic aliases apply to the shared encoding for the client that accepts them, and only to it', async (t) => {
  const server = await startTestServer(t) // outboundTopicAliases defaults to true
  const port = tcpPort(server)
  const plainBefore = await rawSubscriber(t, port, 5, { topic: 'eo/ta/#', qos: 0 })
  const aliased = await rawSubscriber(t, port, 5, { topic: 'eo/ta/#', qos: 0 }, { properties: { topicAliasMaximum: 2 } })
  const plainAfter = await rawSubscriber(t, port, 5, { topic: 'eo/ta/#', qos: 0 })
  const v4 = await rawSubscriber(t, port, 4, { topic: 'eo/ta/#', qos: 0 })

  const pub = await connectClient(t, tcpUrl(server))
  const topics = ['eo/ta/a', 'eo/ta/a', 'eo/ta/b', 'eo/ta/a', 'eo/ta/c', 'eo/ta/b', 'eo/ta/c']
  for (const [i, topic] of topics.entries()) await pub.publishAsync(topic, `p${i}`, { qos: 0 })

  const got = await receive(aliased.client, topics.length)
  t.same(got.map(text), topics.map((_, i) => `p${i}`), 'the aliased client: every message, in order')
  t.same(got.map(p => [p.topic, p.properties?.topicAlias]), [
    ['eo/ta/a', 1], // topic and a new alias
    ['', 1], // the alias alone
    ['eo/ta/b', 2],
    ['', 1],
    ['eo/ta/c', undefined], // its maximum, 2, is used up
    ['', 2],
    ['eo/ta/c', undefined]
  ], 'topic + alias first, then the alias alone; never above its Topic Alias Maximum')
  for (const [label, s] of [['before it', plainBefore], ['after it', plainAfter]] as const) {
    const plain = await receive(s.client, topics.length)
    t.same(plain.map(p => [p.topic, p.properties?.topicAlias, text(p)]), topics.map((topic, i) => [topic, undefined, `p${i}`]),
      `[MQTT-3.1.2-27] the v5 subscriber ${label}, with no Topic Alias Maximum: full topics, no alias`)
  }
  const v4got = await receive(v4.client, topics.length)
  t.same(v4got.map(p => [p.topic, text(p)]), topics.map((topic, i) => [topic, `p${i}`]), '3.1.1: full topics')
})

t.test('[MQTT-3.1.2-24] a QoS 0 message larger than one subscriber\'s Maximum Packet Size is not sent to it; the others get it', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const topic = 'eo/size'
  const big = Buffer.alloc(1000, 'b')
  const plainBefore = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const small = await rawSubscriber(t, port, 5, { topic, qos: 0 }, { properties: { maximumPacketSize: 200 } })
  const plainAfter = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const v4 = await rawSubscriber(t, port, 4, { topic, qos: 0 })

  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync(topic, big, { qos: 0 })
  await pub.publishAsync(topic, 'small', { qos: 0 })

  const [only] = await receive(small.client, 1)
  t.equal(only !== undefined && text(only), 'small', 'the client with Maximum Packet Size 200 gets the small message only')
  t.ok(publishFrames(small.frames).every(f => f.length <= 200), 'no PUBLISH over 200 bytes on its wire')
  for (const [label, s] of [['v5 before it', plainBefore], ['v5 after it', plainAfter], ['3.1.1', v4]] as const) {
    const got = await receive(s.client, 2)
    t.same(got.map(p => p.payload.length), [1000, 5], `${label}: the big message and the small one`)
  }
  await sleep(150)
  t.same(takePublishes(small.client).map(describe), [], 'nothing more for the small client')
})

t.test('[MQTT-4.6.0-6] back-pressure: a subscriber that stops reading slows the publisher down; once it reads again it gets every QoS 0 message, in order, once', async (t) => {
  // no shedding during the test: the stalled subscriber keeps back-pressure on
  const server = await startTestServer(t, { slowConsumerTimeout: 60000 })
  const port = tcpPort(server)
  const topic = 'eo/slow'
  const N = 2000
  const SIZE = 8192 // 16 MB in all: far more than the loopback socket buffers hold
  const stalled = await rawSubscriber(t, port, 5, { topic, qos: 0 })
  const reading = await rawSubscriber(t, port, 4, { topic, qos: 0 })
  stalled.client.socket.pause()

  const pub = await rawClient(t, port, 5)
  const packets: Buffer[] = []
  for (let i = 0; i < N; i++) {
    const payload = Buffer.alloc(SIZE, 'x')
    payload.write(String(i).padStart(8, '0'))
    packets.push(mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))
  }
  pub.sendRaw(Buffer.concat(packets))

  // wait until the reading subscriber stops getting more (the stalled one holds the broker back)
  const count = (): number => reading.client.packets.length
  let last = -1
  for (let still = 0; still < 4 && count() < N;) {
    await sleep(100)
    if (count() === last) still++
    else { still = 0; last = count() }
  }
  t.ok(count() < N, `while one subscriber does not read, the publisher is held back: the other got ${count()} of ${N}`)

  stalled.client.socket.resume()
  const seq = (ps: mqttPacket.IPublishPacket[]): number[] => ps.map(p => Number((p.payload as Buffer).subarray(0, 8).toString()))
  const all = Array.from({ length: N }, (_, i) => i)
  const fromStalled = await receive(stalled.client, N, 20000)
  t.same(seq(fromStalled), all, 'the stalled subscriber: every message, in publish order, none lost')
  t.ok(fromStalled.every(p => p.payload.length === SIZE && p.qos === 0 && !p.dup && !p.retain), 'whole, QoS 0, DUP 0')
  const fromReading = await receive(reading.client, N, 20000)
  t.same(seq(fromReading), all, 'the other subscriber: every message, in publish order')
  await sleep(200)
  t.equal(takePublishes(stalled.client).length + takePublishes(reading.client).length, 0, 'no duplicates')
  t.same(publishFrames(stalled.frames).map(f => f[0]).filter(b => b !== 0x30), [], 'every frame on the wire a QoS 0 PUBLISH with DUP 0 [MQTT-3.3.1-2]')
  // the broker is still serving it after the stall
  pub.sendRaw(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('after'), qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))
  const [after] = await receive(stalled.client, 1)
  t.equal(after !== undefined && text(after), 'after')
})
