/**
 * Shared subscriptions on the wire (spec 4.8.2, 3.8, 3.10): the CONNACK
 * capability, SUBACK and UNSUBACK codes for `$share/` filters, No Local,
 * retained messages, subscription identifiers and QoS of shared deliveries,
 * groups side by side, and 3.1.1 members.
 *
 * Implemented in lib/protocol/flows/connect.ts (onConnack),
 * lib/protocol/flows/subscribe.ts (onSubscribe, checkShared, joinShared,
 * onUnsubscribe), lib/protocol/topic.ts
 * (parseSharedFilter) and lib/shared/dispatcher.ts (deliver, memberProperties).
 */
import t from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { duplicates, groupStats, nextPublishes, rawConnack, rawMember, rawSubscribe, rawUnsubscribe, shareId, takePublishes, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep } from '../../helpers/wait.js'

t.test('CONNACK says Shared Subscription Available: true (spec 3.2.2.3.13)', async (t) => {
  const server = await startTestServer(t)
  const { connack } = await rawConnack(t, tcpPort(server), 5)
  t.equal(connack.reasonCode, 0)
  t.equal(connack.properties?.sharedSubscriptionAvailable, true)
})

t.test('sharedSubscriptions: false: CONNACK says false, a $share SUBSCRIBE gets 0x9E while a plain filter beside it is granted [MQTT-3.8.4-7]', async (t) => {
  const server = await startTestServer(t, { sharedSubscriptions: false })
  const { client, connack } = await rawConnack(t, tcpPort(server), 5)
  t.equal(connack.properties?.sharedSubscriptionAvailable, false, 'Shared Subscription Available: false')
  t.same(await rawSubscribe(client, [{ topic: '$share/g/off/#', qos: 1 }, { topic: 'off/#', qos: 1 }]), [0x9e, 1], '0x9E Shared Subscriptions not supported; the plain filter granted')
  const { client: v4 } = await rawConnack(t, tcpPort(server), 4)
  t.same(await rawSubscribe(v4, [{ topic: '$share/g/off/#', qos: 1 }, { topic: 'off/#', qos: 0 }]), [0x80, 0], '3.1.1: 0x80 Failure')
  t.equal(server.broker.sharedGroups, undefined, 'no groups kept')
})

t.test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] malformed shared filters get SUBACK 0x8F; a valid filter in the same SUBSCRIBE is granted and works', async (t) => {
  const server = await startTestServer(t)
  const c = await rawMember(t, tcpPort(server))
  const bad = ['$share/a+b/x', '$share/a#/x', '$share//x', '$share/g', '$share/g/', '$share/g/a/#/b', '$share/+/x', '$share/#']
  const codes = await rawSubscribe(c, [...bad.map(topic => ({ topic, qos: 1 as const })), { topic: '$share/good/valid/#', qos: 1 }])
  bad.forEach((topic, i) => t.equal(codes[i], 0x8f, `${topic}: 0x8F Topic Filter invalid`))
  t.equal(codes[bad.length], 1, 'the valid $share/good/valid/# granted QoS 1')
  t.equal(server.broker.sharedGroups?.stats().length, 1, 'only the valid group exists')
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('valid/1', 'still served', { qos: 1 })
  const [p] = await nextPublishes(c, 1)
  t.equal(p && text(p), 'still served', 'the connection is still served')
  const v4 = await rawMember(t, tcpPort(server), { version: 4 })
  t.same(await rawSubscribe(v4, [{ topic: '$share/a+b/x', qos: 1 }, { topic: '$share//x', qos: 1 }, { topic: 'plain/x', qos: 1 }]), [0x80, 0x80, 1], '3.1.1: 0x80 Failure')
})

t.test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async (t) => {
  const server = await startTestServer(t)
  const c = await rawMember(t, tcpPort(server))
  c.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: '$share/g/nl/#', qos: 1, nl: true }] })
  const d = await c.next('disconnect') as mqtt.IDisconnectPacket
  t.equal(d.reasonCode, 0x82, 'DISCONNECT 0x82 Protocol Error')
  await c.waitClose()
  t.equal(groupStats(server, '$share/g/nl/#'), undefined, 'no group was made')
  const other = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(other, [{ topic: '$share/g/nl/#', qos: 1 }]), [1], 'the broker serves others')
})

t.test('no retained messages are sent when a shared subscription is made (spec 4.8.2, 3.3.1.3); live messages are', async (t) => {
  const server = await startTestServer(t)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('ret/a', 'retained-a', { qos: 1, retain: true })
  await pub.publishAsync('ret/b', 'retained-b', { qos: 0, retain: true })
  const member = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(member, [{ topic: '$share/g/ret/#', qos: 1 }]), [1])
  const plain = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(plain, [{ topic: 'ret/#', qos: 1 }]), [1])
  const retained = await nextPublishes(plain, 2)
  t.same(retained.map(text).sort(), ['retained-a', 'retained-b'], 'control: a non-shared subscription gets both retained messages')
  await sleep(300)
  t.same(takePublishes(member).map(text), [], 'the shared subscription got no retained message')
  await pub.publishAsync('ret/a', 'live', { qos: 1, retain: true })
  const [live] = await nextPublishes(member, 1)
  t.equal(live && text(live), 'live', 'a message published afterwards arrives')
  t.equal(live?.retain, false, 'with RETAIN 0 (Retain As Published not set) [MQTT-3.3.1-12]')
})

t.test('UNSUBSCRIBE with the full $share filter: 0x00, again 0x11; delivery stops (spec 3.11.2.2)', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/g/unsub/#'
  const c = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(c, [{ topic: key, qos: 1 }, { topic: 'unsub-plain/#', qos: 1 }]), [1, 1])
  t.same(await rawUnsubscribe(c, ['unsub/#']), [0x11], 'the filter without $share/ is another subscription: 0x11 No subscription existed')
  t.ok(groupStats(server, key), 'still a member')
  t.same(await rawUnsubscribe(c, [key, 'unsub-plain/#', 'never/#']), [0x00, 0x00, 0x11], 'mixed: $share 0x00, plain 0x00, unknown 0x11, in order (spec 3.11.3)')
  t.same(await rawUnsubscribe(c, [key]), [0x11], 'again: 0x11')
  t.equal(groupStats(server, key), undefined, 'the group is gone')
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('unsub/1', 'after', { qos: 1 })
  await sleep(300)
  t.same(takePublishes(c).map(text), [], 'nothing is delivered after the UNSUBSCRIBE')
  const v4 = await rawMember(t, tcpPort(server), { version: 4 })
  t.same(await rawSubscribe(v4, [{ topic: key, qos: 1 }]), [1])
  v4.send({ cmd: 'unsubscribe', messageId: 99, unsubscriptions: [key] })
  const ack = await v4.next('unsuback') as mqtt.IUnsubackPacket
  t.equal(ack.messageId, 99, '3.1.1: UNSUBACK with the packet id')
  t.equal(groupStats(server, key), undefined, '3.1.1 member left')
})

t.test('one session in two groups: on different filters it gets the messages of both; on the same filter one copy per group', async (t) => {
  const server = await startTestServer(t)
  const c = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(c, [{ topic: '$share/g1/multi/a/#', qos: 1 }, { topic: '$share/g2/multi/b/#', qos: 1 }]), [1, 1])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('multi/a/1', 'from-a', { qos: 1 })
  await pub.publishAsync('multi/b/1', 'from-b', { qos: 1 })
  const got = await nextPublishes(c, 2)
  t.same(got.map(text).sort(), ['from-a', 'from-b'])
  for (const p of got) c.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })

  t.same(await rawSubscribe(c, [{ topic: '$share/g1/dual/#', qos: 1 }, { topic: '$share/g2/dual/#', qos: 1 }]), [1, 1])
  await pub.publishAsync('dual/x', 'twice', { qos: 1 })
  const copies = await nextPublishes(c, 2)
  t.same(copies.map(text), ['twice', 'twice'], 'one copy for each of its two shared subscriptions')
  await sleep(200)
  t.same(takePublishes(c), [], 'and no more')
})

t.test('two groups on one filter: each group gets every message once', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const inboxes: Record<string, Array<ReturnType<typeof collect>>> = { alpha: [], beta: [] }
  for (const g of ['alpha', 'beta']) {
    for (let i = 0; i < 2; i++) {
      const m = await connectClient(t, url, { clientId: shareId(`${g}-${i}`) })
      inboxes[g]?.push(collect(m))
      await m.subscribeAsync(`$share/${g}/orders/#`, { qos: 1 })
    }
    await waitForMembers(server, `$share/${g}/orders/#`, 2)
  }
  const pub = await connectClient(t, url, { clientId: shareId('pub') })
  for (let i = 0; i < 20; i++) await pub.publishAsync(`orders/${i}`, `o${i}`, { qos: 1 })
  for (const g of ['alpha', 'beta']) {
    await waitForGroup(server, `$share/${g}/orders/#`, s => s?.delivered === 20, `${g}: 20 delivered`)
  }
  await sleep(200)
  const expected = Array.from({ length: 20 }, (_, i) => `o${i}`).sort()
  for (const g of ['alpha', 'beta']) {
    const boxes = inboxes[g] ?? []
    const all = boxes.flatMap(b => b.messages.map(text))
    t.same(duplicates(all), [], `${g}: nothing twice`)
    t.same([...all].sort(), expected, `${g}: every message once`)
    t.same(boxes.map(b => b.messages.length), [10, 10], `${g}: split between its two members`)
  }
})

t.test('3.1.1 members: MQTT.js protocolVersion 4 members share the messages', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/legacy/v4/#'
  const boxes: Array<ReturnType<typeof collect>> = []
  for (let i = 0; i < 2; i++) {
    const m = await connectClient(t, tcpUrl(server), { clientId: shareId(`v4-${i}`), protocolVersion: 4 })
    boxes.push(collect(m))
    t.same((await m.subscribeAsync(key, { qos: 2 })).map(g => g.qos), [2], 'SUBACK grants QoS 2')
  }
  await waitForMembers(server, key, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 4 })
  for (let i = 0; i < 10; i++) await pub.publishAsync('v4/x', `l${i}`, { qos: i % 2 === 0 ? 1 : 2 })
  await waitForGroup(server, key, s => s?.delivered === 10 && s.inflight === 0, '10 delivered')
  await sleep(200)
  const all = boxes.flatMap(b => b.messages.map(text))
  t.same([...all].sort(), Array.from({ length: 10 }, (_, i) => `l${i}`).sort(), 'every message once')
  t.same(boxes.map(b => b.messages.length), [5, 5], 'five each')
})

t.test('[MQTT-3.3.4-3] the Subscription Identifier of the shared subscription is carried on its deliveries', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/sid/sid/#'
  const c = await rawMember(t, tcpPort(server), { clientId: shareId('a-with-id') })
  t.same(await rawSubscribe(c, [{ topic: key, qos: 1 }], { subscriptionIdentifier: 42 }), [1])
  t.same(await rawSubscribe(c, [{ topic: 'sid/#', qos: 1 }], { subscriptionIdentifier: 7 }), [1])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('sid/1', 'x', { qos: 1 })
  const got = await nextPublishes(c, 2)
  const ids = got.map(p => p.properties?.subscriptionIdentifier).sort()
  t.same(ids, [42, 7].sort(), 'one copy with 42 (the shared subscription), one with 7 (the plain one)')
  for (const p of got) c.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })

  const noId = await rawMember(t, tcpPort(server), { clientId: shareId('b-without-id') })
  t.same(await rawSubscribe(noId, [{ topic: key, qos: 1 }]), [1])
  await waitForMembers(server, key, 2)
  // round-robin: the next message goes to the member without an identifier
  await pub.publishAsync('sid/2', 'y', { qos: 1 })
  const [p] = await nextPublishes(noId, 1)
  t.equal(p && text(p), 'y')
  t.equal(p?.properties?.subscriptionIdentifier, undefined, 'a member that gave no identifier gets none [MQTT-3.3.4-3]')
})

t.test('[MQTT-3.8.4-8] a shared delivery is at the lower of the published QoS and the member\'s granted QoS', async (t) => {
  const server = await startTestServer(t)
  const q0 = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(q0, [{ topic: '$share/g0/down/#', qos: 0 }]), [0])
  const q1 = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(q1, [{ topic: '$share/g1/down/#', qos: 1 }]), [1])
  const q2 = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(q2, [{ topic: '$share/g2/down/#', qos: 2 }]), [2])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  const sent: Array<0 | 1 | 2> = [0, 1, 2]
  for (const qos of sent) await pub.publishAsync(`down/${qos}`, `q${qos}`, { qos })
  const byMember: Array<[typeof q0, number]> = [[q0, 0], [q1, 1], [q2, 2]]
  for (const [c, granted] of byMember) {
    const got = await nextPublishes(c, 3)
    for (const p of got) {
      const published = Number(text(p).slice(1))
      t.equal(p.qos, Math.min(published, granted), `published at QoS ${published}, granted ${granted}: delivered at QoS ${p.qos}`)
      if (p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
      if (p.qos === 2) c.send({ cmd: 'pubrec', messageId: p.messageId as number, reasonCode: 0 } as mqtt.IPubrecPacket)
    }
  }
  for (const g of ['g0', 'g1', 'g2']) {
    const s = await waitForGroup(server, `$share/${g}/down/#`, s => s?.inflight === 0 && s.queued === 0, `${g} done`)
    t.equal(s?.delivered, 3, `${g}: all three delivered and finished for the group`)
  }
})

t.test('[MQTT-4.7.2-1] a shared filter starting with a wildcard does not match topics starting with $', async (t) => {
  const server = await startTestServer(t)
  const c = await rawMember(t, tcpPort(server))
  t.same(await rawSubscribe(c, [{ topic: '$share/all/#', qos: 1 }, { topic: '$share/plus/+/x', qos: 1 }]), [1, 1])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('$app/x', 'dollar', { qos: 1 })
  await pub.publishAsync('app/x', 'normal', { qos: 1 })
  const got = await nextPublishes(c, 2)
  t.same(got.map(text), ['normal', 'normal'], 'only the topic not starting with $, once per group')
  await sleep(200)
  t.same(takePublishes(c).map(text), [], 'nothing for $app/x')
})
