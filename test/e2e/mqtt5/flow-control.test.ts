/**
 * Flow control (spec 4.9): culex never has more unacknowledged QoS 1/2
 * PUBLISH packets in flight to a client than the client's Receive Maximum
 * (inflightWindow for 3.1.1), releases the rest in order as acknowledgements
 * arrive, never blocks a publisher on a slow subscriber, and advertises and
 * enforces its own Receive Maximum.
 *
 * Implemented in lib/protocol/outbound/flow-control.ts (OutboundWindow) and
 * lib/protocol/flows/ (publish-out.ts onOutboundPublish, releaseHeld;
 * acks.ts onClientPuback; publish-in.ts onPublish for the inbound window).
 */
import t from 'tap'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { rawClient, rawConnect, rawPublish, rawSubscribe, takePublishes, expectNone, text, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { RawClient } from '../../helpers/raw.js'
import { sleep } from '../../helpers/wait.js'

const TEN = Array.from({ length: 10 }, (_, i) => `m${i}`)

/**
 * The PUBLISH packets a client that acknowledges nothing is sent: the first
 * `window` as they come, then whatever else arrives within 300 ms (a broker
 * that overran the window would have sent it by then).
 */
async function windowFull (c: RawClient, window: number): Promise<mqtt.IPublishPacket[]> {
  const got: mqtt.IPublishPacket[] = []
  while (got.length < window) got.push(await c.next('publish', 5000) as mqtt.IPublishPacket)
  await sleep(300)
  return [...got, ...takePublishes(c)]
}

t.test('[MQTT-3.3.4-9] QoS 1: a client with Receive Maximum 2 that does not acknowledge gets exactly 2 of 10; each PUBACK releases the next, in order', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { receiveMaximum: 2 } })
  t.same(await rawSubscribe(sub, [{ topic: 'fc/q1', qos: 1 }]), [1])
  const pub = await connectClient(t, tcpUrl(server))
  for (const m of TEN) await pub.publishAsync('fc/q1', m, { qos: 1 })
  t.pass('the publisher got all 10 PUBACKs while the subscriber acknowledged nothing')

  const first = await windowFull(sub, 2)
  t.same(first.map(text), ['m0', 'm1'], 'exactly 2 in flight')
  const inFlight = [...first]
  const received = [...first]
  while (inFlight.length > 0) {
    const oldest = inFlight.shift() as mqtt.IPublishPacket
    sub.send({ cmd: 'puback', messageId: oldest.messageId as number, reasonCode: 0 })
    if (received.length < TEN.length) {
      const next = await sub.next('publish') as mqtt.IPublishPacket
      received.push(next)
      inFlight.push(next)
      t.equal(text(next), TEN[received.length - 1], `PUBACK of ${text(oldest)} releases ${text(next)}`)
      await expectNone(sub, 'publish', 40)
    }
  }
  t.same(received.map(text), TEN, 'all 10 arrived, in order')
  t.same(received.map(p => p.qos), TEN.map(() => 1))
})

t.test('[MQTT-3.3.4-9] QoS 2: the window is freed by PUBCOMP, not by PUBREC', async (t) => {
  const server = await startTestServer(t)
  const sub = await rawClient(t, tcpPort(server), 5, { properties: { receiveMaximum: 2 } })
  t.same(await rawSubscribe(sub, [{ topic: 'fc/q2', qos: 2 }]), [2])
  const pub = await connectClient(t, tcpUrl(server))
  for (const m of TEN) await pub.publishAsync('fc/q2', m, { qos: 2 })

  const first = await windowFull(sub, 2)
  t.same(first.map(text), ['m0', 'm1'], 'exactly 2 in flight')
  const inFlight = [...first]
  const received = [...first]
  let checkedPubrec = false
  while (inFlight.length > 0) {
    const oldest = inFlight.shift() as mqtt.IPublishPacket
    const id = oldest.messageId as number
    sub.send({ cmd: 'pubrec', messageId: id, reasonCode: 0 })
    const pubrel = await sub.next('pubrel') as mqtt.IPubrelPacket
    t.equal(pubrel.messageId, id, 'PUBREL for the PUBREC')
    if (!checkedPubrec) {
      await expectNone(sub, 'publish', 200)
      t.pass('PUBREC alone does not free the window')
      checkedPubrec = true
    }
    sub.send({ cmd: 'pubcomp', messageId: id, reasonCode: 0 })
    if (received.length < TEN.length) {
      const next = await sub.next('publish') as mqtt.IPublishPacket
      received.push(next)
      inFlight.push(next)
      t.equal(text(next), TEN[received.length - 1], `PUBCOMP of ${text(oldest)} releases ${text(next)}`)
      await expectNone(sub, 'publish', 40)
    }
  }
  t.same(received.map(text), TEN, 'all 10 arrived, in order')
  t.same(received.map(p => p.qos), TEN.map(() => 2))
})

t.test('a 3.1.1 client gets at most inflightWindow (3) unacknowledged messages; each PUBACK releases the next, in order', async (t) => {
  const server = await startTestServer(t, { inflightWindow: 3 })
  const sub = await rawClient(t, tcpPort(server), 4)
  t.same(await rawSubscribe(sub, [{ topic: 'fc/v4', qos: 1 }]), [1])
  const pub = await connectClient(t, tcpUrl(server), { protocolVersion: 4 })
  for (const m of TEN) await pub.publishAsync('fc/v4', m, { qos: 1 })

  const received = await windowFull(sub, 3)
  t.same(received.map(text), ['m0', 'm1', 'm2'], 'exactly 3 in flight')
  const inFlight = [...received]
  while (inFlight.length > 0) {
    const oldest = inFlight.shift() as mqtt.IPublishPacket
    sub.send({ cmd: 'puback', messageId: oldest.messageId as number })
    if (received.length < TEN.length) {
      const next = await sub.next('publish') as mqtt.IPublishPacket
      received.push(next)
      inFlight.push(next)
      await expectNone(sub, 'publish', 40)
    }
  }
  t.same(received.map(text), TEN, 'all 10 arrived, in order')
})

t.test('a client that never acknowledges never blocks the publisher; at most maxQueuedOutbound messages wait for it, the oldest are dropped', async (t) => {
  const server = await startTestServer(t, { maxQueuedOutbound: 5, slowConsumerTimeout: 500 })
  const port = tcpPort(server)
  const stuckId = uniqueId('stuck')
  const stuck = await rawClient(t, port, 5, { clientId: stuckId, properties: { receiveMaximum: 2 } })
  await rawSubscribe(stuck, [{ topic: 'fc/flood', qos: 1 }])
  const conn = [...server.broker.connections].find(c => c.clientId === stuckId)
  t.ok(conn, 'the gateway of the stuck client')
  let mostQueued = 0
  const sampler = setInterval(() => { mostQueued = Math.max(mostQueued, conn?.queuedOutbound ?? 0) }, 1)
  t.teardown(() => clearInterval(sampler))

  const pub = await connectClient(t, tcpUrl(server))
  const messages = Array.from({ length: 50 }, (_, i) => `f${i}`)
  const started = Date.now()
  await Promise.all(messages.map(m => pub.publishAsync('fc/flood', m, { qos: 1 })))
  const took = Date.now() - started
  t.ok(took < 1000, `all 50 PUBACKs arrived in ${took} ms without the subscriber acknowledging anything`)

  // the broker keeps serving others
  const other = await connectClient(t, tcpUrl(server))
  const got = collect(other)
  await other.subscribeAsync('fc/other', { qos: 1 })
  await pub.publishAsync('fc/other', 'alive', { qos: 1 })
  const [m] = await got.next(1)
  t.equal(m?.payload.toString(), 'alive', 'another subscriber is served meanwhile')

  // and the stuck client, which does not acknowledge for longer than slowConsumerTimeout
  await sleep(1000)
  t.notOk(stuck.closed, 'the stuck client is still connected')
  t.equal(conn?.inflightOutbound, 2, 'its window is full')
  const inFlight = takePublishes(stuck)
  t.same(inFlight.map(text), ['f0', 'f1'], 'it got its Receive Maximum and no more')
  t.ok(mostQueued <= 5, `never more than maxQueuedOutbound waited in the gateway (at most ${mostQueued})`)

  // acknowledging releases what was kept: in order, no duplicates, the newest included
  for (const p of inFlight) stuck.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  // until the newest (f49, which must be kept) or 5 s without a PUBLISH; then
  // anything after it would show up within 300 ms
  const rest: string[] = []
  for (;;) {
    const p = await stuck.next('publish', 5000).catch(() => undefined) as mqtt.IPublishPacket | undefined
    if (p === undefined) break
    rest.push(text(p))
    stuck.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
    if (text(p) === 'f49') break
  }
  await sleep(300)
  rest.push(...takePublishes(stuck).map(text))
  const order = rest.map(r => Number(r.slice(1)))
  t.same(order, [...order].sort((a, b) => a - b), `in publish order: ${rest.join(',')}`)
  t.equal(new Set(order).size, order.length, 'no duplicates')
  t.ok(rest.length <= 5, `no more than maxQueuedOutbound (5) were kept: ${rest.length}`)
  t.equal(rest.at(-1), 'f49', 'the newest message is kept: the oldest were dropped')
})

t.test('a slow subscriber that keeps acknowledging (it never stalls for slowConsumerTimeout) loses nothing, even past maxQueuedOutbound (lib/protocol/flows/client-writer.ts afterBrokerWrite: back-pressure while the client makes progress)', async (t) => {
  const server = await startTestServer(t, { maxQueuedOutbound: 5 })
  const slow = await rawClient(t, tcpPort(server), 5, { properties: { receiveMaximum: 2 } })
  await rawSubscribe(slow, [{ topic: 'fc/slow', qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server))
  const messages = Array.from({ length: 50 }, (_, i) => `s${i}`)
  const received: string[] = []
  const consumer = (async () => {
    while (received.length < messages.length) {
      const p = await slow.next('publish', 5000).catch(() => undefined) as mqtt.IPublishPacket | undefined
      if (p === undefined) return
      received.push(text(p))
      await sleep(10)
      slow.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
    }
  })()
  await Promise.all(messages.map(m => pub.publishAsync('fc/slow', m, { qos: 1 })))
  await consumer
  t.same(received, messages, 'all 50, in order')
})

t.test('spec 3.2.2.3.3: CONNACK advertises the configured Receive Maximum', async (t) => {
  const server = await startTestServer(t, { receiveMaximum: 7 })
  const { connack } = await rawConnect(t, tcpPort(server), 5)
  t.equal(connack.reasonCode, 0)
  t.equal(connack.properties?.receiveMaximum, 7, 'receiveMaximum = config')

  const defaults = await startTestServer(t)
  const { connack: d } = await rawConnect(t, tcpPort(defaults), 5)
  t.equal(d.properties?.receiveMaximum, 100, 'the default, 100')
})

t.test('[MQTT-3.3.4-7] a client with more unacknowledged QoS 1 PUBLISHes than the advertised Receive Maximum gets DISCONNECT 0x93', async (t) => {
  const server = await startTestServer(t, { receiveMaximum: 3 })
  const c = await rawClient(t, tcpPort(server), 5)
  // four in one write: none can have been acknowledged before the fourth was sent
  const bytes: Buffer[] = []
  for (let id = 1; id <= 4; id++) {
    bytes.push(mqtt.generate({ cmd: 'publish', topic: 'fc/in', payload: Buffer.from(String(id)), qos: 1, messageId: id, retain: false, dup: false }, { protocolVersion: 5 }))
  }
  c.sendRaw(Buffer.concat(bytes))
  const d = await c.next('disconnect') as mqtt.IDisconnectPacket
  t.equal(d.reasonCode, ReasonCode.ReceiveMaximumExceeded, 'DISCONNECT 0x93')
  await c.waitClose()

  // within the window, the same burst is fine
  const ok = await rawClient(t, tcpPort(server), 5)
  const burst: Buffer[] = []
  for (let id = 1; id <= 3; id++) {
    burst.push(mqtt.generate({ cmd: 'publish', topic: 'fc/in', payload: Buffer.from(String(id)), qos: 1, messageId: id, retain: false, dup: false }, { protocolVersion: 5 }))
  }
  ok.sendRaw(Buffer.concat(burst))
  for (let i = 0; i < 3; i++) await ok.next('puback')
  t.notOk(ok.closed, 'three in flight is within the window')
  rawPublish(ok, 'fc/in', 'after', { qos: 1 })
  await ok.next('puback')
})

for (const version of [4, 5] as const) {
  for (const when of ['live', 'queued while offline'] as const) {
    t.test(`[MQTT-4.3.3-4] persistent session, v${version === 5 ? '5' : '3.1.1'}, ${when}: PUBRECs for three QoS 2 messages sent at once each get a PUBREL with their own packet id`, async (t) => {
      const server = await startTestServer(t)
      const port = tcpPort(server)
      const connect = { clientId: uniqueId('q2-rel'), clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) }
      let sub = await rawClient(t, port, version, connect)
      await rawSubscribe(sub, [{ topic: 'fc/rel', qos: 2 }])
      const pub = await connectClient(t, tcpUrl(server), { protocolVersion: version })
      if (when === 'queued while offline') {
        sub.send({ cmd: 'disconnect' })
        await sub.waitClose()
      }
      for (const m of ['a', 'b', 'c']) await pub.publishAsync('fc/rel', m, { qos: 2 })
      if (when === 'queued while offline') sub = await rawClient(t, port, version, connect)
      const publishes: mqtt.IPublishPacket[] = []
      while (publishes.length < 3) publishes.push(await sub.next('publish') as mqtt.IPublishPacket)
      const ids = publishes.map(p => p.messageId as number)
      sub.sendRaw(Buffer.concat(ids.map(id => mqtt.generate({ cmd: 'pubrec', messageId: id }, { protocolVersion: version }))))
      const pubrels: number[] = []
      while (pubrels.length < 3) pubrels.push((await sub.next('pubrel') as mqtt.IPubrelPacket).messageId as number)
      t.same([...pubrels].sort(), [...ids].sort(), `one PUBREL per PUBREC (PUBLISH ids ${ids.join(',')}, PUBREL ids ${pubrels.join(',')})`)
      for (const id of ids) sub.send({ cmd: 'pubcomp', messageId: id })
      await expectNone(sub, 'pubrel', 200)
    })
  }
}
