/**
 * A member that dies keeps nothing hostage (spec 4.8.2): the QoS 1 messages
 * it was sent and had not acknowledged go to another member as soon as its
 * connection is lost (`sharedRedelivery: 'immediate'`, the default), or only
 * when its session ends (`'session-end'`), in which case the member gets them
 * again when it resumes its session [MQTT-4.4.0-1]. Messages given to it and
 * never sent go back to the group at once in either mode.
 *
 * Implemented in lib/shared/dispatcher.ts (memberDisconnected, unassign,
 * onForward) and lib/protocol/connection.ts (close).
 */
import t, { type Test } from 'tap'
import type { IPublishPacket } from 'mqtt'
import type { CulexServer } from '../../../lib/server.js'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { duplicates, groupStats, nextPublishes, publishMany, rawMember, rawSubscribe, shareId, takePublishes, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const TOTAL = 40

t.test('immediate: the QoS 1 messages a member (Receive Maximum 20, never acknowledges) was sent go to the other member when its socket is destroyed; nothing lost, nothing twice', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/workers/jobs/#'
  const raw = await rawMember(t, tcpPort(server), { clientId: shareId('a-raw'), receiveMaximum: 20 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 1 }]), [1])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)

  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, TOTAL, i => ({ topic: 'jobs/q', payload: `m${i}` }), 1)
  await waitFor(() => raw.packets.filter(p => p.cmd === 'publish').length + otherInbox.messages.length >= TOTAL, { what: 'all 40 delivered once' })
  await sleep(100)
  const rawGot = takePublishes(raw)
  t.equal(rawGot.length, 20, 'the raw member was sent 20 (its Receive Maximum)')
  t.ok(rawGot.every(p => p.qos === 1), 'at QoS 1')
  const beforeDrop = otherInbox.messages.map(text)
  t.same(duplicates([...rawGot.map(text), ...beforeDrop]), [], 'before the drop, each message went to one member')
  // the other member's PUBACKs may still be on their way: wait for them, not for a guess of their time
  const held = await waitForGroup(server, key, s => s?.delivered === TOTAL - 20, 'the other member\'s 20 acknowledged')
  t.equal(held?.inflight, 20, '20 unacknowledged, in flight to the raw member')

  raw.socket.destroy()
  await waitFor(() => otherInbox.messages.length >= TOTAL, { what: () => `the other member got ${otherInbox.messages.length} of ${TOTAL}` })
  await sleep(300)
  const otherGot = otherInbox.messages.map(text)
  t.same(duplicates(otherGot), [], 'nothing delivered twice to the surviving member')
  t.equal(otherGot.length, TOTAL, 'the surviving member got every message exactly once')
  for (const p of rawGot) t.ok(otherGot.includes(text(p)), `${text(p)} (sent to the dead member) arrived at the other member`)
  const s = await waitForGroup(server, key, s => s?.inflight === 0 && s.delivered === TOTAL, 'all acknowledged')
  t.equal(s?.redelivered, 20, 'the redelivered figure counts the 20')
  t.equal(s?.membersOnline, 1, 'one member left')
  t.equal(s?.membersOffline, 0, 'the dead member (clean session) is no longer a member')
})

t.test('session-end: the messages a persistent member was sent stay with its session; it gets them again when it resumes [MQTT-4.4.0-1]', async (t) => {
  const server = await startTestServer(t, { sharedRedelivery: 'session-end' })
  const key = '$share/workers/jobs/#'
  const port = tcpPort(server)
  const rawId = shareId('a-raw')
  const raw = await rawMember(t, port, { clientId: rawId, receiveMaximum: 20, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 1 }]), [1])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)

  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, TOTAL, i => ({ topic: 'jobs/q', payload: `m${i}` }), 1)
  const rawGot = await nextPublishes(raw, 20)
  await waitFor(() => otherInbox.messages.length >= TOTAL - 20, { what: 'the other member got the rest' })
  const rawPayloads = rawGot.map(text)

  raw.socket.destroy()
  await waitForGroup(server, key, s => s?.membersOnline === 1 && s.membersOffline === 1, 'the raw member offline, still a member')
  await sleep(500)
  t.equal(otherInbox.messages.length, TOTAL - 20, 'none of the raw member\'s 20 went to the other member while its session lives')
  let s = groupStats(server, key)
  t.equal(s?.inflight, 20, '20 still assigned to the offline member')
  t.equal(s?.redelivered, 0, 'nothing redelivered')

  // new messages meanwhile go to the member that is online
  await publishMany(pub, 10, i => ({ topic: 'jobs/q', payload: `late${i}` }), 1)
  await waitFor(() => otherInbox.messages.length >= TOTAL - 10, { what: 'the online member got the 10 published meanwhile' })

  const back = await RawClient.connect(port, 5, { clientId: rawId, clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 20 } })
  t.teardown(() => back.destroy())
  const again = await nextPublishes(back, 20)
  t.same(again.map(text).sort(), [...rawPayloads].sort(), 'the resumed session is sent its 20 unacknowledged messages again')
  for (const p of again) back.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  s = await waitForGroup(server, key, s => s?.inflight === 0, 'all acknowledged')
  t.equal(s?.delivered, TOTAL + 10, 'all 50 delivered')
  t.equal(s?.redelivered, 0, 'none went to another member')
  await sleep(200)
  t.equal(takePublishes(back).length, 0, 'nothing more for the resumed member')
  const otherGot = otherInbox.messages.map(text)
  t.same(duplicates(otherGot), [], 'nothing twice to the other member')
  t.same(otherGot.filter(p => rawPayloads.includes(p)), [], 'the other member never got the raw member\'s messages')
})

t.test('session-end: the session ends (reconnect with Clean Start) and its messages go to the other member', async (t) => {
  const server = await startTestServer(t, { sharedRedelivery: 'session-end' })
  const key = '$share/workers/jobs/#'
  const port = tcpPort(server)
  const rawId = shareId('a-raw')
  const raw = await rawMember(t, port, { clientId: rawId, receiveMaximum: 5, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 1 }]), [1])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, 10, i => ({ topic: 'jobs/q', payload: `m${i}` }), 1)
  const rawPayloads = (await nextPublishes(raw, 5)).map(text)
  await waitFor(() => otherInbox.messages.length >= 5, { what: () => `the other member got ${otherInbox.messages.length} of its own 5` })
  raw.socket.destroy()
  await waitForGroup(server, key, s => s?.membersOffline === 1, 'the raw member offline')
  await sleep(200)
  t.equal(otherInbox.messages.length, 5, 'the other member has only its own 5')

  const clean = await RawClient.connect(port, 5, { clientId: rawId, clean: true })
  t.teardown(() => clean.destroy())
  await waitFor(() => otherInbox.messages.length >= 10, { what: () => `the other member got ${otherInbox.messages.length} of 10` })
  const otherGot = otherInbox.messages.map(text)
  for (const p of rawPayloads) t.ok(otherGot.includes(p), `${p} went to the other member once the session ended`)
  t.same(duplicates(otherGot), [], 'nothing twice')
  const s = await waitForGroup(server, key, s => s?.inflight === 0, 'all acknowledged')
  t.equal(s?.redelivered, 5)
  t.equal(s?.membersOnline, 1)
  t.equal(s?.membersOffline, 0, 'the ended session is no longer a member')
  await sleep(200)
  t.equal(takePublishes(clean).length, 0, 'the clean session gets none of them')
})

t.test('a message given to a member but not yet sent (held by its full window) goes back to the group at once, even with session-end', async (t) => {
  const server = await startTestServer(t, { sharedRedelivery: 'session-end' })
  const key = '$share/held/jobs/#'
  const port = tcpPort(server)
  // the slow member's window (Receive Maximum 1) is taken by the copy of its
  // own non-shared subscription (identifier 2), which aedes writes before the
  // group's copy (identifier 1) that was given to the member meanwhile
  const slow = await rawMember(t, port, { clientId: shareId('a-slow'), receiveMaximum: 1, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(slow, [{ topic: key, qos: 1 }], { subscriptionIdentifier: 1 }), [1])
  t.same(await rawSubscribe(slow, [{ topic: 'jobs/#', qos: 1 }], { subscriptionIdentifier: 2 }), [1])
  await waitForMembers(server, key, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/q', 'm0', { qos: 1 })
  const [first] = await nextPublishes(slow, 1)
  t.equal(first?.properties?.subscriptionIdentifier, 2, 'the slow member was sent the copy of its non-shared subscription')
  await sleep(200)
  t.same(takePublishes(slow), [], 'and nothing else (Receive Maximum 1) [MQTT-3.3.4-9]')
  const held = groupStats(server, key)
  t.comment(`group: ${JSON.stringify(held)}`)
  t.equal(held?.inflight, 1, 'the group\'s copy was given to the slow member, and waits in its window')

  const fast = await connectClient(t, tcpUrl(server), { clientId: shareId('b-fast') })
  const fastInbox = collect(fast)
  await fast.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)
  slow.socket.destroy()
  await waitFor(() => fastInbox.messages.length >= 1, { what: 'the fast member gets the message the slow member was never sent (the slow member\'s session lives 300 s)' })
  await sleep(300)
  t.same(fastInbox.messages.map(text), ['m0'], 'once')
  const s = await waitForGroup(server, key, s => s?.inflight === 0 && s.delivered === 1, 'acknowledged by the fast member')
  t.equal(s?.redelivered, 0, 'not counted as a redelivery: it had not been sent')
  t.equal(s?.membersOffline, 1, 'the slow member\'s session lives on')
})

t.test('[MQTT-3.3.1-1] a shared message sent again to a resumed session has DUP set', async (t) => {
  const server = await startTestServer(t, { sharedRedelivery: 'session-end' })
  const key = '$share/dup/jobs/#'
  const port = tcpPort(server)
  const id = shareId('member')
  const raw = await rawMember(t, port, { clientId: id, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 1 }]), [1])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/q', 'once', { qos: 1 })
  const [first] = await nextPublishes(raw, 1)
  t.equal(first?.dup, false, 'the first delivery has DUP 0')
  raw.socket.destroy()
  await waitForGroup(server, key, s => s?.membersOffline === 1, 'the member offline')
  const back = await RawClient.connect(port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } })
  t.teardown(() => back.destroy())
  const [again] = await nextPublishes(back, 1)
  t.equal(again?.messageId, first?.messageId, 'the same packet identifier')
  t.equal(again?.dup, true, 'DUP 1 on the re-delivery')
})

t.test('immediate, persistent member: what went to the other member is not sent again when it resumes its session (stale copies dropped)', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/stale/jobs/#'
  const port = tcpPort(server)
  const rawId = shareId('a-raw')
  const raw = await rawMember(t, port, { clientId: rawId, receiveMaximum: 5, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 1 }]), [1])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, 10, i => ({ topic: 'jobs/q', payload: `m${i}` }), 1)
  const rawPayloads = (await nextPublishes(raw, 5)).map(text)
  raw.socket.destroy()
  await waitFor(() => otherInbox.messages.length >= 10, { what: () => `the other member got ${otherInbox.messages.length} of 10` })
  t.ok(rawPayloads.every(p => otherInbox.messages.map(text).includes(p)), 'the raw member\'s 5 went to the other member at once')
  await waitForGroup(server, key, s => s?.inflight === 0 && s.delivered === 10, 'all acknowledged')

  const back = await RawClient.connect(port, 5, { clientId: rawId, clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 5 } })
  t.teardown(() => back.destroy())
  await sleep(500)
  t.same(takePublishes(back).map(text), [], 'the resumed member is not sent them again')
  t.equal(groupStats(server, key)?.membersOnline, 2, 'and is a member again')
})

t.test('QoS 2 sent to a member whose session ends is not sent to another member (spec 4.8.2)', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/q2/jobs/#'
  const raw = await rawMember(t, tcpPort(server), { clientId: shareId('a-raw') })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 2 }]), [2])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 2 })
  await waitForMembers(server, key, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/q', 'exactly-once', { qos: 2 })
  const [p] = await nextPublishes(raw, 1)
  t.equal(p?.qos, 2)
  raw.socket.destroy()
  const s = await waitForGroup(server, key, s => s?.membersOnline === 1 && s.inflight === 0, 'the raw member gone')
  await sleep(500)
  t.same(otherInbox.messages.map(text), [], 'the other member did not get it')
  t.equal(s?.dropped, 1, 'counted as dropped')
  t.equal(s?.redelivered, 0)
})

/** A persistent member (raw: it never acknowledges) was sent a QoS 2 message and its connection dropped; a second member stays online. */
async function qos2HeldOffline (t: Test, name: string): Promise<{ server: CulexServer, key: string, port: number, rawId: string, otherInbox: ReturnType<typeof collect>, sent: IPublishPacket | undefined }> {
  const server = await startTestServer(t)
  const key = `$share/${name}/jobs/#`
  const port = tcpPort(server)
  const rawId = shareId('a-raw')
  const raw = await rawMember(t, port, { clientId: rawId, clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(raw, [{ topic: key, qos: 2 }]), [2])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const otherInbox = collect(other)
  await other.subscribeAsync(key, { qos: 2 })
  await waitForMembers(server, key, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/q', 'exactly-once', { qos: 2 })
  const [sent] = await nextPublishes(raw, 1)
  raw.socket.destroy()
  await waitForGroup(server, key, s => s?.membersOffline === 1, 'the raw member offline')
  return { server, key, port, rawId, otherInbox, sent }
}

t.test('immediate, persistent member: an unacknowledged QoS 2 message stays with its session and is sent again when it resumes', async (t) => {
  const { port, rawId, otherInbox, sent } = await qos2HeldOffline(t, 'q2p')
  await sleep(500)
  t.same(otherInbox.messages.map(text), [], 'not sent to the other member [spec 4.8.2]')
  const back = await RawClient.connect(port, 5, { clientId: rawId, clean: false, properties: { sessionExpiryInterval: 300 } })
  t.teardown(() => back.destroy())
  const [again] = await nextPublishes(back, 1)
  t.equal(again && text(again), 'exactly-once', 'the resumed member gets it again')
  t.equal(again?.messageId, sent?.messageId, 'with the same packet identifier')
})

t.test('[MQTT-4.8.2-5] persistent member: an unacknowledged QoS 2 message is discarded when a Clean Start connection ends its session, sent to no other member nor to the new session', async (t) => {
  const { server, key, port, rawId, otherInbox } = await qos2HeldOffline(t, 'q2c')
  const clean = await RawClient.connect(port, 5, { clientId: rawId, clean: true })
  t.teardown(() => clean.destroy())
  const s = await waitForGroup(server, key, s => s?.membersOffline === 0 && s.inflight === 0, 'the ended session gone from the group')
  await sleep(500)
  t.same(otherInbox.messages.map(text), [], 'the other member did not get it')
  t.equal(s?.dropped, 1, 'counted as dropped')
  t.equal(s?.redelivered, 0)
  t.same(takePublishes(clean), [], 'nor the new session')
})
