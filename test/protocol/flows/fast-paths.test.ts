// lib/protocol/flows/fast-paths.ts against a stub host: direct shared
// sends, the resumed session's queue sink, QoS 0 encoded once.
import t from 'tap'
import type { AedesPublishPacket } from 'aedes'
import type { IPublishPacket } from 'mqtt-packet'
import { ackQueued, armQueueSink, disarmQueueSink, isRepeat, publishShared, queueSink, room, sealEncoded, sendEncoded, sendShared } from '../../../lib/protocol/flows/fast-paths.js'
import type { SharedDelivery } from '../../../lib/shared/dispatcher.js'
import { StubHost, publishFrame } from '../../helpers/flow-host.js'

const noAck = (): boolean => false

const delivery = (over: Partial<SharedDelivery> = {}): SharedDelivery => ({ cmd: 'publish', topic: 'g/t', payload: Buffer.from('m'), qos: 1, retain: false, dup: false, ...over } as SharedDelivery)

t.test('room: the window less what is in flight, waiting, or handed to aedes', async (t) => {
  const host = new StubHost()
  t.equal(room(host), 2)
  let done = false
  publishShared(host, delivery(), () => { done = true })
  t.equal(room(host), 1, 'a delivery on aedes\' path counts until aedes wrote it')
  await new Promise(resolve => setImmediate(resolve))
  t.ok(done)
  t.equal(room(host), 2)
  t.equal(host.viaAedes.length, 1)
})

t.test('sendShared: a QoS 1 delivery to a session that keeps nothing goes out directly, its id in `direct`', async (t) => {
  const host = new StubHost()
  const id = sendShared(host, delivery())
  t.equal(id, 1, 'a packet id from aedes\' sequence')
  t.equal(host.stubClient._nextId, 2)
  t.ok(host.direct?.has(1))
  const [sent] = (await host.received()) as IPublishPacket[]
  t.same([sent?.topic, sent?.qos, sent?.messageId], ['g/t', 1, 1])
  t.equal(host.window.inflight.size, 1, 'counted in the window')
})

t.test('sendShared: refused without the read right; [MQTT-3.3.2-5] expired; aedes\' path otherwise', async (t) => {
  const host = new StubHost()
  host.denied.add('g/t')
  t.equal(sendShared(host, delivery()), 'refused')
  host.denied.clear()
  t.equal(sendShared(host, delivery({ messageExpiry: Date.now() - 1 } as Partial<SharedDelivery>)), 'expired')
  t.equal(sendShared(host, delivery({ qos: 2 })), undefined, 'QoS 2')
  host.stubClient.clean = false
  t.equal(sendShared(host, delivery()), undefined, 'a persistent session: aedes stores it')
  t.same(await host.received(), [])
})

t.test('the queue sink is offered once, to a resumed session, until ready', async (t) => {
  const host = new StubHost()
  host.stubClient.clean = false
  host.stubClient.connecting = true
  t.equal(queueSink(host, noAck), undefined, 'not armed')
  armQueueSink(host)
  const sink = queueSink(host, noAck)
  t.ok(sink)
  t.equal(queueSink(host, noAck), undefined, 'offered once')
  armQueueSink(host)
  disarmQueueSink(host)
  t.equal(queueSink(host, noAck), undefined, 'ready (or closed) ends the offer')
  host.resumesSession = false
  armQueueSink(host)
  t.equal(queueSink(host, noAck), undefined, 'a Clean Start has no queue')
})

t.test('[MQTT-3.3.2-6] a queued message: authorized, its expiry reduced, sent; refused ones are not', async (t) => {
  const host = new StubHost()
  host.stubClient.clean = false
  host.stubClient.connecting = true
  armQueueSink(host)
  const sink = queueSink(host, noAck)
  if (sink === undefined) return t.fail('no sink')
  let encodedDuring: boolean | undefined
  host.forward = (packet) => {
    encodedDuring = sendEncoded(host, publishFrame({ topic: 'live', qos: 0 }))
    return packet.topic === 'no' ? null : packet
  }
  const queued = { cmd: 'publish', topic: 'q', payload: Buffer.from('1'), qos: 1, retain: false, dup: false, messageId: 9, messageExpiry: Date.now() + 4500 } as unknown as AedesPublishPacket
  t.equal(sink.send(queued as never), true)
  t.equal(encodedDuring, false, 'live QoS 0 takes aedes\' path while a queued message is checked')
  t.equal(host.sinkPhase, 'none')
  t.equal(sink.send({ ...queued, topic: 'no' } as never), false)
  const got = (await host.received()) as IPublishPacket[]
  t.same(got.map(p => [p.topic, p.messageId, p.properties?.messageExpiryInterval]), [['q', 9, 5]])
  t.equal(sink.room(), 1)
})

t.test('the PUBACK of a message the sink sent is cleared by the store, once; aedes\' path otherwise', async (t) => {
  const host = new StubHost()
  host.stubClient.clean = false
  host.stubClient.connecting = true
  armQueueSink(host)
  const cleared: number[] = []
  const sink = queueSink(host, (id) => { cleared.push(id); return id !== 8 })
  if (sink === undefined) return t.fail('no sink')
  const queued = (messageId: number, topic = 'q'): never => ({ cmd: 'publish', topic, payload: Buffer.from('1'), qos: 1, retain: false, dup: false, messageId } as never)
  host.forward = (packet) => packet.topic === 'no' ? null : packet
  t.equal(sink.send(queued(7)), true)
  t.equal(sink.send(queued(8)), true)
  t.equal(sink.send(queued(9, 'no')), false)
  t.equal(ackQueued(host, 5), false, 'an id the sink did not send: aedes\' path')
  t.equal(ackQueued(host, 9), false, 'a message the sink did not send')
  t.equal(ackQueued(host, 7), true, 'cleared by the store')
  t.equal(ackQueued(host, 7), false, 'only once: a later PUBACK with that id is aedes\'')
  t.equal(ackQueued(host, 8), false, 'the store no longer holds it: aedes\' path')
  t.same(cleared, [7, 8])
  host.ackListeners = 1
  t.equal(sink.send(queued(10)), true)
  t.equal(ackQueued(host, 10), false, 'an \'ack\' listener gets the packet from aedes\' path')
  t.same(cleared, [7, 8])
})

t.test('QoS 0 encoded once: batched to the next setImmediate, behind aedes\' writes (sealEncoded)', async (t) => {
  const host = new StubHost()
  t.equal(sendEncoded(host, publishFrame({ topic: 'a', qos: 0 })), true)
  t.equal(sendEncoded(host, publishFrame({ topic: 'b', qos: 0 })), true)
  sealEncoded(host)
  t.equal(sendEncoded(host, publishFrame({ topic: 'c', qos: 0 })), true, 'a new batch after aedes\' write')
  t.equal(host.writes.length, 0)
  const got = (await host.received()) as IPublishPacket[]
  t.same(got.map(p => p.topic), ['a', 'b', 'c'])
  host.pressure = 'shedding'
  t.equal(sendEncoded(host, publishFrame({ topic: 'd', qos: 0 })), false, 'a client that is behind: aedes\' path')
  host.pressure = 'flowing'
  host.isAccepted = false
  t.equal(sendEncoded(host, publishFrame({ topic: 'd', qos: 0 })), false, 'before CONNACK')
})

t.test('[MQTT-3.3.4-2] one copy per client: the message offered last is a repeat', async (t) => {
  const host = new StubHost()
  t.equal(host.encodeOnce, undefined, 'no state before the first message')
  t.equal(isRepeat(host, 'b1', 1), false)
  t.equal(isRepeat(host, 'b1', 1), true)
  t.equal(isRepeat(host, 'b2', 1), false, 'another broker\'s counter')
  t.equal(isRepeat(host, 'b2', 2), false)
})
