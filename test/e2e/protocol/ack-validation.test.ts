/**
 * Acknowledgements from a client are checked before they change any state:
 * their fixed header flags [MQTT-2.1.3-1] [MQTT-3.6.1-1], their properties
 * (spec 2.2.2.2), and their kind: a QoS 1 delivery is answered by PUBACK, a
 * QoS 2 one by PUBREC then PUBCOMP (spec 4.3.2, 4.3.3); another kind for a
 * packet id in flight is a Protocol Error. Each refused acknowledgement must
 * leave the message where it was: a persistent subscriber gets it again
 * when it resumes, and a shared message goes to another member.
 *
 * Implemented in lib/protocol/inbound/ack.ts, lib/protocol/outbound/
 * flow-control.ts (`flowOf`) and lib/protocol/flows/acks.ts
 * (onClientPuback, onClientPubrec).
 */
import t from 'tap'
import type { Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { packet, str } from '../../helpers/packet-bytes.js'
import { rawSubscribe, uniqueId, text, expectServerClose } from '../../helpers/raw5.js'
import { groupStats, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'

type AckCmd = 'puback' | 'pubrec' | 'pubcomp'
const ACK_TYPE: Record<AckCmd, number> = { puback: 4, pubrec: 5, pubcomp: 7 }

/** An acknowledgement as bytes: type nibble, flags, packet id, then (MQTT 5) a reason code and `props`. */
function ackBytes (cmd: AckCmd, id: number, props?: number[], flags = 0): Buffer {
  const body: number[][] = [[id >> 8, id & 0xff]]
  if (props !== undefined) body.push([0, props.length, ...props])
  return packet((ACK_TYPE[cmd] << 4) | flags, ...body)
}

t.test('acknowledgement validation', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const pub = await connectClient(t, tcpUrl(server), { clientId: uniqueId('av-pub') })

  /** A client with a session that outlives the connection (MQTT 5: Session Expiry 300; 3.1.1: Clean Session 0). */
  async function persistent (t: Test, version: 4 | 5, clientId: string): Promise<RawClient> {
    const c = await RawClient.connect(port, version, { clientId, clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) })
    t.teardown(() => c.destroy())
    return c
  }

  /** Completes the flow of `p` as the spec says, so the session is left empty. */
  async function complete (c: RawClient, p: mqtt.IPublishPacket): Promise<void> {
    const messageId = p.messageId as number
    if (p.qos === 1) { c.send({ cmd: 'puback', messageId }); return }
    c.send({ cmd: 'pubrec', messageId })
    await c.next('pubrel')
    c.send({ cmd: 'pubcomp', messageId })
  }

  /**
   * After the refused acknowledgement: the subscriber resumes its session
   * and gets the message again (DUP set), completes it, and gets the next.
   */
  async function resumedIntact (t: Test, version: 4 | 5, clientId: string, topic: string, qos: 1 | 2, payload: string): Promise<void> {
    const again = await persistent(t, version, clientId)
    const p = await again.next('publish') as mqtt.IPublishPacket
    t.same([text(p), p.qos, p.dup], [payload, qos, true], 'the message is still in the session and sent again [MQTT-4.4.0-1]')
    await complete(again, p)
    await pub.publishAsync(topic, 'next', { qos })
    const next = await again.next('publish') as mqtt.IPublishPacket
    t.equal(text(next), 'next', 'the subscriber is served again')
    await complete(again, next)
    t.notOk(again.closed, 'acknowledged the right way, the connection stays')
  }

  for (const [qos, wrong, versions] of [
    [1, 'pubrec', [5, 4]],
    [1, 'pubcomp', [5, 4]],
    [2, 'puback', [5, 4]],
    [2, 'pubcomp', [5]]
  ] as const) {
    for (const version of versions) {
      await t.test(`spec 4.3.2, 4.3.3: ${wrong.toUpperCase()} answering a QoS ${qos} delivery is a Protocol Error; the message stays in the session (v${version})`, async (t) => {
        const clientId = uniqueId('av')
        const topic = `av/${wrong}/${qos}/${version}`
        const s = await persistent(t, version, clientId)
        t.same(await rawSubscribe(s, [{ topic, qos }]), [qos])
        await pub.publishAsync(topic, 'm1', { qos })
        const p = await s.next('publish') as mqtt.IPublishPacket
        s.sendRaw(ackBytes(wrong, p.messageId as number))
        await expectServerClose(t, s, version, ReasonCode.ProtocolError)
        t.same(s.packets.map(x => x.cmd), [], 'nothing else was sent to it')
        await resumedIntact(t, version, clientId, topic, qos, 'm1')
      })
    }
  }

  await t.test('spec 4.3.3: PUBACK answering a QoS 2 delivery after the server\'s PUBREL is a Protocol Error', async (t) => {
    const clientId = uniqueId('av')
    const topic = 'av/puback-after-pubrel'
    const s = await persistent(t, 5, clientId)
    await rawSubscribe(s, [{ topic, qos: 2 }])
    await pub.publishAsync(topic, 'm1', { qos: 2 })
    const p = await s.next('publish') as mqtt.IPublishPacket
    s.send({ cmd: 'pubrec', messageId: p.messageId as number })
    await s.next('pubrel')
    s.sendRaw(ackBytes('puback', p.messageId as number))
    await expectServerClose(t, s, 5, ReasonCode.ProtocolError)
    const again = await persistent(t, 5, clientId)
    const rel = await again.next('pubrel') as mqtt.IPubrelPacket
    t.equal(rel.messageId, p.messageId, 'the PUBREL is sent again on resume: the flow was not completed')
    again.send({ cmd: 'pubcomp', messageId: rel.messageId })
    await pub.publishAsync(topic, 'next', { qos: 2 })
    const next = await again.next('publish') as mqtt.IPublishPacket
    t.equal(text(next), 'next', 'the subscriber is served again')
    await complete(again, next)
  })

  await t.test('an acknowledgement for a packet id not in flight is not a violation: PUBACK and PUBCOMP are ignored, PUBREC gets PUBREL 0x92 (spec 3.6.2.1); a repeated PUBREC gets PUBREL again', async (t) => {
    const s = await persistent(t, 5, uniqueId('av'))
    const topic = 'av/unknown'
    await rawSubscribe(s, [{ topic, qos: 2 }])
    s.send({ cmd: 'puback', messageId: 900 })
    s.send({ cmd: 'pubcomp', messageId: 901 })
    s.send({ cmd: 'pubrec', messageId: 902 })
    const rel = await s.next('pubrel') as mqtt.IPubrelPacket
    t.same([rel.messageId, rel.reasonCode], [902, ReasonCode.PacketIdentifierNotFound], 'PUBREL 0x92')
    await pub.publishAsync(topic, 'm1', { qos: 2 })
    const p = await s.next('publish') as mqtt.IPublishPacket
    s.send({ cmd: 'pubrec', messageId: p.messageId as number })
    await s.next('pubrel')
    s.send({ cmd: 'pubrec', messageId: p.messageId as number })
    const again = await s.next('pubrel') as mqtt.IPubrelPacket
    t.equal(again.messageId, p.messageId, 'PUBREL again')
    s.send({ cmd: 'pubcomp', messageId: p.messageId as number })
    s.send({ cmd: 'pingreq' })
    await s.next('pingresp')
    t.notOk(s.closed, 'the connection stays')
  })

  for (const [name, props, code] of [
    ['Reason String twice', [0x1f, ...str('a'), 0x1f, ...str('b')], ReasonCode.ProtocolError],
    ['a Reason String that is not well-formed UTF-8 [MQTT-1.5.4-1]', [0x1f, ...str([0xed, 0xa0, 0x80])], ReasonCode.MalformedPacket],
    ['a User Property holding U+0000 [MQTT-1.5.4-2]', [0x26, ...str('k'), ...str([0x00])], ReasonCode.MalformedPacket],
    ['a property that does not belong in a PUBACK (Payload Format Indicator)', [0x01, 1], ReasonCode.MalformedPacket]
  ] as const) {
    await t.test(`spec 2.2.2.2: a PUBACK carrying ${name} is refused before it completes the delivery`, async (t) => {
      const clientId = uniqueId('av')
      const topic = `av/props/${clientId}`
      const s = await persistent(t, 5, clientId)
      await rawSubscribe(s, [{ topic, qos: 1 }])
      await pub.publishAsync(topic, 'm1', { qos: 1 })
      const p = await s.next('publish') as mqtt.IPublishPacket
      s.sendRaw(ackBytes('puback', p.messageId as number, [...props]))
      await expectServerClose(t, s, 5, code)
      await resumedIntact(t, 5, clientId, topic, 1, 'm1')
    })
  }

  await t.test('[MQTT-3.6.1-1] a PUBREL whose flags are not 0010 is a Malformed Packet, not a PUBCOMP 0x92', async (t) => {
    const s = await persistent(t, 5, uniqueId('av'))
    s.sendRaw(packet(0x60, [0, 5]))
    await expectServerClose(t, s, 5, ReasonCode.MalformedPacket)
    t.same(s.packets.map(x => x.cmd), [], 'no PUBCOMP')
  })

  /**
   * A shared group with one member `a` online and one, `b`, offline with a
   * persistent session: a message `a` fails to acknowledge properly must go
   * to `b` when it returns (QoS 1, spec 4.8.2), not be counted as delivered.
   */
  async function sharedGroup (t: Test, name: string, aPersistent: boolean): Promise<{ key: string, topic: string, a: RawClient, aId: string, bId: string }> {
    const key = `$share/${name}/av/shared/${name}`
    const topic = `av/shared/${name}`
    const bId = uniqueId('b')
    const b = await persistent(t, 5, bId)
    await rawSubscribe(b, [{ topic: key, qos: 2 }])
    b.send({ cmd: 'disconnect', reasonCode: 0 })
    await b.waitClose()
    await waitForGroup(server, key, s => s?.membersOffline === 1, 'b offline')
    const aId = uniqueId('a')
    const a = aPersistent
      ? await persistent(t, 5, aId)
      : await RawClient.connect(port, 5, { clientId: aId, clean: true })
    t.teardown(() => a.destroy())
    await rawSubscribe(a, [{ topic: key, qos: 2 }])
    await waitForMembers(server, key, 1)
    return { key, topic, a, aId, bId }
  }

  /**
   * `a` answers a shared QoS 1 delivery with the bytes `answer` makes of its
   * packet id, and is closed with `code`; the message is not counted as
   * delivered and goes to the other member when it returns.
   */
  async function refusedAckGoesToOtherMember (t: Test, name: string, aPersistent: boolean, answer: (packetId: number) => Buffer, code: number): Promise<void> {
    const { key, topic, a, bId } = await sharedGroup(t, name, aPersistent)
    await pub.publishAsync(topic, 'job', { qos: 1 })
    const p = await a.next('publish') as mqtt.IPublishPacket
    a.sendRaw(answer(p.messageId as number))
    await expectServerClose(t, a, 5, code)
    t.equal(groupStats(server, key)?.delivered, 0, 'not counted as delivered')
    const b = await persistent(t, 5, bId)
    const got = await b.next('publish') as mqtt.IPublishPacket
    t.equal(text(got), 'job', 'the other member gets the message')
    b.send({ cmd: 'puback', messageId: got.messageId as number })
    await waitForGroup(server, key, s => s?.delivered === 1 && s.inflight === 0, 'delivered once, by the other member')
  }

  for (const [wrong, aPersistent, path] of [
    ['pubrec', false, 'sent by the gateway itself (member without a session)'],
    ['pubcomp', false, 'sent by the gateway itself (member without a session)'],
    ['pubrec', true, 'sent through aedes (member with a session)']
  ] as const) {
    await t.test(`spec 4.3.2: ${wrong.toUpperCase()} answering a shared QoS 1 delivery ${path} is a Protocol Error; the message goes to another member`, async (t) => {
      await refusedAckGoesToOtherMember(t, `w${wrong}${aPersistent ? 'p' : 'c'}`, aPersistent, id => ackBytes(wrong, id), ReasonCode.ProtocolError)
    })
  }

  await t.test('[MQTT-2.1.3-1] a PUBACK with reserved flags set, answering a shared delivery, is a Malformed Packet and does not finish the message', async (t) => {
    await refusedAckGoesToOtherMember(t, 'flags', false, id => ackBytes('puback', id, undefined, 0x01), ReasonCode.MalformedPacket)
  })

  await t.test('spec 4.3.3: PUBACK answering a shared QoS 2 delivery is a Protocol Error; the message stays with its member (spec 4.8.2) and is sent again when it resumes', async (t) => {
    const { key, topic, a, aId } = await sharedGroup(t, 'q2', true)
    await pub.publishAsync(topic, 'job2', { qos: 2 })
    const p = await a.next('publish') as mqtt.IPublishPacket
    t.equal(p.qos, 2)
    a.sendRaw(ackBytes('puback', p.messageId as number))
    await expectServerClose(t, a, 5, ReasonCode.ProtocolError)
    t.equal(groupStats(server, key)?.delivered, 0, 'not counted as delivered')
    const again = await persistent(t, 5, aId)
    const got = await again.next('publish') as mqtt.IPublishPacket
    t.same([text(got), got.dup], ['job2', true], 'sent again to the same member')
    await complete(again, got)
    await waitForGroup(server, key, s => s?.delivered === 1 && s.inflight === 0, 'delivered once')
  })

  await t.test('the publisher was served throughout', async (t) => {
    t.ok(pub.connected, 'never disconnected')
  })
})
