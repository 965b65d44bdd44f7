// lib/protocol/flows/publish-out.ts against a stub host: the steps of a
// PUBLISH to the client (window, expiry, packet size, aliases, drops).
import t from 'tap'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { ageHeld, dropPublish, fitBuf, onOutboundPublish, releaseHeld, sendOwnPublishes, sendOwnQoS0, shedHeld } from '../../../lib/protocol/flows/publish-out.js'
import { OutboundAliases } from '../../../lib/protocol/outbound/topic-alias.js'
import { QoS0Batch } from '../../../lib/protocol/outbound/qos0-batch.js'
import type { Frame } from '../../../lib/protocol/frame.js'
import { decodeBuffer, encode } from '../../../lib/protocol/codec.js'
import { StubHost, publishFrame } from '../../helpers/flow-host.js'

t.test('[MQTT-3.3.4-9] spec 4.9: no more QoS 1/2 in flight than the Receive Maximum; the rest wait, in order', async (t) => {
  const host = new StubHost()
  const out: Buffer[] = []
  for (let id = 1; id <= 4; id++) onOutboundPublish(host, publishFrame({ topic: 't', qos: 1, messageId: id }), out)
  t.equal(out.length, 2, 'two go out (Receive Maximum 2)')
  t.equal(host.window.queued, 2, 'two wait')
  const qos0: Buffer[] = []
  onOutboundPublish(host, publishFrame({ topic: 't', qos: 0 }), qos0)
  t.equal(qos0.length, 0, 'QoS 0 keeps its place behind them')
  host.window.complete(1)
  releaseHeld(host)
  const got = (await host.received()) as IPublishPacket[]
  t.same(got.map(p => p.messageId), [3], 'one released into the place made')
  t.same(host.sent.map(s => s.qos), [1, 1, 1])
})

t.test('a stalled client: past maxQueuedOutbound the oldest waiting are dropped and completed with aedes', async (t) => {
  const host = new StubHost()
  const out: Buffer[] = []
  for (let id = 1; id <= 7; id++) onOutboundPublish(host, publishFrame({ topic: 't', qos: id === 6 ? 2 : 1, messageId: id }), out)
  t.equal(host.window.queued, 5, 'a client that keeps up only waits')
  shedHeld(host)
  t.equal(host.window.queued, 3)
  t.same(host.dropped, ['queue-full', 'queue-full'])
  t.same(host.toAedes, [{ cmd: 'puback', messageId: 3 }, { cmd: 'puback', messageId: 4 }], 'aedes completes them as delivered')
  host.pressure = 'shedding'
  onOutboundPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 8 }), out)
  t.equal(host.window.queued, 3, 'while shedding, each new one pushes out the oldest')
  t.same(host.toAedes.at(-1), { cmd: 'puback', messageId: 5 })
})

t.test('a dropped QoS 2 message: aedes gets PUBREC, its PUBREL is answered for the client', async (t) => {
  const host = new StubHost()
  host.window.admit({ frame: publishFrame({ topic: 't', qos: 2, messageId: 9 }), qos: 2, packetId: 9 })
  dropPublish(host, { frame: publishFrame({ topic: 't', qos: 2, messageId: 9 }), qos: 2, packetId: 9 }, 'expired')
  t.same(host.toAedes, [{ cmd: 'pubrec', messageId: 9 }])
  t.ok(host.droppedQoS2?.has(9))
  t.equal(host.window.inflight.size, 0, 'its place in the window is free')
})

t.test('a dropped shared delivery the gateway sent itself: its group is told, aedes is not', async (t) => {
  const host = new StubHost()
  const acks: number[] = []
  host.ctx.shared = { onAck: (_c, id) => { acks.push(id) } }
  host.direct = new Set([4])
  dropPublish(host, { frame: publishFrame({ topic: 't', qos: 1, messageId: 4 }), qos: 1, packetId: 4 }, 'packet-too-large')
  await Promise.resolve()
  t.same(acks, [4], 'spec 3.1.2.11.4: counted as delivered')
  t.same(host.toAedes, [])
  t.equal(host.direct.size, 0)
})

t.test('[MQTT-3.1.2-24] a PUBLISH over the client\'s Maximum Packet Size is not sent', async (t) => {
  const host = new StubHost()
  host.clientMaximumPacketSize = 20
  const out: Buffer[] = []
  onOutboundPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 1, payload: 'x'.repeat(40) }), out)
  t.equal(out.length, 0)
  t.same(host.dropped, ['packet-too-large'])
  t.same(host.toAedes, [{ cmd: 'puback', messageId: 1 }], 'acts as if delivered')
})

function batchOf (frames: Frame[]): QoS0Batch {
  const batch = new QoS0Batch()
  for (const frame of frames) batch.append(frame.buf)
  return batch
}

t.test('fresh QoS 0 messages of a turn go to the socket as their one buffer, in order, each counted', async (t) => {
  const host = new StubHost()
  // past the first buffer's size: the batch grows and keeps what it held
  const frames = Array.from({ length: 40 }, (_, i) => publishFrame({ topic: `t/${i}`, qos: 0, payload: 'x'.repeat(i * 3) }))
  const batch = batchOf(frames)
  sendOwnQoS0(host, batch, 5)
  const got = (await host.received()) as IPublishPacket[]
  t.equal(host.writes.length, 1, 'one write')
  t.ok(host.writes[0]?.buffer === batch.buf.buffer && host.writes[0].byteOffset === batch.buf.byteOffset, 'the batch\'s own buffer, not a copy')
  t.same(got.map(p => p.topic), frames.map((_, i) => `t/${i}`))
  t.same(host.sent.map(s => s.bytes), frames.map(f => f.buf.length), 'each counted as sent, with its size')
  t.equal(host.writtenAt, 5)
})

t.test('[MQTT-3.1.2-24] a fresh QoS 0 message over the Maximum Packet Size: the batch takes the per-message steps, that one is dropped', async (t) => {
  const host = new StubHost()
  host.clientMaximumPacketSize = 30
  sendOwnQoS0(host, batchOf([publishFrame({ topic: 'a', qos: 0 }), publishFrame({ topic: 'b', qos: 0, payload: 'x'.repeat(40) }), publishFrame({ topic: 'c', qos: 0 })]), 5)
  const got = (await host.received()) as IPublishPacket[]
  t.same(got.map(p => p.topic), ['a', 'c'])
  t.same(host.dropped, ['packet-too-large'])
  t.same(host.sent.map(s => s.qos), [0, 0])
})

t.test('fresh QoS 0 messages behind waiting QoS 1 messages keep their place (the per-message steps)', async (t) => {
  const host = new StubHost()
  const out: Buffer[] = []
  for (let id = 1; id <= 3; id++) onOutboundPublish(host, publishFrame({ topic: 't', qos: 1, messageId: id }), out)
  t.equal(host.window.queued, 1)
  sendOwnQoS0(host, batchOf([publishFrame({ topic: 'z', qos: 0 })]), 0)
  t.equal(host.window.queued, 2, 'held in order, not sent ahead')
})

t.test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] Message Expiry: reduced by the wait, dropped once past it', async (t) => {
  const frame = publishFrame({ topic: 't', qos: 1, messageId: 1, properties: { messageExpiryInterval: 10 } })
  const held = { frame, qos: 1, packetId: 1, heldAt: 0 }
  t.equal(ageHeld(held, 3500), true)
  t.equal((decodeBuffer(held.frame.buf, 5) as IPublishPacket).properties?.messageExpiryInterval, 7)
  t.equal(ageHeld({ frame, qos: 1, packetId: 1, heldAt: 0 }, 10_000), false, 'expired')
  const host = new StubHost()
  host.writtenAt = Date.now() - 11_000
  const out: Buffer[] = []
  onOutboundPublish(host, frame, out)
  t.equal(out.length, 0)
  t.same(host.dropped, ['expired'])
})

t.test('[MQTT-3.3.2-8] [MQTT-3.1.2-26] outbound topic aliases: set, then reused with an empty topic', async (t) => {
  const host = new StubHost()
  host.aliases = new OutboundAliases(2)
  sendOwnPublishes(host, [publishFrame({ topic: 'room/1', qos: 0 }), publishFrame({ topic: 'room/1', qos: 0 })], Date.now())
  const [first, second] = (await host.received()) as IPublishPacket[]
  t.equal(first?.topic, 'room/1')
  t.equal(first?.properties?.topicAlias, 1)
  t.equal(second?.topic, '')
  t.equal(second?.properties?.topicAlias, 1)
  t.equal(host.writes.length, 1, 'one socket write for both')
})

t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a packet the gateway built loses Reason String and User Properties to fit', async (t) => {
  const host = new StubHost()
  const ack = encode({ cmd: 'puback', messageId: 1, reasonCode: 0x87, properties: { reasonString: 'not authorized, at some length' } } as Packet, 5)
  host.clientMaximumPacketSize = 10
  const fitted = fitBuf(host, ack)
  t.ok(fitted.length > 0 && fitted.length <= 10)
  t.equal((decodeBuffer(fitted, 5) as { reasonCode: number }).reasonCode, 0x87)
  host.clientMaximumPacketSize = 3
  t.equal(fitBuf(host, ack).length, 0, 'one that still does not fit is not sent')
  t.same(host.dropped, ['packet-too-large'])
})
