/**
 * A QoS 2 message a cluster-wide shared group sent to a member stays with the
 * member's session wherever that session resumes [MQTT-4.8.2-4]
 * (lib/shared/session-held.ts, lib/broker/cluster-shared.ts): the node that
 * sent it hands its stream entry to the session (a consumer of its own), so
 * neither the session's move nor the node's death gives it to another
 * member; the node the session resumes on lets the session's retransmission
 * out and settles the entry at the member's PUBREC. A session that expires
 * instead, or that a Clean Start connection ends (on its node or another):
 * the message is discarded, sent to no other member nor to the new session,
 * its entry settled, and its memberships leave Redis [MQTT-4.8.2-5].
 */
import t, { type Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { redisCli, type RedisProcess, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { nextPublishes, rawMember, rawSubscribe, takePublishes, text } from '../../helpers/share.js'
import type { CulexProcess } from '../../helpers/cli.js'

const KEY = '$share/q2/exact/#'
const STREAM = `culex:share:{${KEY}}`
const SESSION = { clientId: 'q2-member', clean: false, properties: { sessionExpiryInterval: 300 } }

interface Setup { redis: RedisProcess, a: CulexProcess, b: CulexProcess, c: CulexProcess, sent: mqtt.IPublishPacket, other: ReturnType<typeof collect> }

/** A persistent member on node B got 'exactly-once' at QoS 2 and dropped its connection before PUBREC; a second member is on node A. */
async function sentToMemberOnB (t: Test, sessionExpiryInterval = 300): Promise<Setup> {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const raw = await rawMember(t, b.port, { clientId: SESSION.clientId, clean: false, sessionExpiryInterval })
  t.same(await rawSubscribe(raw, [{ topic: KEY, qos: 2 }]), [2])
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  await waitFor(async () => {
    await publisher.publishAsync('exact/probe', 'probe', { qos: 1 })
    return raw.packets.some((p) => p.cmd === 'publish')
  }, { timeout: 5000, step: 100, what: 'the group known on node A' })
  await sleep(300)
  for (const probe of takePublishes(raw)) raw.send({ cmd: 'puback', messageId: probe.messageId ?? 0 })
  await publisher.publishAsync('exact/q', 'exactly-once', { qos: 2 })
  const [sent] = await nextPublishes(raw, 1)
  t.equal(sent?.qos, 2, 'sent at QoS 2 to the member on B')
  // a second member, on node A, once the message is the first member's
  const onA = await connectClient(t, a.url, { clientId: 'q2-other', protocolVersion: 5 })
  const other = collect(onA)
  await onA.subscribeAsync(KEY, { qos: 2 })
  raw.socket.destroy()
  return { redis, a, b, c, sent: sent as mqtt.IPublishPacket, other }
}

/** The member resumes on `node`: the message again, same packet id; its PUBREC settles it for the group. */
async function resumeOn (t: Test, s: Setup, node: 'b' | 'c'): Promise<void> {
  t.match(redisCli(s.redis, 'XINFO', 'CONSUMERS', STREAM, 'culex'), /"\$session\/q2-member"\s+3\) "pending"\s+4\) \(integer\) 1/, 'in Redis the entry is pending for the member\'s session, not for a node')
  const back = await RawClient.connect(s[node].port, 5, SESSION)
  t.teardown(() => back.destroy())
  const [again] = await nextPublishes(back, 1, 8000)
  t.equal(again && text(again), 'exactly-once', `the member, resumed on node ${node.toUpperCase()}, gets the message its session held [MQTT-4.8.2-4]`)
  t.equal(again?.messageId, s.sent.messageId, 'with the packet identifier it was sent with')
  t.equal(again?.dup, true, 'marked DUP [MQTT-3.3.1-1]')
  back.send({ cmd: 'pubrec', messageId: again?.messageId ?? 0 })
  const pubrel = await back.next('pubrel', 5000) as mqtt.IPubrelPacket
  t.equal(pubrel.messageId, again?.messageId, 'PUBREL for it')
  back.send({ cmd: 'pubcomp', messageId: pubrel.messageId ?? 0 })
  await waitFor(() => redisCli(s.redis, 'XLEN', STREAM) === '(integer) 0', { timeout: 5000, what: () => `the entry settled at the PUBREC (${redisCli(s.redis, 'XRANGE', STREAM, '-', '+')})` })
  await waitFor(() => !redisCli(s.redis, 'XINFO', 'CONSUMERS', STREAM, 'culex').includes('$session/'), { timeout: 8000, what: 'the session\'s consumer, holding nothing, removed by the sweep' })
  t.same(s.other.messages.map((m) => m.payload.toString()), [], 'never sent to the member on node A [MQTT-4.8.2-4]')
  t.same(takePublishes(back), [], 'and not twice to the member')
}

t.test('QoS 2 sent to a persistent member on node B, which drops before PUBREC and resumes on node B: sent again, settled at the PUBREC; the member on node A never gets it [MQTT-4.8.2-4]', async (t) => {
  const s = await sentToMemberOnB(t)
  await sleep(1000)
  await resumeOn(t, s, 'b')
})

t.test('QoS 2 sent to a persistent member on node B, which drops before PUBREC and resumes on node C: C sends it again and settles it at the PUBREC; the member on node A never gets it [MQTT-4.8.2-4]', async (t) => {
  const s = await sentToMemberOnB(t)
  await sleep(1000)
  await resumeOn(t, s, 'c')
})

t.test('QoS 2 sent to a persistent member on node B, then node B SIGKILLed: its lease ends and its entries go back, but not this one; the member resumes on node C and gets it [MQTT-4.8.2-4]', async (t) => {
  const s = await sentToMemberOnB(t)
  s.b.child.kill('SIGKILL')
  await s.b.exit
  // past the lease (3 s) and the sweep that hands a dead node's entries back
  await sleep(5000)
  t.same(s.other.messages.map((m) => m.payload.toString()), [], 'the dead node\'s QoS 2 entry was not handed to the member on node A')
  await resumeOn(t, s, 'c')
})

t.test('QoS 2 sent to a persistent member on node B, node B SIGKILLed, and the session expires on the cluster\'s clock: the message is discarded, never sent to the member on node A, and the session\'s memberships leave Redis [MQTT-4.8.2-5]', async (t) => {
  const s = await sentToMemberOnB(t, 3)
  t.equal(redisCli(s.redis, 'EXISTS', `culex:share:member:{${SESSION.clientId}}`), '(integer) 1', 'the persistent session\'s membership is in Redis')
  s.b.child.kill('SIGKILL')
  await s.b.exit
  // the lease (3 s), then the session's 3 s on the cluster's clock
  await waitFor(() => redisCli(s.redis, 'XLEN', STREAM) === '(integer) 0', { timeout: 15000, what: () => `the entry settled once the session expired (${redisCli(s.redis, 'XRANGE', STREAM, '-', '+')})` })
  t.notOk(redisCli(s.redis, 'XINFO', 'CONSUMERS', STREAM, 'culex').includes('$session/'), 'the session\'s consumer is gone')
  t.equal(redisCli(s.redis, 'EXISTS', `culex:share:member:{${SESSION.clientId}}`), '(integer) 0', 'and its memberships')
  const publisher = await connectClient(t, s.a.url, { clientId: 'publisher-after', protocolVersion: 5 })
  await publisher.publishAsync('exact/after', 'after', { qos: 2 })
  await waitFor(() => s.other.messages.length > 0, { timeout: 5000, what: 'the member on node A gets the next message' })
  t.same(s.other.messages.map((m) => m.payload.toString()), ['after'], 'the expired session\'s message never reached the member on node A')
  const back = await RawClient.open(s.c.port, 5)
  t.teardown(() => back.destroy())
  back.send({ cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: SESSION.clientId, clean: false, keepalive: 60, properties: { sessionExpiryInterval: 300 } })
  const connack = await back.next('connack') as mqtt.IConnackPacket
  t.equal(connack.sessionPresent, false, 'the client id connecting again starts a new session')
  await sleep(1000)
  t.same(takePublishes(back), [], 'and gets nothing of the old one')
})

/** The member's client id connects to `node` with Clean Start 1: its old session ends, and the message it held with it [MQTT-4.8.2-5]. */
async function cleanStartOn (t: Test, s: Setup, node: 'b' | 'c'): Promise<void> {
  t.match(redisCli(s.redis, 'XINFO', 'CONSUMERS', STREAM, 'culex'), /"\$session\/q2-member"\s+3\) "pending"\s+4\) \(integer\) 1/, 'in Redis the entry is pending for the member\'s session')
  const fresh = await RawClient.open(s[node].port, 5)
  t.teardown(() => fresh.destroy())
  fresh.send({ cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: SESSION.clientId, clean: true, keepalive: 60, properties: { sessionExpiryInterval: 300 } })
  const connack = await fresh.next('connack') as mqtt.IConnackPacket
  t.equal(connack.sessionPresent, false, `Clean Start on node ${node.toUpperCase()}: a new session`)
  await waitFor(() => redisCli(s.redis, 'XLEN', STREAM) === '(integer) 0', { timeout: 10000, what: () => `the entry settled once the session ended (${redisCli(s.redis, 'XRANGE', STREAM, '-', '+')})` })
  t.match(redisCli(s.redis, 'XPENDING', STREAM, 'culex'), /^1\) \(integer\) 0/, 'nothing pending in the group\'s stream')
  await waitFor(() => !redisCli(s.redis, 'XINFO', 'CONSUMERS', STREAM, 'culex').includes('$session/'), { timeout: 8000, what: 'the ended session\'s consumer removed' })
  const publisher = await connectClient(t, s.a.url, { clientId: 'publisher-after', protocolVersion: 5 })
  await publisher.publishAsync('exact/after', 'after', { qos: 2 })
  await waitFor(() => s.other.messages.length > 0, { timeout: 5000, what: 'the member on node A gets the next message' })
  await sleep(500)
  t.same(s.other.messages.map((m) => m.payload.toString()), ['after'], 'the ended session\'s message never reached the member on node A [MQTT-4.8.2-5]')
  t.same(takePublishes(fresh), [], 'nor the new session on the same client id')
}

t.test('QoS 2 sent to a persistent member on node B, which drops before PUBREC and connects again to node B with Clean Start: the message is discarded, settled in the stream, sent to no member [MQTT-4.8.2-5]', async (t) => {
  const s = await sentToMemberOnB(t)
  await sleep(1000)
  await cleanStartOn(t, s, 'b')
})

t.test('QoS 2 sent to a persistent member on node B, which drops before PUBREC and connects to node C with Clean Start: the message is discarded, settled in the stream, sent to no member [MQTT-4.8.2-5]', async (t) => {
  const s = await sentToMemberOnB(t)
  await sleep(1000)
  await cleanStartOn(t, s, 'c')
})
