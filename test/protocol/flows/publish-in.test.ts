// lib/protocol/flows/publish-in.ts against a stub host: the checks of a
// client's PUBLISH, its refusals, inbound flow control and retained order.
import t from 'tap'
import type { IPubackPacket, IPublishPacket } from 'mqtt-packet'
import { decodeBuffer } from '../../../lib/protocol/codec.js'
import { onPublish, onRetainedPublish } from '../../../lib/protocol/flows/publish-in.js'
import { frameOf } from '../../../lib/protocol/frame.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { onOutboundAck } from '../../../lib/protocol/flows/acks.js'
import { StubHost, ackFrame, publishFrame } from '../../helpers/flow-host.js'

const replaced = (v: ReturnType<typeof onPublish>): IPublishPacket | undefined => v.kind === 'replace' ? v.packets[0] as IPublishPacket : undefined
const closeCode = (v: ReturnType<typeof onPublish>): number | undefined => v.kind === 'close' ? v.reasonCode : undefined

t.test('a valid PUBLISH goes to aedes decoded, and is counted', async (t) => {
  const host = new StubHost()
  const packet = replaced(onPublish(host, publishFrame({ topic: 'a/b', qos: 1, messageId: 1 })))
  t.equal(packet?.topic, 'a/b')
  t.same(host.counted, [1])
  t.same(host.inflightIn.get(1), { qos: 1, topic: 'a/b' })
})

t.test('[MQTT-3.3.1-4] QoS 3 is a Malformed Packet', async (t) => {
  const host = new StubHost()
  const buf = Buffer.from(publishFrame({ topic: 't', qos: 0 }).buf)
  buf[0] = (buf[0] as number) | 0x06
  t.equal(closeCode(onPublish(host, frameOf(buf))), ReasonCode.MalformedPacket)
})

t.test('[MQTT-3.2.2-11] over the Maximum QoS: MQTT 5 is closed with 0x9B', async (t) => {
  const host = new StubHost()
  host.settings.maximumQoS = 1
  t.equal(closeCode(onPublish(host, publishFrame({ topic: 't', qos: 2, messageId: 1 }))), ReasonCode.QoSNotSupported)
})

t.test('spec 3.3.2.3.4: an empty topic with an alias never set is a Protocol Error; a set alias is followed', async (t) => {
  const host = new StubHost()
  t.equal(closeCode(onPublish(host, publishFrame({ topic: '', qos: 0, properties: { topicAlias: 3 } }))), ReasonCode.ProtocolError)
  onPublish(host, publishFrame({ topic: 'x/y', qos: 0, properties: { topicAlias: 2 } }))
  host.denied.add('x/y')
  const v = onPublish(host, publishFrame({ topic: '', qos: 1, messageId: 4, properties: { topicAlias: 2 } }))
  t.same(v, { kind: 'drop' }, 'the ACL sees the aliased topic')
})

t.test('MQTT 5 ACL refusal: PUBACK 0x87 with a Reason String, in order behind earlier PUBLISHes', async (t) => {
  const host = new StubHost()
  onPublish(host, publishFrame({ topic: 'ok', qos: 1, messageId: 1 }))
  host.denied.add('no')
  t.same(onPublish(host, publishFrame({ topic: 'no', qos: 1, messageId: 2 })), { kind: 'drop' })
  t.same(await host.received(), [], '[MQTT-4.6.0-2] waits for the PUBACK of message 1')
  host.subscribers = () => true
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('puback', 1, 0x10), out)
  t.equal(out.length, 2)
  t.same(host.dropped, ['not-authorized'])
})

t.test('3.1.1 ACL refusal: a plain acknowledgement, the message dropped', async (t) => {
  const host = new StubHost()
  host.version = 4
  host.denied.add('no')
  t.same(onPublish(host, publishFrame({ topic: 'no', qos: 2, messageId: 5 }, 4)), { kind: 'drop' })
  const got = (await host.received()) as IPubackPacket[]
  t.same(got.map(p => [p.cmd, p.messageId]), [['pubrec', 5]])
})

t.test('spec 4.3.2, 4.3.3: a QoS 1 PUBLISH reusing the id of a QoS 2 flow gets 0x91', async (t) => {
  const host = new StubHost()
  onPublish(host, publishFrame({ topic: 't', qos: 2, messageId: 7 }))
  t.same(onPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 7 })), { kind: 'drop' })
  t.same(await host.received(), [], 'behind the PUBREC of the first')
  const out: Buffer[] = []
  onOutboundAck(host, ackFrame('pubrec', 7, 0), out)
  const acks = out.map(b => decodeBuffer(b, 5) as IPubackPacket)
  t.same(acks.map(p => [p.cmd, p.messageId, p.reasonCode]), [['pubrec', 7, 0], ['puback', 7, ReasonCode.PacketIdentifierInUse]])
})

t.test('[MQTT-3.3.4-7] spec 4.9: one QoS 1/2 PUBLISH over the Receive Maximum is DISCONNECT 0x93', async (t) => {
  const host = new StubHost()
  onPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 1 }))
  onPublish(host, publishFrame({ topic: 't', qos: 2, messageId: 2 }))
  t.equal(replaced(onPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 1 })))?.messageId, 1, 'a repeated id is not a new one')
  t.equal(closeCode(onPublish(host, publishFrame({ topic: 't', qos: 1, messageId: 3 }))), ReasonCode.ReceiveMaximumExceeded)
})

t.test('the message rate: over it is DISCONNECT 0x96', async (t) => {
  const host = new StubHost()
  host.rateLeft = 1
  t.equal(onPublish(host, publishFrame({ topic: 't', qos: 0 })).kind, 'replace')
  t.equal(closeCode(onPublish(host, publishFrame({ topic: 't', qos: 0 }))), ReasonCode.MessageRateTooHigh)
})

t.test('a retained PUBLISH waits for the SUBSCRIBEs before it to be answered', async (t) => {
  const host = new StubHost()
  const retained = frameOf(Buffer.from(publishFrame({ topic: 'r', qos: 0 }).buf))
  retained.buf[0] = (retained.buf[0] as number) | 0x01
  const r = frameOf(retained.buf)
  t.equal(onRetainedPublish(host, r).kind, 'replace', 'no SUBSCRIBE pending: at once')
  host.subacksAwaited = true
  const v = onRetainedPublish(host, r)
  t.equal(v.kind, 'defer')
  let decided = false
  if (v.kind === 'defer') void v.decision.then(() => { decided = true })
  await new Promise(resolve => setImmediate(resolve))
  t.notOk(decided, 'waits')
  host.retainedOrder?.subscriptionsAnswered()
  await new Promise(resolve => setImmediate(resolve))
  t.ok(decided, 'goes once they are answered')
})

/** A v5 QoS 0 PUBLISH with these Topic Name bytes, no properties. */
const rawTopicFrame = (topic: Buffer): ReturnType<typeof frameOf> => {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0, 0x78])])
  return frameOf(Buffer.concat([Buffer.from([0x30, body.length]), body]))
}

t.test('a topic the client published to just before is read from its bytes again: the same string, the same checks', async (t) => {
  const host = new StubHost()
  const first = replaced(onPublish(host, publishFrame({ topic: 'dev/1', qos: 0 })))
  const second = replaced(onPublish(host, publishFrame({ topic: 'dev/1', qos: 0 })))
  t.equal(second?.topic, 'dev/1')
  t.equal(first?.topic, second?.topic)
  host.denied.add('dev/1')
  t.same(onPublish(host, publishFrame({ topic: 'dev/1', qos: 0 })), { kind: 'drop' }, 'the ACL is asked every time')
  t.equal(closeCode(onPublish(host, publishFrame({ topic: 'dev/1', qos: 1, messageId: 0 }))), ReasonCode.ProtocolError, '[MQTT-2.2.1-3] the header is checked every time')
})

t.test('[MQTT-3.3.2-2] [MQTT-1.5.4-2] a topic of the same length after one that passed is checked in full', async (t) => {
  const host = new StubHost()
  t.ok(replaced(onPublish(host, publishFrame({ topic: 'dev/1', qos: 0 }))))
  t.same(onPublish(host, publishFrame({ topic: 'dev/+', qos: 0 })), { kind: 'drop' }, 'a wildcard is refused')
  t.equal(closeCode(onPublish(host, rawTopicFrame(Buffer.from('dev/\u0000')))), ReasonCode.MalformedPacket, 'U+0000 is malformed')
  t.ok(replaced(onPublish(host, publishFrame({ topic: 'dev/1', qos: 0 }))), 'and the first topic passes again')
})

t.test('[MQTT-1.5.4-1] ill-formed UTF-8 that decodes to the string of a topic that passed is still a Malformed Packet', async (t) => {
  const host = new StubHost()
  const valid = Buffer.from('a\uFFFD')
  const illFormed = Buffer.from([0x61, 0xf0, 0x9f, 0x92])
  t.equal(illFormed.toString(), valid.toString(), 'both decode to the same string')
  t.ok(replaced(onPublish(host, rawTopicFrame(valid))))
  t.equal(closeCode(onPublish(host, rawTopicFrame(illFormed))), ReasonCode.MalformedPacket)
})

t.test('a topic over the limits set after it passed is refused; a long topic is checked each time', async (t) => {
  const host = new StubHost()
  t.ok(replaced(onPublish(host, publishFrame({ topic: 'a/b/c', qos: 0 }))))
  host.settings.maxTopicLevels = 2
  t.same(onPublish(host, publishFrame({ topic: 'a/b/c', qos: 0 })), { kind: 'drop' }, 'over the levels: 0x90')
  const long = 'x/'.repeat(40) + 'y'
  t.ok(replaced(onPublish(host, publishFrame({ topic: long.replace(/\//g, '_'), qos: 0 }))))
  host.settings.maxTopicLength = 70
  t.same(onPublish(host, publishFrame({ topic: long.replace(/\//g, '_'), qos: 0 })), { kind: 'drop' }, 'over the length: 0x90')
})
