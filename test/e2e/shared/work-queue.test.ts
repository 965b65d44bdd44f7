/**
 * Shared groups as work queues a worker pool can trust (README "Work
 * queues"): per-group policy (`sharedGroups`), abandon with backoff
 * (`culex-settle: abandon`), delivery counts (`culex-delivery-count`),
 * poison messages (maxDeliveries), the ack timeout, and dead letters that
 * say why. MQTT 5 stays the law: a refused message is never sent to another
 * member [MQTT-4.8.2-6], a QoS 2 message once sent is never moved
 * [MQTT-4.8.2-4] [MQTT-4.8.2-5].
 *
 * Implemented in lib/shared/ (policy.ts, retries.ts, settle.ts,
 * dead-letters.ts, dispatcher.ts) and lib/protocol/flows/acks.ts.
 */
import t from 'tap'
import type { IPublishPacket, MqttClient } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { nextPublishes, publishMany, rawMember, rawSubscribe, shareId, takePublishes, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { runCulex } from '../../helpers/cli.js'
import { scrape } from '../../helpers/metrics.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const KEY = '$share/jobs/jobs/#'

function userProps (p: IPublishPacket): Record<string, string | string[]> {
  return (p.properties?.userProperties ?? {}) as Record<string, string | string[]>
}

t.test('abandon with a backoff: a job abandoned twice is delivered three times, counts absent, 2, 3, never sooner than the backoff', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', retryBackoff: { initial: 200, factor: 2, max: 1000 } }] })
  const raw = await rawMember(t, tcpPort(server), { clientId: shareId('w') })
  t.same(await rawSubscribe(raw, [{ topic: KEY, qos: 1 }]), [1])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'job', { qos: 1, properties: { contentType: 'text/plain', userProperties: { kind: 'resize' } } })

  const counts: Array<string | string[] | undefined> = []
  const at: number[] = []
  for (let i = 0; i < 3; i++) {
    const [p] = await nextPublishes(raw, 1, 3000)
    at.push(Date.now())
    t.equal(p && text(p), 'job', `delivery ${i + 1}: same payload`)
    t.equal(p?.properties?.contentType, 'text/plain', `delivery ${i + 1}: properties kept`)
    t.equal(p && userProps(p).kind, 'resize', `delivery ${i + 1}: the publisher's user properties kept`)
    counts.push(p && userProps(p)['culex-delivery-count'])
    const settle = i < 2 ? { userProperties: { 'culex-settle': 'abandon' } } : undefined
    raw.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0, ...(settle ? { properties: settle } : {}) })
  }
  t.same(counts, [undefined, '2', '3'], 'the first delivery has no count, then 2 and 3')
  const gaps = [(at[1] as number) - (at[0] as number), (at[2] as number) - (at[1] as number)]
  t.ok((gaps[0] as number) >= 195, `first retry after the backoff's 200 ms (${gaps[0]} ms)`)
  t.ok((gaps[1] as number) >= 395, `second retry after 400 ms (${gaps[1]} ms)`)
  const s = await waitForGroup(server, KEY, s => s?.delivered === 1 && s.inflight === 0, 'completed at the third delivery')
  t.equal(s?.abandoned, 2, 'abandoned counted')
  t.equal(s?.delayed, 0, 'nothing waits for a backoff')
  await sleep(300)
  t.same(takePublishes(raw), [], 'completed: not delivered again')
})

t.test('abandon with culex-settle-delay: the delay asked for, not the backoff; to any member', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', retryBackoff: { initial: 5000, factor: 1, max: 5000 } }] })
  const a = await rawMember(t, tcpPort(server), { clientId: shareId('a') })
  await rawSubscribe(a, [{ topic: KEY, qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'job', { qos: 1 })
  const [p] = await nextPublishes(a, 1)
  // the only other member joins while the job waits: it may get the retry
  const b = await rawMember(t, tcpPort(server), { clientId: shareId('b') })
  await rawSubscribe(b, [{ topic: KEY, qos: 1 }])
  await waitForMembers(server, KEY, 2)
  t.ok(p, 'a got it')
  // a dies without acknowledging: b gets the job, then abandons it with a delay
  a.destroy()
  const start = Date.now()
  const [again] = await nextPublishes(b, 1, 3000)
  t.equal(again && userProps(again)['culex-delivery-count'], '2', 'redelivered after a dropped, with count 2')
  b.send({ cmd: 'puback', messageId: again?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'abandon', 'culex-settle-delay': '50' } } })
  const [third] = await nextPublishes(b, 1, 3000)
  t.ok(Date.now() - start < 3000, 'the 50 ms delay, not the 5 s backoff')
  t.equal(third && userProps(third)['culex-delivery-count'], '3')
  b.send({ cmd: 'puback', messageId: third?.messageId as number, reasonCode: 0 })
  const s = await waitForGroup(server, KEY, s => s?.delivered === 1, 'completed')
  t.equal(s?.redelivered, 1)
  t.equal(s?.abandoned, 1)
})

t.test('QoS 2: abandon on PUBREC; the flow completes (PUBREL, PUBCOMP) and the job comes back as a new delivery', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', retryBackoff: { initial: 50, factor: 1, max: 50 } }] })
  const raw = await rawMember(t, tcpPort(server), { clientId: shareId('w') })
  await rawSubscribe(raw, [{ topic: KEY, qos: 2 }])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'q2', { qos: 2 })
  const [p] = await nextPublishes(raw, 1)
  t.equal(p?.qos, 2)
  raw.send({ cmd: 'pubrec', messageId: p?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'abandon' } } })
  const rel = await raw.next('pubrel')
  raw.send({ cmd: 'pubcomp', messageId: (rel as { messageId: number }).messageId, reasonCode: 0 })
  const [again] = await nextPublishes(raw, 1)
  t.equal(again && text(again), 'q2')
  t.equal(again?.qos, 2)
  t.equal(again && userProps(again)['culex-delivery-count'], '2')
  raw.send({ cmd: 'pubrec', messageId: again?.messageId as number, reasonCode: 0 })
  const rel2 = await raw.next('pubrel')
  raw.send({ cmd: 'pubcomp', messageId: (rel2 as { messageId: number }).messageId, reasonCode: 0 })
  const s = await waitForGroup(server, KEY, s => s?.delivered === 1 && s.inflight === 0, 'completed')
  t.equal(s?.abandoned, 1)
})

t.test('bad settle input is ignored and counted: an unknown value completes, a negative delay falls back to the backoff', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', retryBackoff: { initial: 100, factor: 1, max: 100 } }] })
  const raw = await rawMember(t, tcpPort(server), { clientId: shareId('w') })
  await rawSubscribe(raw, [{ topic: KEY, qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'one', { qos: 1 })
  const [p1] = await nextPublishes(raw, 1)
  raw.send({ cmd: 'puback', messageId: p1?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'later-please' } } })
  let s = await waitForGroup(server, KEY, s => s?.delivered === 1, 'an unknown settle value completes')
  t.equal(s?.invalidSettles, 1, 'counted')
  t.equal(s?.abandoned, 0)

  await pub.publishAsync('jobs/2', 'two', { qos: 1 })
  const [p2] = await nextPublishes(raw, 1)
  const sent = Date.now()
  raw.send({ cmd: 'puback', messageId: p2?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'abandon', 'culex-settle-delay': '-5' } } })
  const [again] = await nextPublishes(raw, 1)
  t.ok(Date.now() - sent >= 95, 'a negative delay is ignored: the backoff applies')
  t.equal(again && text(again), 'two')
  raw.send({ cmd: 'puback', messageId: again?.messageId as number, reasonCode: 0 })
  s = await waitForGroup(server, KEY, s => s?.delivered === 2, 'completed')
  t.equal(s?.invalidSettles, 2, 'the negative delay counted')
  t.equal(s?.abandoned, 1, 'still abandoned')
})

t.test('ack timeout: a connected member that never acknowledges holds its jobs no longer than ackTimeout; they complete at the other member; the late PUBACK changes nothing', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', ackTimeout: 300 }] })
  const stuck = await rawMember(t, tcpPort(server), { clientId: shareId('a-stuck') })
  await rawSubscribe(stuck, [{ topic: KEY, qos: 1 }])
  const good = await connectClient(t, tcpUrl(server), { clientId: shareId('b-good'), protocolVersion: 5 })
  const done = collect(good)
  await good.subscribeAsync(KEY, { qos: 1 })
  await waitForMembers(server, KEY, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  const start = Date.now()
  for (let i = 0; i < 10; i++) await pub.publishAsync(`jobs/${i}`, `job-${i}`, { qos: 1 })
  const held = await nextPublishes(stuck, 5, 2000)
  await done.next(10, 3000)
  const took = Date.now() - start
  t.ok(took < 300 + 1500, `all ten completed at the good member within ackTimeout + margin (${took} ms)`)
  t.same(done.messages.map(text).sort(), Array.from({ length: 10 }, (_, i) => `job-${i}`).sort(), 'every job, once')
  const moved = done.messages.filter(p => userProps(p)['culex-delivery-count'] === '2')
  t.equal(moved.length, held.length, 'the moved jobs carry count 2')
  let s = await waitForGroup(server, KEY, s => s?.delivered === 10 && s.inflight === 0, 'all completed')
  t.equal(s?.timedOut, held.length, 'timed out counted')
  for (const p of held) stuck.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0 })
  await sleep(200)
  s = await waitForGroup(server, KEY, s => s !== undefined, 'stats')
  t.equal(s?.delivered, 10, 'late PUBACKs accepted, change nothing')
  t.equal(done.messages.length, 10, 'no job twice')
})

t.test('[MQTT-4.8.2-4] [MQTT-4.8.2-5] ack timeout never moves a QoS 2 message once sent', async (t) => {
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', ackTimeout: 150 }] })
  const stuck = await rawMember(t, tcpPort(server), { clientId: shareId('a-stuck') })
  await rawSubscribe(stuck, [{ topic: KEY, qos: 2 }])
  const other = await connectClient(t, tcpUrl(server), { clientId: shareId('b-other'), protocolVersion: 5 })
  const got = collect(other)
  await other.subscribeAsync(KEY, { qos: 2 })
  await waitForMembers(server, KEY, 2)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'q2', { qos: 2 })
  const [p] = await nextPublishes(stuck, 1)
  t.equal(p?.qos, 2)
  await sleep(500)
  t.same(got.messages.map(text), [], 'not sent to the other member after the timeout')
  const s = await waitForGroup(server, KEY, s => s !== undefined, 'stats')
  t.equal(s?.timedOut, 0)
  t.equal(s?.inflight, 1, 'still with its member')
})

t.test('a pool of three MQTT 5 workers, 500 jobs, one poison job that kills its worker: 499 complete exactly once, the poison job is dead-lettered after maxDeliveries', async (t) => {
  const MAX = 3
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', maxDeliveries: MAX, deadLetterTopic: '$dlq/{group}/{topic}' }] })
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq'), protocolVersion: 5 })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })
  const completed = new Map<string, number>()
  const poisonCounts: Array<string | string[] | undefined> = []
  let takenDown = 0
  const workers: MqttClient[] = []
  for (let i = 0; i < 3; i++) {
    // persistent sessions: a pool whose members all crashed at once keeps its queue
    const w = await connectClient(t, tcpUrl(server), { clientId: shareId(`w${i}`), protocolVersion: 5, clean: false, reconnectPeriod: 50, properties: { receiveMaximum: 1, sessionExpiryInterval: 60 } })
    w.on('message', (_topic, payload, packet) => {
      const job = payload.toString()
      if (job === 'poison') {
        poisonCounts.push(userProps(packet)['culex-delivery-count'])
        takenDown++
        // the worker dies without acknowledging
        w.stream.destroy()
        return
      }
      completed.set(job, (completed.get(job) ?? 0) + 1)
    })
    await w.subscribeAsync(KEY, { qos: 1 })
    workers.push(w)
  }
  await waitForMembers(server, KEY, 3)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await publishMany(pub, 500, i => ({ topic: `jobs/${i}`, payload: i === 137 ? 'poison' : `job-${i}`, opts: { properties: { correlationData: Buffer.from(`c${i}`) } } }))
  const [d] = await dead.next(1, 15000)
  await waitFor(() => completed.size === 499, { timeout: 15000, what: () => `499 jobs completed (${completed.size})` })
  t.equal(d?.topic, '$dlq/jobs/jobs/137', 'dead-lettered to the group\'s topic')
  t.equal(d && text(d), 'poison', 'payload kept')
  t.same(d?.properties?.correlationData, Buffer.from('c137'), 'MQTT 5 properties kept')
  const up = d ? userProps(d) : {}
  t.equal(up['culex-reason'], 'max-deliveries')
  t.equal(up['culex-delivery-count'], String(MAX))
  t.match(up['culex-client-id'], /^w[012]-/, 'the last member')
  t.equal(up['culex-original-topic'], 'jobs/137')
  t.same([...completed.values()].filter(n => n !== 1), [], 'every other job completed exactly once')
  t.equal(takenDown, MAX, `workers taken down ${MAX} times, no more`)
  t.same(poisonCounts, [undefined, '2', '3'], 'the poison job\'s deliveries counted')
  const s = await waitForGroup(server, KEY, s => s?.poison === 1, 'poison counted')
  t.same(s?.deadLetteredBy, { rejected: 0, 'max-deliveries': 1 })
  t.equal(s?.delivered, 499)
})

t.test('a policy with maxDeliveries 0: culex exits 2 with one line naming the field', async (t) => {
  const run = await runCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--shared-groups', '[{"pattern":"jobs","maxDeliveries":0}]'])
  t.equal(run.code, 2)
  t.equal(run.stderr.trim().split('\n').length, 1, 'one line')
  t.match(run.stderr, /sharedGroups\[0\]\.maxDeliveries \(--shared-groups\)/)
})

t.test('[MQTT-4.8.2-6] dead letters you can act on: a refused message is not sent to another member, its Reason String kept; replayed from a durable dead-letter group back into the group; figures in Prometheus, $SYS and stats()', async (t) => {
  const server = await startTestServer(t, { sysInterval: 1, sharedGroups: [{ pattern: 'jobs', deadLetterTopic: '$dlq/{group}/{topic}' }] })
  // the dead letters wait in a durable group whose only member is offline
  const keeper = await rawMember(t, tcpPort(server), { clientId: shareId('dlq-keeper'), clean: false, sessionExpiryInterval: 300 })
  await rawSubscribe(keeper, [{ topic: '$share/dlq/$dlq/#', qos: 1 }])
  keeper.destroy()
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq-watch'), protocolVersion: 5 })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })
  const sysClient = await connectClient(t, tcpUrl(server), { clientId: shareId('sys'), protocolVersion: 5 })
  const sys = collect(sysClient)
  await sysClient.subscribeAsync('$SYS/broker/shared/jobs/#', { qos: 0 })

  const worker = await rawMember(t, tcpPort(server), { clientId: shareId('w') })
  await rawSubscribe(worker, [{ topic: KEY, qos: 1 }])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/7', 'bad', { qos: 1, properties: { contentType: 'application/json', correlationData: Buffer.from('k7'), userProperties: { tenant: 'a' } } })
  const [p] = await nextPublishes(worker, 1)
  worker.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0x80, properties: { reasonString: 'schema mismatch' } })
  const [d] = await dead.next(1)
  const up = d ? userProps(d) : {}
  t.equal(d?.topic, '$dlq/jobs/jobs/7')
  t.equal(up['culex-reason'], 'rejected')
  t.equal(up['culex-reason-code'], '0x80')
  t.equal(up['culex-reason-string'], 'schema mismatch', 'the refusing PUBACK\'s Reason String')
  t.equal(up.tenant, 'a', 'the publisher\'s user properties kept')
  t.equal(d?.properties?.contentType, 'application/json')
  await waitForGroup(server, '$share/dlq/$dlq/#', s => s?.queued === 1, 'the dead letter waits in the durable dead-letter group')

  const m = await scrape(server)
  t.equal(m.get('culex_shared_group_dead_letters_total', { group: KEY, reason: 'rejected' }), 1, 'Prometheus: dead letters by reason')
  t.equal(m.get('culex_shared_group_poison_total', { group: KEY }), 0)
  await waitFor(() => sys.messages.some(x => x.topic === '$SYS/broker/shared/jobs/jobs%2F%23/deadlettered' && text(x) === '1'), { timeout: 4000, what: '$SYS deadlettered 1' })

  const groups = server.broker.sharedGroups
  t.same(await groups?.replayDeadLetters('$share/dlq/$dlq/#'), { replayed: 1, skipped: 0 }, 'replayed')
  const [again] = await nextPublishes(worker, 1)
  t.equal(again?.topic, 'jobs/7', 'back on its original topic, in its group')
  t.equal(again && text(again), 'bad')
  t.same(again && userProps(again), { tenant: 'a' }, 'without the culex-* properties, count reset')
  t.same(again?.properties?.correlationData, Buffer.from('k7'))
  worker.send({ cmd: 'puback', messageId: again?.messageId as number, reasonCode: 0 })
  const s = await waitForGroup(server, KEY, s => s?.delivered === 1, 'the replayed job completed')
  t.same(s?.deadLetteredBy, { rejected: 1, 'max-deliveries': 0 })
  t.equal((await waitForGroup(server, '$share/dlq/$dlq/#', s => s?.queued === 0, 'the dead-letter group is empty'))?.queued, 0)
  t.equal(await groups?.replayDeadLetters('$share/none/x'), undefined, 'no such group')
})
