/**
 * Redis refusing writes (out of memory: maxmemory reached with noeviction):
 * a retained QoS 1 PUBLISH whose Redis write is refused gets a clear answer
 * at once, not a hang: MQTT 5 its PUBACK with 0x80 and the reason, the
 * connection going on; 3.1.1 a closed connection. The message reaches no
 * subscriber, the node keeps serving its other clients, and retained writes
 * work again once Redis has memory.
 */
import t from 'tap'
import type { ErrorWithReasonCode, IPublishPacket, MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { readyz, redisCli, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const closed = (client: MqttClient): Promise<void> => new Promise((resolve) => { client.once('close', () => resolve()) })

t.test('Redis out of memory: a retained QoS 1 PUBLISH gets PUBACK 0x80 (3.1.1: closed), others are served, and it works again once memory is freed', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { redis: { args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] } })
  const v5 = await connectClient(t, a.url, { clientId: 'writer-5', protocolVersion: 5 })
  const v4 = await connectClient(t, a.url, { clientId: 'writer-4', protocolVersion: 4 })
  const qos2 = await connectClient(t, a.url, { clientId: 'writer-5-q2', protocolVersion: 5 })
  const watcher = await connectClient(t, a.url, { clientId: 'watcher', protocolVersion: 5 })
  const watched = collect(watcher)
  await watcher.subscribeAsync(['w/#', 'o/#'], { qos: 1 })
  const before = await connectClient(t, b.url, { clientId: 'before', protocolVersion: 5 })
  await before.publishAsync('w/kept', 'kept', { qos: 1, retain: true })

  // one key past maxmemory: every write Redis is asked for is refused with OOM
  redisCli(redis, 'SETRANGE', 'filler', String(6 * 1024 * 1024), 'x')
  t.match(redisCli(redis, 'SET', 'probe', '1'), /^\(error\) OOM command not allowed/, 'Redis refuses writes')

  const sentAt = Date.now()
  let refusal: ErrorWithReasonCode | undefined
  try {
    await v5.publishAsync('w/oom', 'refused', { qos: 1, retain: true })
  } catch (err) {
    refusal = err as ErrorWithReasonCode
  }
  const after = Date.now() - sentAt
  t.ok(after < 1500, `MQTT 5: answered within ${after} ms`)
  t.equal(refusal?.code, 0x80, 'MQTT 5: PUBACK 0x80 Unspecified error')
  await sleep(200)
  t.equal(v5.connected, true, 'MQTT 5: the connection goes on')
  await v5.publishAsync('o/v5', 'still here', { qos: 1 })

  const gone = closed(v4)
  await waitFor(async () => (await readyz(a)).status === 503, { timeout: 3000, what: '/readyz 503: leases cannot be renewed either' })
  const v5q2 = await connectClient(t, a.url, { clientId: 'writer-5-qos2', protocolVersion: 5 }).catch(() => undefined)
  t.equal(v5q2, undefined, 'a new CONNECT is refused while Redis refuses writes')
  let q2reason: number | undefined
  const q2gone = new Promise<void>((resolve) => {
    qos2.on('disconnect', (packet) => { q2reason = packet.reasonCode })
    qos2.once('close', () => resolve())
  })
  qos2.publish('w/oom2', 'refused', { qos: 2, retain: true })
  await q2gone
  t.equal(q2reason, 0x80, 'MQTT 5, QoS 2: DISCONNECT 0x80 (no PUBREC)')

  let acked = false
  v4.publish('w/oom4', 'refused', { qos: 1, retain: true }, (err) => { if (err === undefined || err === null) acked = true })
  await gone
  t.equal(acked, false, '3.1.1: the connection is closed, no PUBACK (none can say why)')

  await watcher.publishAsync('o/local', 'served', { qos: 1 })
  await waitFor(() => watched.messages.some((m) => m.topic === 'o/local') && watched.messages.some((m) => m.topic === 'o/v5'), { timeout: 3000, what: 'local QoS 1 traffic still served' })
  // w/kept, published on b before, may reach a's watcher by QoS 1 routing
  t.same(watched.messages.filter((m) => m.topic.startsWith('w/oom')).map((m) => m.topic), [], 'the refused messages reached no subscriber')
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{w/oom}'), '(integer) 0', 'not in Redis')

  redisCli(redis, 'DEL', 'filler')
  await waitFor(async () => (await readyz(a)).status === 200 && (await readyz(b)).status === 200, { timeout: 5000, what: '/readyz 200 on both nodes once Redis has memory' })
  await v5.publishAsync('w/after', 'stored', { qos: 1, retain: true })
  t.equal(redisCli(redis, 'EXISTS', 'culex:retained:{w/after}'), '(integer) 1', 'a retained write works again')
  const reader = await connectClient(t, b.url, { clientId: 'reader', protocolVersion: 5 })
  const got = collect(reader)
  await reader.subscribeAsync('w/#', { qos: 1 })
  await waitFor(() => got.messages.length >= 2, { timeout: 3000, what: 'the retained messages on b' })
  await sleep(200)
  t.same(got.messages.map((m: IPublishPacket) => `${m.topic}=${m.payload.toString()}`).sort(), ['w/after=stored', 'w/kept=kept'], 'b holds what Redis holds: not the refused ones')
  const onA = await connectClient(t, a.url, { clientId: 'reader-a', protocolVersion: 5 })
  const gotA = collect(onA)
  await onA.subscribeAsync('w/#', { qos: 1 })
  await waitFor(() => gotA.messages.length >= 2, { timeout: 3000, what: 'the retained messages on a' })
  await sleep(200)
  t.same(gotA.messages.map((m) => `${m.topic}=${m.payload.toString()}`).sort(), ['w/after=stored', 'w/kept=kept'], 'a\'s cache dropped the refused one again')
})
