/**
 * Shared QoS 1 deliveries to a member whose session keeps nothing (Clean
 * Start with Session Expiry 0, or 3.1.1 clean session) are sent by the
 * gateway itself instead of through aedes (flows/fast-paths.ts sendShared). They
 * must go through every outbound step a PUBLISH takes: packet ids that are
 * unused [MQTT-2.2.1-4], Message Expiry [MQTT-3.3.2-6], Subscription
 * Identifier [MQTT-3.3.4-3], topic alias [MQTT-3.3.2-8], Maximum Packet
 * Size [MQTT-3.1.2-24], Receive Maximum [MQTT-3.3.4-9]; and their
 * acknowledgements finish them for the group.
 *
 * Implemented in lib/protocol/flows/fast-paths.ts (sendShared),
 * lib/protocol/flows/acks.ts (onClientPuback),
 * lib/protocol/flows/publish-out.ts (dropPublish) and
 * lib/shared/dispatcher.ts (deliver).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { rawClient, rawSubscribe, takePublishes, expectNone, text, subscriptionIds } from '../../helpers/raw5.js'
import { groupStats, nextPublishes, shareId, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep } from '../../helpers/wait.js'

const BIG = Buffer.alloc(1000, 'b')

t.test('[MQTT-2.2.1-4] [MQTT-3.3.2-6] [MQTT-3.3.4-3] a clean member gets shared and plain QoS 1 messages with distinct packet ids, the remaining Message Expiry, its Subscription Identifier and the publisher\'s properties', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/direct/dj/#'
  const member = await rawClient(t, tcpPort(server), 5, { clientId: shareId('member') })
  t.same(await rawSubscribe(member, [{ topic: key, qos: 1 }], { subscriptionIdentifier: 7 }), [1])
  t.same(await rawSubscribe(member, [{ topic: 'dn/#', qos: 1 }]), [1])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  const props = { messageExpiryInterval: 60, userProperties: { job: 'x' }, contentType: 'text/plain', correlationData: Buffer.from('c1') }
  const sends: Array<Promise<unknown>> = []
  for (let i = 0; i < 20; i++) {
    sends.push(pub.publishAsync('dj/work', `s${i}`, { qos: 1, properties: props }))
    sends.push(pub.publishAsync('dn/news', `p${i}`, { qos: 1 }))
  }
  await Promise.all(sends)
  // nothing acknowledged yet: all 40 are in flight at once
  const got = await nextPublishes(member , 40)
  const ids = got.map(p => p.messageId)
  t.equal(new Set(ids).size, 40, `40 distinct packet ids while all are unacknowledged (${ids.join(',')})`)
  const shared = got.filter(p => p.topic === 'dj/work')
  t.same(shared.map(text), Array.from({ length: 20 }, (_, i) => `s${i}`), 'every shared message, in order')
  for (const p of shared) {
    const expiry = p.properties?.messageExpiryInterval ?? 0
    if (expiry < 59 || expiry > 60) t.fail(`Message Expiry Interval ${expiry}, expected what remains of 60`)
  }
  t.ok(shared.every(p => p.qos === 1 && p.dup === false), 'QoS 1, DUP 0')
  t.same(subscriptionIds(shared[0] as mqtt.IPublishPacket), [7], 'the shared subscription\'s identifier')
  t.same(shared[0]?.properties?.userProperties, { job: 'x' }, 'user properties kept')
  t.equal(shared[0]?.properties?.contentType, 'text/plain', 'content type kept')
  t.same(shared[0]?.properties?.correlationData, Buffer.from('c1'), 'correlation data kept')
  t.equal(got.filter(p => p.topic === 'dn/news').length, 20, 'every plain message')
  t.same(groupStats(server, key)?.inflight, 20, 'the group counts 20 in flight')

  for (const p of got) member.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await waitForGroup(server, key, s => s?.inflight === 0 && s.delivered === 20, 'every acknowledged message finished')
  await pub.publishAsync('dj/work', 'after', { qos: 1 })
  const [next] = await nextPublishes(member , 1)
  t.equal(next !== undefined ? text(next) : undefined, 'after', 'the member is still served after its acknowledgements')
  t.notOk(member.closed, 'never disconnected (no unknown packet id)')
})

t.test('[MQTT-3.3.2-8] [MQTT-3.3.2-11] a clean member that accepts topic aliases gets them on shared deliveries', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/alias/da/#'
  const member = await rawClient(t, tcpPort(server), 5, { clientId: shareId('member'), properties: { topicAliasMaximum: 4 } })
  await rawSubscribe(member, [{ topic: key, qos: 1 }])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  for (let i = 0; i < 3; i++) await pub.publishAsync('da/topic', `a${i}`, { qos: 1 })
  const got = await nextPublishes(member , 3)
  t.same(got.map(p => [p.topic, p.properties?.topicAlias, text(p)]), [['da/topic', 1, 'a0'], ['', 1, 'a1'], ['', 1, 'a2']], 'topic and alias, then the alias alone')
})

t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a shared message larger than a clean member\'s Maximum Packet Size is not sent to it; it frees the member\'s window (Receive Maximum 1) and the group counts it as finished', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/size/ds/#'
  const member = await rawClient(t, tcpPort(server), 5, { clientId: shareId('member'), properties: { maximumPacketSize: 200, receiveMaximum: 1 } })
  await rawSubscribe(member, [{ topic: key, qos: 1 }])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  for (let i = 0; i < 3; i++) await pub.publishAsync('ds/job', BIG, { qos: 1 })
  await pub.publishAsync('ds/job', 'small', { qos: 1 })
  const [p] = await nextPublishes(member , 1)
  t.equal(p !== undefined ? text(p) : undefined, 'small', 'only the small message arrives, with no acknowledgement from the member before it')
  member.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0 })
  const s = await waitForGroup(server, key, g => g?.inflight === 0 && g.queued === 0 && g.delivered === 4, 'all four finished')
  t.equal(s?.redelivered, 0, 'none sent again')
  await expectNone(member, 'publish', 200)
  t.same(takePublishes(member), [])
})

t.test('a member with a persistent session still gets shared QoS 1 messages through its session (aedes): kept across a reconnect until acknowledged [MQTT-4.4.0-1]', async (t) => {
  const server = await startTestServer(t, { sharedRedelivery: 'session-end' })
  const key = '$share/persist/dp/#'
  const clientId = shareId('member')
  const first = await rawClient(t, tcpPort(server), 5, { clientId, clean: true, properties: { sessionExpiryInterval: 300 } })
  await rawSubscribe(first, [{ topic: key, qos: 1 }])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('dp/job', 'kept', { qos: 1 })
  const [sent] = await nextPublishes(first , 1)
  t.equal(sent !== undefined ? text(sent) : undefined, 'kept')
  first.destroy()
  await waitForGroup(server, key, g => g?.membersOnline === 0, 'member offline')
  const again = await rawClient(t, tcpPort(server), 5, { clientId, clean: false, properties: { sessionExpiryInterval: 300 } })
  const [resent] = await nextPublishes(again , 1)
  t.equal(resent !== undefined ? text(resent) : undefined, 'kept', 'sent again from the session')
  t.equal(resent?.dup, true, '[MQTT-3.3.1-1] with DUP set')
  t.equal(resent?.messageId, sent?.messageId, '[MQTT-4.4.0-1] with the same packet id')
})

t.test('[MQTT-3.3.2-6] a message that waited in the group queue reaches a clean member with its Message Expiry Interval reduced by the wait; [MQTT-3.3.2-5] an expired one not at all', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/wait/dw/#'
  // a persistent member that goes offline keeps the group (and its queue)
  const keeper = await rawClient(t, tcpPort(server), 5, { clientId: shareId('a-keeper'), clean: true, properties: { sessionExpiryInterval: 300 } })
  await rawSubscribe(keeper, [{ topic: key, qos: 1 }])
  await waitForMembers(server, key, 1)
  keeper.destroy()
  await waitForGroup(server, key, g => g?.membersOnline === 0 && g.membersOffline === 1, 'the member offline')
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('dw/job', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync('dw/job', 'long', { qos: 1, properties: { messageExpiryInterval: 10 } })
  await waitForGroup(server, key, g => g?.queued === 2, 'both queued')
  await sleep(2100)
  const member = await rawClient(t, tcpPort(server), 5, { clientId: shareId('b-member') })
  await rawSubscribe(member, [{ topic: key, qos: 1 }])
  const [p] = await nextPublishes(member, 1)
  t.equal(p !== undefined ? text(p) : undefined, 'long', 'the expired message is not delivered')
  const left = p?.properties?.messageExpiryInterval ?? 0
  t.ok(left >= 7 && left <= 8, `what remains of 10 s after a wait of 2.1 s: ${left}`)
  await expectNone(member, 'publish', 200)
})
