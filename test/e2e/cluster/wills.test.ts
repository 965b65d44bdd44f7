/**
 * Wills across nodes: when a node dies (SIGKILL) the survivors publish the
 * wills of its clients, once each, after their Will Delay; a client that
 * reconnects on another node before its delay ran out has no will published;
 * a delay still running when the survivor timing it dies too is finished by
 * another survivor. Will Delay on a live node is timed by the cluster, so a
 * reconnect on another node cancels it too.
 */
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { connectClient } from '../../helpers/mqtt.js'
import type { CulexProcess } from '../../helpers/cli.js'
import { redisCli, routeReady, startCluster, waitForLog } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { arrivals, count, watchedNodes } from '../../helpers/wills.js'

const LEASE_MS = 3000

/** A client on `node` whose will goes to `topic`. */
async function willClient (t: Parameters<typeof connectClient>[0], node: CulexProcess, clientId: string, topic: string, opts: { version?: 4 | 5, qos?: 0 | 1, delay?: number, retain?: boolean, properties?: Record<string, unknown> } = {}): Promise<MqttClient> {
  const version = opts.version ?? 5
  const properties = opts.delay !== undefined || opts.properties !== undefined ? { ...opts.properties, ...(opts.delay !== undefined ? { willDelayInterval: opts.delay } : {}) } : undefined
  return await connectClient(t, node.url, {
    clientId,
    protocolVersion: version,
    ...(version === 5 ? { clean: false, properties: { sessionExpiryInterval: 60 } } : {}),
    will: { topic, payload: Buffer.from(`will of ${clientId}`), qos: opts.qos ?? 0, retain: opts.retain ?? false, ...(properties !== undefined ? { properties } : {}) }
  })
}

const willsIn = (redis: { port: number }, node: string): number => Number(redisCli(redis, '--raw', 'HLEN', `{culex}:wills:{${node}}`))

t.test('[MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-3.14.4-3] a killed node\'s wills are published by the survivors once each, after their Will Delay, within the lease + 2 s', async (t) => {
  const { redis, a, b, c, gotB, gotC } = await watchedNodes(t, 1)

  await willClient(t, a, 'w-now', 'wills/now')
  await willClient(t, a, 'w-delay', 'wills/delay', { delay: 2 })
  await willClient(t, a, 'w-311', 'wills/311', { version: 4 })
  await willClient(t, a, 'w-qos1', 'wills/qos1', { qos: 1 })
  const bye = await willClient(t, a, 'w-bye', 'wills/bye')
  await waitFor(() => willsIn(redis, 'a') === 5, { timeout: 3000, what: 'a\'s five wills in Redis' })
  await bye.endAsync()
  await waitFor(() => willsIn(redis, 'a') === 4, { timeout: 3000, what: 'the will of the client that sent DISCONNECT 0x00 removed from Redis' })

  const killedAt = Date.now()
  a.child.kill('SIGKILL')
  const topics = ['wills/now', 'wills/311', 'wills/delay']
  await waitFor(() => topics.every((topic) => count(gotB, topic) > 0 && count(gotC, topic) > 0), { timeout: LEASE_MS + 2000 + 2000 + 3000, what: 'the three QoS 0 wills on b and c' })
  await waitFor(() => count(gotB, 'wills/qos1') + count(gotC, 'wills/qos1') > 0, { timeout: 3000, what: 'the QoS 1 will' })
  await sleep(1500)

  // the survivor that moved a's wills says when: their delay counts from then
  const reaped = [b, c].flatMap((n) => n.logs.filter((l) => typeof l.msg === 'string' && l.msg.endsWith('of node a taken over (its lease expired)')))
  t.equal(reaped.length, 1, 'one survivor moved a\'s wills')
  const reapedAt = Number(reaped[0]?.time)
  for (const [name, got] of [['b (MQTT 5)', gotB], ['c (MQTT 3.1.1)', gotC]] as const) {
    for (const topic of topics) t.equal(count(got, topic), 1, `${name}: ${topic} exactly once`)
    const first = (topic: string): number => got.find((m) => m.topic === topic)?.at ?? Infinity
    const now = first('wills/now') - killedAt
    t.ok(now <= LEASE_MS + 2000, `${name}: a will without delay ${now} ms after the kill (lease ${LEASE_MS} ms + 2 s)`)
    t.ok(first('wills/311') - killedAt <= LEASE_MS + 2000, `${name}: the 3.1.1 client's will in time`)
    const delayed = first('wills/delay') - killedAt
    t.ok(first('wills/delay') - reapedAt >= 1900, `${name}: [MQTT-3.1.3-9] the Will Delay of 2 s is respected (${delayed} ms after the kill, ${first('wills/delay') - reapedAt} ms after a's lease was seen expired)`)
    t.ok(delayed <= LEASE_MS + 2000 + 2000, `${name}: the delayed will within the lease + 2 s + its delay`)
    t.equal(got.find((m) => m.topic === 'wills/now')?.payload, 'will of w-now')
  }
  // the survivor that publishes the QoS 1 will routes it to the other survivor's inbox (lib/cluster/inbox.ts)
  const publisher = [b, c].find((n) => n.logs.some((l) => l.msg === 'cluster: published the will of w-qos1'))
  t.ok(publisher !== undefined, 'one survivor says it published the QoS 1 will')
  await waitFor(() => count(gotB, 'wills/qos1') > 0 && count(gotC, 'wills/qos1') > 0, { timeout: 5000, what: 'the QoS 1 will on both survivors' })
  await sleep(200)
  for (const [name, got] of [['b', gotB], ['c', gotC]] as const) {
    t.equal(count(got, 'wills/qos1'), 1, `${name}: the QoS 1 will exactly once, routed between nodes`)
    t.equal(got.find((m) => m.topic === 'wills/qos1')?.qos, 1, `${name}: at QoS 1`)
  }
  t.equal(count(gotB, 'wills/bye') + count(gotC, 'wills/bye'), 0, '[MQTT-3.14.4-3] no will for the client that disconnected with DISCONNECT 0x00 before the kill')
  const published = [b, c].flatMap((n) => n.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: published the will of w-')))
  t.equal(published.length, 4, 'four wills published in all, by the survivors together: none twice')
  t.equal(willsIn(redis, 'a'), 0, 'a\'s wills are gone from Redis')
  t.equal(redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due'), '0', 'nothing left in the due set')
})

t.test('[MQTT-3.1.3-9] a client that reconnects on another node before its Will Delay ran out has no will published', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onB = await connectClient(t, b.url, { clientId: 'watch-b' })
  const onC = await connectClient(t, c.url, { clientId: 'watch-c' })
  const gotB = arrivals(onB)
  const gotC = arrivals(onC)
  await onB.subscribeAsync('wills/#', { qos: 0 })
  await onC.subscribeAsync('wills/#', { qos: 0 })
  await routeReady(onB, 'wills/probe-b', () => count(gotC, 'wills/probe-b') > 0)
  await routeReady(onC, 'wills/probe-c', () => count(gotB, 'wills/probe-c') > 0)

  // a live node: the client drops from b and comes back on c within its delay
  const dropped = await willClient(t, b, 'w-live-back', 'wills/live-back', { delay: 3 })
  const droppedGone = await willClient(t, b, 'w-live-gone', 'wills/live-gone', { delay: 3 })
  dropped.stream.destroy()
  droppedGone.stream.destroy()
  await waitFor(() => redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due') === '2', { timeout: 3000, what: 'both delayed wills in the cluster\'s due set' })
  await willClient(t, c, 'w-live-back', 'wills/other')

  // a dead node: its client comes back on b within its delay
  await willClient(t, a, 'w-dead-back', 'wills/dead-back', { delay: 4 })
  await willClient(t, a, 'w-dead-gone', 'wills/dead-gone', { delay: 4 })
  await waitFor(() => willsIn(redis, 'a') === 2, { timeout: 3000, what: 'a\'s wills in Redis' })
  a.child.kill('SIGKILL')
  await waitForLog(b, (l) => l.msg === 'cluster: node a left', 'b sees a leave', LEASE_MS + 3000)
  await willClient(t, b, 'w-dead-back', 'wills/other')

  await waitFor(() => count(gotB, 'wills/dead-gone') > 0 && count(gotC, 'wills/dead-gone') > 0, { timeout: 4000 + 3000, what: 'the will of the client that did not come back' })
  await sleep(1000)
  for (const [name, got] of [['b', gotB], ['c', gotC]] as const) {
    t.equal(count(got, 'wills/live-gone'), 1, `${name}: the will of the client that left a live node and did not come back, once`)
    t.equal(count(got, 'wills/dead-gone'), 1, `${name}: the will of the dead node's client that did not come back, once`)
    t.equal(count(got, 'wills/live-back'), 0, `${name}: no will for the client back on another live node within its delay`)
    t.equal(count(got, 'wills/dead-back'), 0, `${name}: no will for the dead node's client back on b within its delay`)
  }
})

t.test('a will delay still running when the survivor timing it is killed too is published by the last survivor', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  await willClient(t, a, 'w-late', 'wills/late', { delay: 5 })
  await waitFor(() => willsIn(redis, 'a') === 1, { timeout: 3000, what: 'a\'s will in Redis' })
  a.child.kill('SIGKILL')
  await waitFor(() => redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due') === '1', { timeout: LEASE_MS + 3000, what: 'the will in the due set' })
  let holder = ''
  await waitFor(() => ['b', 'c'].includes(holder = redisCli(redis, '--raw', 'GET', '{culex}:wills:timer')), { timeout: LEASE_MS + 3000, what: 'a survivor holds the timers' })
  const [victim, last] = holder === 'b' ? [b, c] : [c, b]
  const watcher = await connectClient(t, last.url, { clientId: 'watch-last' })
  const got = arrivals(watcher)
  await watcher.subscribeAsync('wills/#', { qos: 0 })
  t.equal(redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due'), '1', `the will's delay is still running when ${holder}, which times it, is killed`)
  const killedAt = Date.now()
  victim.child.kill('SIGKILL')
  await waitFor(() => count(got, 'wills/late') > 0, { timeout: 5000 + LEASE_MS + 3000, what: 'the will published by the last survivor' })
  const after = Date.now() - killedAt
  await sleep(1000)
  t.equal(count(got, 'wills/late'), 1, `the last survivor published the will once (${after} ms after the timer holder was killed)`)
  t.ok(last.logs.some((l) => l.msg === 'cluster: published the will of w-late'), 'by the last survivor')
  t.ok(after <= 5000 + LEASE_MS + 2000, 'within its delay + the lock\'s lease + 2 s')
  t.equal(redisCli(redis, '--raw', 'GET', '{culex}:wills:timer'), last === b ? 'b' : 'c', 'the last survivor holds the timers')
})

t.test('a node paused past its lease (SIGSTOP) counts as gone, but a delayed will of a connection still live when it resumes is not published, and no will twice', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  const watcher = await connectClient(t, b.url, { clientId: 'watch-b' })
  const got = arrivals(watcher)
  await watcher.subscribeAsync('wills/#', { qos: 0 })
  const paused = await willClient(t, a, 'w-paused', 'wills/paused', { delay: 4 })
  const pausedNow = await willClient(t, a, 'w-paused-now', 'wills/paused-now')
  await waitFor(() => willsIn(redis, 'a') === 2, { timeout: 3000, what: 'a\'s wills in Redis' })
  a.child.kill('SIGSTOP')
  await waitForLog(b, (l) => l.msg === 'cluster: 2 will(s) of node a taken over (its lease expired)', 'b moves a\'s wills once a\'s lease expired', LEASE_MS + 3000)
  await waitFor(() => count(got, 'wills/paused-now') > 0, { timeout: 3000, what: 'the will without delay' })
  a.child.kill('SIGCONT')
  await waitForLog(a, (l) => typeof l.msg === 'string' && l.msg.startsWith('this node\'s lease had expired'), 'a sees its lease was lost', 3000)
  await sleep(4000 + 1500)
  t.equal(count(got, 'wills/paused-now'), 1, 'the will without delay was published while a was paused, once')
  t.equal(count(got, 'wills/paused'), 0, 'the delayed will of the connection a still holds is not published')
  t.equal(paused.connected, true, 'that client is still connected to a')
  t.equal(willsIn(redis, 'a'), 1, 'a holds that will again, not the one published meanwhile')
  pausedNow.stream.destroy()
  paused.stream.destroy()
  await waitFor(() => count(got, 'wills/paused') > 0, { timeout: 4000 + 3000, what: 'the delayed will once its client is gone for good' })
  await sleep(1000)
  t.equal(count(got, 'wills/paused-now'), 1, 'the will published during the pause is not published again when its connection ends')
  t.equal(count(got, 'wills/paused'), 1, 'the delayed will, once, after its connection ended')
})

t.test('a retained will of a killed node is published with its MQTT 5 properties and retained cluster-wide', async (t) => {
  const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
  await willClient(t, a, 'w-kept', 'wills/kept', { retain: true, properties: { contentType: 'text/plain', userProperties: { why: 'node died' }, messageExpiryInterval: 600 } })
  await waitFor(() => willsIn(redis, 'a') === 1, { timeout: 3000, what: 'a\'s will in Redis' })
  a.child.kill('SIGKILL')
  await waitFor(() => redisCli(redis, 'EXISTS', 'culex:retained:{wills/kept}') === '(integer) 1', { timeout: LEASE_MS + 3000, what: 'the retained will in Redis' })
  const late = await connectClient(t, b.url, { clientId: 'late' })
  const got = new Promise<{ retain: boolean, properties: unknown, payload: string }>((resolve) => {
    late.on('message', (_topic, payload, packet) => { resolve({ retain: packet.retain, properties: packet.properties, payload: payload.toString() }) })
  })
  await late.subscribeAsync('wills/#', { qos: 0 })
  const message = await got
  t.equal(message.payload, 'will of w-kept')
  t.equal(message.retain, true, 'a later subscriber gets it as a retained message')
  t.match(message.properties, { contentType: 'text/plain', userProperties: { why: 'node died' } }, 'with the will\'s properties')
  t.ok(((message.properties as { messageExpiryInterval?: number } | undefined)?.messageExpiryInterval ?? 0) > 590, 'and its Message Expiry Interval')
})
