// lib/protocol/flows/acks.ts against a stub host: acknowledgements from the
// client (window, unknown ids) and to it (order, durability, 0x10).
import t from 'tap'
import type { IPubackPacket, Packet } from 'mqtt-packet'
import { expectAck, onClientPuback, onClientPubrec, onClientPubrel, onOutboundAck, onPublishFailed, onPublished, sendOrderedAck, withReasonCode } from '../../../lib/protocol/flows/acks.js'
import { OutboundFlow } from '../../../lib/protocol/outbound/flow-control.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { StubHost, ackFrame, publishFrame } from '../../helpers/flow-host.js'

const codes = (packets: Packet[]): Array<[string, number | undefined, number | undefined]> =>
  packets.map(p => [p.cmd, (p as IPubackPacket).messageId, (p as IPubackPacket).reasonCode])

t.test('spec 4.9: a PUBACK frees a place in the window and the next waiting message goes', async (t) => {
  const host = new StubHost()
  const out: Buffer[] = []
  host.window.limit = 1
  for (const id of [1, 2]) host.window.admit({ frame: publishFrame({ topic: 't', qos: 1, messageId: id }), qos: 1, packetId: id }) || host.window.hold({ frame: publishFrame({ topic: 't', qos: 1, messageId: id }), qos: 1, packetId: id }, false)
  t.equal(out.length, 0)
  t.same(onClientPuback(host, ackFrame('puback', 1)), { kind: 'pass' }, 'aedes completes its flow')
  t.same(codes(await host.received()), [['publish', 2, undefined]])
  t.equal(host.window.flowOf(2), OutboundFlow.QoS1)
})

t.test('spec 3.4-3.7: the wrong acknowledgement for an id in flight is a Protocol Error', async (t) => {
  const host = new StubHost()
  host.window.admit({ frame: publishFrame({ topic: 't', qos: 1, messageId: 5 }), qos: 1, packetId: 5 })
  const verdict = onClientPubrec(host, ackFrame('pubrec', 5))
  t.equal(verdict.kind, 'close')
  t.equal(verdict.kind === 'close' && verdict.reasonCode, ReasonCode.ProtocolError)
})

t.test('a shared delivery the gateway sent itself: its PUBACK ends at the gateway and tells the group', async (t) => {
  const host = new StubHost()
  const acks: Array<[number, number]> = []
  host.ctx.shared = { onAck: (_c, id, code) => { acks.push([id, code]) } }
  host.direct = new Set([7])
  host.window.admit({ frame: publishFrame({ topic: 't', qos: 1, messageId: 7 }), qos: 1, packetId: 7 })
  t.same(onClientPuback(host, ackFrame('puback', 7, 0x10)), { kind: 'drop' })
  t.same(acks, [[7, 0x10]])
})

t.test('spec 3.6.2.1: a PUBREC for an id never sent gets PUBREL 0x92 (MQTT 5); spec 4.3.3: a failed one completes the flow', async (t) => {
  const host = new StubHost()
  t.same(onClientPubrec(host, ackFrame('pubrec', 3)), { kind: 'drop' })
  t.same(codes(await host.received()), [['pubrel', 3, ReasonCode.PacketIdentifierNotFound]])
  host.version = 4
  t.same(onClientPubrec(host, ackFrame('pubrec', 3, undefined, 4)), { kind: 'pass' }, '3.1.1: aedes answers')
  const v5 = new StubHost()
  v5.window.admit({ frame: publishFrame({ topic: 't', qos: 2, messageId: 4 }), qos: 2, packetId: 4 })
  onClientPubrec(v5, ackFrame('pubrec', 4, 0x80))
  t.equal(v5.window.flowOf(4), OutboundFlow.None)
})

t.test('spec 3.7.2.1: a PUBREL for an id with no QoS 2 state anywhere gets PUBCOMP 0x92', async (t) => {
  const host = new StubHost()
  host.inflightIn.set(1, { qos: 2, topic: 't' })
  t.same(onClientPubrel(host, ackFrame('pubrel', 1)), { kind: 'pass' }, 'known on this connection')
  host.incoming = id => id === 2
  const stored = onClientPubrel(host, ackFrame('pubrel', 2))
  t.same(stored.kind === 'defer' && await stored.decision, { kind: 'pass' }, 'known in the store')
  const unknown = onClientPubrel(host, ackFrame('pubrel', 3))
  t.same(unknown.kind === 'defer' && await unknown.decision, { kind: 'drop' })
  t.same(codes(await host.received()), [['pubcomp', 3, ReasonCode.PacketIdentifierNotFound]])
})

t.test('[MQTT-4.6.0-2] [MQTT-4.6.0-3] acknowledgements go in the order of the PUBLISHes, whoever answers', async (t) => {
  const host = new StubHost()
  host.version = 4
  expectAck(host, 1)
  sendOrderedAck(host, 2, { cmd: 'puback', messageId: 2 })
  t.same(await host.received(), [], 'a refusal waits behind the PUBLISH before it')
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('pubrec', 1, undefined, 4), out)
  t.equal(out.length, 2, 'aedes\' answer lets both go')
  t.same(out.map(b => (b[0] as number) >> 4), [5, 4], 'PUBREC 1, then PUBACK 2')
})

t.test('a QoS 1 PUBACK waits until aedes published the message (durability)', async (t) => {
  const host = new StubHost()
  host.inflightIn.set(1, { qos: 1, topic: 't' })
  expectAck(host, 1)
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('puback', 1, 0), out)
  t.equal(out.length, 0, 'written by aedes before the store took it')
  t.equal(host.inflightIn.get(1), undefined, 'the inbound flow is complete')
  onPublished(host, 1)
  t.same(codes(await host.received()), [['puback', 1, 0]])
})

t.test('spec 3.4.2.1: MQTT 5: a message aedes could not publish (a refused store write) gets its PUBACK 0x80, in order', async (t) => {
  const host = new StubHost()
  for (const id of [1, 2]) {
    host.inflightIn.set(id, { qos: 1, topic: 't' })
    expectAck(host, id)
    onOutboundAck(host, ackFrame('puback', id, 0), [])
  }
  t.equal(onPublishFailed(host, 2, ReasonCode.UnspecifiedError, 'out of memory'), true, 'answered')
  t.same(await host.received(), [], 'behind the PUBACK of message 1, still waiting')
  onPublished(host, 1)
  const got = await host.received()
  t.same(codes(got), [['puback', 1, 0], ['puback', 2, ReasonCode.UnspecifiedError]])
  t.equal(onPublishFailed(host, 2, ReasonCode.UnspecifiedError, 'again'), false, 'nothing waits for it any more')
  const v4 = new StubHost()
  v4.version = 4
  v4.inflightIn.set(1, { qos: 1, topic: 't' })
  expectAck(v4, 1)
  onOutboundAck(v4, ackFrame('puback', 1, undefined, 4), [])
  t.equal(onPublishFailed(v4, 1, ReasonCode.UnspecifiedError, 'x'), false, '3.1.1 cannot say it: the caller closes')
})

t.test('published before aedes wrote the PUBACK: it goes at once', async (t) => {
  const host = new StubHost()
  host.inflightIn.set(1, { qos: 1, topic: 't' })
  expectAck(host, 1)
  onPublished(host, 1)
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('puback', 1, 0), out)
  t.equal(out.length, 1)
})

t.test('spec 3.4.2.1: MQTT 5 success becomes 0x10 No matching subscribers', async (t) => {
  const host = new StubHost()
  host.subscribers = () => false
  host.inflightIn.set(1, { qos: 2, topic: 'nobody' })
  expectAck(host, 1)
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('pubrec', 1, 0), out)
  t.equal(out[0]?.[out[0].length - 1], ReasonCode.NoMatchingSubscribers)
  const later = new StubHost()
  later.subscribers = async () => false
  later.inflightIn.set(2, { qos: 2, topic: 'nobody' })
  expectAck(later, 2)
  const none: Buffer[] = []
  onOutboundAck(later, ackFrame('pubrec', 2, 0), none)
  t.equal(none.length, 0, 'waits for the answer')
  t.same(codes(await later.received()), [['pubrec', 2, ReasonCode.NoMatchingSubscribers]])
})

t.test('withReasonCode: the short success form gets a reason code byte', async (t) => {
  const short = withReasonCode(ackFrame('puback', 0x1234, undefined, 4), 0x10)
  t.same([...short], [0x40, 3, 0x12, 0x34, 0x10])
})
