/**
 * A member refuses a shared message (PUBACK or PUBREC with a reason code of
 * 0x80 or more): the server MUST NOT send it to another member (spec 4.8.2);
 * culex discards it, or publishes it to the dead-letter topic
 * (`sharedDeadLetterTopic`, e.g. `$dlq/{group}/{topic}`) with user properties
 * saying who refused it, why, and where it came from.
 *
 * Implemented in lib/shared/dispatcher.ts (onAck, deadLetter) and
 * lib/protocol/flows/acks.ts (onClientPuback, onClientPubrec).
 */
import t, { type Test } from 'tap'
import type mqtt from 'mqtt-packet'
import type { IPublishPacket } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import type { CulexServer } from '../../../lib/server.js'
import type { RawClient } from '../../helpers/raw.js'
import { nextPublishes, rawMember, rawSubscribe, shareId, takePublishes, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep } from '../../helpers/wait.js'

const KEY = '$share/workers/jobs/#'
const DLQ = '$dlq/{group}/{topic}'

/** A raw member that sorts first (round-robin gives it the first message) and an MQTT.js member. */
async function group (t: Test, server: CulexServer, qos: 1 | 2): Promise<{ raw: RawClient, rawId: string, other: ReturnType<typeof collect> }> {
  const rawId = shareId('a-raw')
  const raw = await rawMember(t, tcpPort(server), { clientId: rawId })
  t.same(await rawSubscribe(raw, [{ topic: KEY, qos }]), [qos], `raw member granted QoS ${qos}`)
  const otherClient = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other') })
  const other = collect(otherClient)
  await otherClient.subscribeAsync(KEY, { qos })
  await waitForMembers(server, KEY, 2)
  return { raw, rawId, other }
}

t.test('PUBACK 0x80: the message is discarded, not sent to another member [spec 4.8.2]', async (t) => {
  const server = await startTestServer(t)
  const { raw, other } = await group(t, server, 1)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/1', 'refused', { qos: 1 })
  const [p] = await nextPublishes(raw, 1)
  t.equal(p && text(p), 'refused', 'the raw member got the first message')
  raw.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0x80 })
  const s = await waitForGroup(server, KEY, s => s?.inflight === 0 && s.queued === 0, 'the refused message finished')
  await sleep(500)
  t.same(other.messages.map(text), [], 'the other member did not get it')
  t.same(takePublishes(raw), [], 'nor did the raw member get it again')
  t.equal(s?.dropped, 1, 'counted as dropped')
  t.equal(s?.delivered, 0, 'not as delivered')
  t.equal(s?.deadLettered, 0, 'no dead-letter topic configured')

  await pub.publishAsync('jobs/1', 'next', { qos: 1 })
  await other.next(1)
  await sleep(200)
  t.same(other.messages.map(text), ['next'], 'the next message goes to the other member, as usual')
})

function userProps (p: IPublishPacket): Record<string, string | string[]> {
  return (p.properties?.userProperties ?? {}) as Record<string, string | string[]>
}

t.test('PUBACK 0x80 with sharedDeadLetterTopic $dlq/{group}/{topic}: the message appears on $dlq/workers/jobs/1 with the reason, the member, the group and the original topic', async (t) => {
  const server = await startTestServer(t, { sharedDeadLetterTopic: DLQ })
  const { raw, rawId, other } = await group(t, server, 1)
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq-watch') })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })

  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/1', 'poison', { qos: 1, properties: { contentType: 'text/plain', userProperties: { 'job-kind': 'resize' } } })
  const [p] = await nextPublishes(raw, 1)
  raw.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0x80 })
  const [d] = await dead.next(1)
  if (!d) return
  t.equal(d.topic, '$dlq/workers/jobs/1', 'on $dlq/{group}/{topic}')
  t.equal(text(d), 'poison', 'with the payload')
  t.equal(d.qos, 1, 'at QoS 1')
  t.equal(d.properties?.contentType, 'text/plain', 'with the original properties')
  const up = userProps(d)
  t.equal(up['culex-reason-code'], '0x80', 'culex-reason-code')
  t.equal(up['culex-client-id'], rawId, 'culex-client-id: the member that refused it')
  t.equal(up['culex-group'], 'workers', 'culex-group')
  t.equal(up['culex-original-topic'], 'jobs/1', 'culex-original-topic')
  t.equal(up['job-kind'], 'resize', 'and the publisher\'s own user property')
  const s = await waitForGroup(server, KEY, s => s?.deadLettered === 1 && s.inflight === 0, 'dead-lettered')
  t.equal(s?.delivered, 0)
  await sleep(300)
  t.same(other.messages.map(text), [], 'the other member did not get it [spec 4.8.2]')
  t.equal(dead.messages.length, 1, 'dead-lettered once')
})

t.test('another refusal code (0x87 Not authorized) is reported as it was sent', async (t) => {
  const server = await startTestServer(t, { sharedDeadLetterTopic: DLQ })
  const { raw } = await group(t, server, 1)
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq-watch') })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/a/b', 'secret', { qos: 1 })
  const [p] = await nextPublishes(raw, 1)
  raw.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0x87 })
  const [d] = await dead.next(1)
  t.equal(d?.topic, '$dlq/workers/jobs/a/b')
  t.equal(d && userProps(d)['culex-reason-code'], '0x87')
})

t.test('QoS 2, PUBREC 0x80: not sent to another member [spec 4.8.2], dead-lettered, and the flow ends (no PUBREL) [MQTT-4.3.3-4]', async (t) => {
  const server = await startTestServer(t, { sharedDeadLetterTopic: DLQ })
  const { raw, rawId, other } = await group(t, server, 2)
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq-watch') })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 2 })
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/1', 'exactly-once', { qos: 2 })
  const [p] = await nextPublishes(raw, 1)
  t.equal(p?.qos, 2, 'sent at QoS 2')
  raw.send({ cmd: 'pubrec', messageId: p?.messageId as number, reasonCode: 0x80 } as mqtt.IPubrecPacket)
  const [d] = await dead.next(1)
  t.equal(d?.topic, '$dlq/workers/jobs/1')
  t.equal(d && text(d), 'exactly-once')
  if (d) {
    const up = userProps(d)
    t.equal(up['culex-reason-code'], '0x80')
    t.equal(up['culex-client-id'], rawId)
    t.equal(up['culex-group'], 'workers')
    t.equal(up['culex-original-topic'], 'jobs/1')
  }
  const s = await waitForGroup(server, KEY, s => s?.deadLettered === 1 && s.inflight === 0, 'dead-lettered')
  t.equal(s?.delivered, 0)
  await sleep(500)
  t.same(other.messages.map(text), [], 'the other member did not get it')
  t.notOk(raw.packets.some(x => x.cmd === 'pubrel'), 'no PUBREL after a failed PUBREC: the flow is over')
  t.same(takePublishes(raw), [], 'not sent to the refusing member again')
})

t.test('QoS 2, PUBREC 0x80 without a dead-letter topic: discarded, not sent to another member [spec 4.8.2]', async (t) => {
  const server = await startTestServer(t)
  const { raw, other } = await group(t, server, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/1', 'x', { qos: 2 })
  const [p] = await nextPublishes(raw, 1)
  raw.send({ cmd: 'pubrec', messageId: p?.messageId as number, reasonCode: 0x80 } as mqtt.IPubrecPacket)
  const s = await waitForGroup(server, KEY, s => s?.inflight === 0 && s.dropped === 1, 'dropped')
  t.equal(s?.delivered, 0)
  await sleep(500)
  t.same(other.messages.map(text), [], 'the other member did not get it')
})

t.test('a successful PUBACK after a refusal by another member is unaffected: nothing is dead-lettered', async (t) => {
  const server = await startTestServer(t, { sharedDeadLetterTopic: DLQ })
  const { raw, other } = await group(t, server, 1)
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq-watch') })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await pub.publishAsync('jobs/1', 'one', { qos: 1 })
  await pub.publishAsync('jobs/1', 'two', { qos: 1 })
  const [p] = await nextPublishes(raw, 1)
  raw.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0 })
  await other.next(1)
  const s = await waitForGroup(server, KEY, s => s?.delivered === 2 && s.inflight === 0, 'both delivered')
  t.equal(s?.deadLettered, 0)
  await sleep(200)
  t.equal(dead.messages.length, 0, 'nothing on the dead-letter topic')
})
