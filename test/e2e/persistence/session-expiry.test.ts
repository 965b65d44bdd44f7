// Session Expiry and Will Delay across broker restarts (lib/persistence/session-expiry.ts),
// with a real aedes broker on the level store and MQTT.js v5 clients.
import t from 'tap'
import { attachSessionExpiry, createPersistence, type CulexPersistence } from '../../../lib/persistence/index.js'
import { connect, connectAck, endAndWait, inbox, persistentV5, start } from '../../helpers/level-broker.js'
import { collect, tempDir } from '../../helpers/store.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('the deadline is stored when a v5 session goes offline and cleared when it comes back', async (t) => {
  const running = await start(tempDir(t), {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  const client = await connect(t, running.url, persistentV5('meta-1', 300))
  const connected = { expiresAt: null, expiryInterval: 300 }
  await waitFor(async () => JSON.stringify(await running.store.getSession('meta-1')) === JSON.stringify(connected), { timeout: 3000 })
  t.strictSame(await running.store.getSession('meta-1'), connected, 'connected: no deadline, interval known')
  const before = Date.now()
  await endAndWait(running, client)
  const meta = await running.store.getSession('meta-1')
  t.ok(meta?.expiresAt !== null && meta?.expiresAt !== undefined && meta.expiresAt >= before + 300_000 && meta.expiresAt <= Date.now() + 300_000, 'deadline = disconnect time + interval')
  t.equal(running.expiry?.pending, 1, 'timer armed')
  await connect(t, running.url, persistentV5('meta-1', 300))
  await waitFor(async () => running.expiry?.pending === 0 && JSON.stringify(await running.store.getSession('meta-1')) === JSON.stringify(connected), { timeout: 3000 })
  t.strictSame(await running.store.getSession('meta-1'), connected)
  t.equal(running.expiry?.pending, 0, 'timer cleared on reconnect')

  const never = await connect(t, running.url, persistentV5('meta-never', 0xFFFFFFFF))
  await endAndWait(running, never)
  t.strictSame(await running.store.getSession('meta-never'), { expiresAt: null, expiryInterval: 0xFFFFFFFF }, '0xFFFFFFFF never expires')

  const v4 = await connect(t, running.url, { clientId: 'meta-v4', clean: false, protocolVersion: 4 })
  await endAndWait(running, v4)
  // the record says the session exists (Session Present without subscriptions, session-resume.test.ts)
  t.strictSame(await running.store.getSession('meta-v4'), { expiresAt: null }, 'MQTT 3.1.1 sessions have no expiry: no deadline, no interval')
  t.equal(running.expiry?.pending, 0, 'and no timer')
})

t.test('sessions whose expiry passed while the broker was down are wiped at startup, [MQTT-3.1.2-23] the others kept', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir, {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  const short = await connect(t, running.url, persistentV5('short', 1))
  await short.subscribeAsync('exp/#', { qos: 1 })
  await endAndWait(running, short)
  const long = await connect(t, running.url, persistentV5('long', 300))
  await long.subscribeAsync('exp/#', { qos: 1 })
  await endAndWait(running, long)
  const pub = await connect(t, running.url, { clientId: 'exp-pub' })
  await pub.publishAsync('exp/1', 'queued', { qos: 1 })
  await pub.endAsync()
  t.equal(running.store.stats().queued, 2)
  await running.stop()

  await sleep(1200)
  running = await start(dir, {}, { sessionExpiry: true })
  t.match(running.expiry?.startup, { wiped: 1, armed: 1 })
  t.strictSame(await running.store.subscriptionsByClient({ id: 'short' }), [], 'expired session: subscriptions gone')
  t.strictSame(await collect(running.store.outgoingStream({ id: 'short' })), [], 'and its queue')
  t.equal(await running.store.getSession('short'), undefined, 'and its metadata')
  const { sessionPresent: shortPresent } = await connectAck(t, running.url, persistentV5('short', 1))
  t.equal(shortPresent, false, '[MQTT-3.2.2-3] no session present')

  const { client: longBack, sessionPresent } = await connectAck(t, running.url, persistentV5('long', 300))
  t.equal(sessionPresent, true, 'the unexpired session is kept')
  const [msg] = await inbox(longBack).wait(1)
  t.equal(msg?.payload.toString(), 'queued')
})

t.test('a session expiring after a restart is wiped at its deadline', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir, {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  const client = await connect(t, running.url, persistentV5('later', 2))
  await client.subscribeAsync('later/#', { qos: 1 })
  await endAndWait(running, client)
  await running.stop()
  // aedes' own timer died with the broker; the stored deadline survives
  running = await start(dir, {}, { sessionExpiry: true })
  t.match(running.expiry?.startup, { wiped: 0, armed: 1 })
  t.equal((await running.store.subscriptionsByClient({ id: 'later' })).length, 1)
  const deadline = (await running.store.getSession('later'))?.expiresAt ?? 0
  t.ok(deadline > Date.now(), 'the stored deadline is still ahead after the restart')
  await sleep(Math.max(0, deadline - Date.now()))
  await t.resolves(waitFor(async () => (await running.store.subscriptionsByClient({ id: 'later' })).length === 0, { timeout: 3000, what: () => `still there ${Date.now() - deadline} ms after the deadline` }), 'wiped at the deadline')
  t.equal(running.expiry?.pending, 0)
})

t.test('a session that was connected when the process died expires one interval after the restart', async (t) => {
  const dir = tempDir(t)
  const seed = createPersistence({ kind: 'level', dataDir: dir })
  await seed.setup({ id: 'old' })
  await seed.addSubscriptions({ id: 'crashed' }, [{ topic: 'c/#', qos: 1 }])
  await seed.putSession('crashed', { expiresAt: null, expiryInterval: 1 })
  await seed.addSubscriptions({ id: 'forever' }, [{ topic: 'c/#', qos: 1 }])
  await seed.putSession('forever', { expiresAt: null, expiryInterval: 0xFFFFFFFF })
  await seed.close()

  const running = await start(dir, {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  const meta = await running.store.getSession('crashed')
  t.ok(meta?.expiresAt !== null && meta?.expiresAt !== undefined && meta.expiresAt > Date.now(), 'deadline set from the restart')
  const deadline = meta?.expiresAt ?? 0
  await sleep(Math.max(0, deadline - Date.now()))
  await waitFor(async () => (await running.store.subscriptionsByClient({ id: 'crashed' })).length === 0, { timeout: 3000 })
  t.strictSame(await running.store.subscriptionsByClient({ id: 'crashed' }), [], 'wiped at the deadline')
  t.equal((await running.store.subscriptionsByClient({ id: 'forever' })).length, 1, 'a never-expiring session stays')
})

t.test('[MQTT-3.1.2-8] Will Delay across a restart: wills are published when their delay or session ends', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir, {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  const will = (name: string, delay: number) => ({
    topic: `will/${name}`,
    payload: Buffer.from(`${name} is gone`),
    qos: 1 as const,
    retain: false,
    properties: { willDelayInterval: delay, contentType: 'text/plain', userProperties: { who: name } }
  })
  const soon = await connect(t, running.url, { ...persistentV5('will-soon', 300), will: will('soon', 1) })
  // deadlines 1 s, 3 s and 4 s after the loss: the broker is down past the
  // first and back before the second, with room for a slow stop and start
  const late = await connect(t, running.url, { ...persistentV5('will-late', 300), will: will('late', 4) })
  const capped = await connect(t, running.url, { ...persistentV5('will-capped', 3), will: will('capped', 100) })
  const lost = Date.now()
  // network failures: no DISCONNECT, so the wills are due after their delay
  for (const c of [soon, late, capped]) c.stream.destroy()
  for (const id of ['will-soon', 'will-late', 'will-capped']) {
    await waitFor(async () => (await running.store.getSession(id))?.willDelayUntil !== undefined, { timeout: 3000 })
  }
  const meta = await running.store.getSession('will-late')
  t.ok(meta?.willDelayUntil !== undefined && meta.willDelayUntil >= lost + 4000 && meta.willDelayUntil < lost + 5000, 'will deadline stored')
  const cappedUntil = (await running.store.getSession('will-capped'))?.willDelayUntil ?? 0
  t.ok(cappedUntil >= lost + 3000 && cappedUntil < lost + 4000, 'capped by the session expiry')
  const soonUntil = (await running.store.getSession('will-soon'))?.willDelayUntil ?? 0
  t.strictSame(await collect(running.store.streamWill({})), [], "delayed wills are hidden from aedes' will sweep")
  await running.stop()

  await sleep(Math.max(0, soonUntil + 100 - Date.now()))
  running = await start(dir, {}, { sessionExpiry: true })
  t.ok(Date.now() < cappedUntil, `restarted before the next deadline (${cappedUntil - Date.now()} ms to go)`)
  t.equal(running.expiry?.startup.willsPublished, 1, 'the will whose delay passed while down is published at startup')
  const watcher = await connect(t, running.url, { clientId: 'will-watcher' })
  const arrivals = new Map<string, number>()
  watcher.on('message', (topic) => { arrivals.set(topic, Date.now()) })
  const box = inbox(watcher)
  await watcher.subscribeAsync('will/#', { qos: 1 })
  const msgs = await box.wait(2, 8000)
  t.strictSame(msgs.map((m) => m.topic).sort(), ['will/capped', 'will/late'])
  t.ok((arrivals.get('will/capped') ?? 0) >= cappedUntil, 'the capped will not before its deadline')
  t.ok((arrivals.get('will/late') ?? 0) >= (meta?.willDelayUntil ?? Infinity), 'the late will not before its deadline')
  const lateMsg = msgs.find((m) => m.topic === 'will/late')
  t.equal(lateMsg?.properties?.contentType, 'text/plain', 'will properties delivered')
  t.strictSame({ ...lateMsg?.properties?.userProperties }, { who: 'late' })
  t.equal((lateMsg?.properties as Record<string, unknown> | undefined)?.willDelayInterval, undefined, 'Will Delay is not a PUBLISH property')
  await waitFor(() => running.store.stats().wills === 0, { timeout: 3000 })
  t.equal(running.store.stats().wills, 0, 'published wills are deleted')
  t.equal(box.messages.length, 2, 'each will once')
  t.strictSame(await running.store.subscriptionsByClient({ id: 'will-capped' }), [], 'the capped session also ended')
})

t.test('[MQTT-3.1.3-9] a reconnect before the deadline cancels the delayed will, also after a restart', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir, {}, { sessionExpiry: true })
  t.teardown(() => running.stop())
  // 3 s: time for a slow stop, start and reconnect before the deadline
  const c = await connect(t, running.url, { ...persistentV5('will-back', 300), will: { topic: 'will/back', payload: Buffer.from('x'), qos: 1, retain: false, properties: { willDelayInterval: 3 } } })
  c.stream.destroy()
  await waitFor(async () => (await running.store.getSession('will-back'))?.willDelayUntil !== undefined, { timeout: 3000 })
  const deadline = (await running.store.getSession('will-back'))?.willDelayUntil ?? 0
  await running.stop()
  running = await start(dir, {}, { sessionExpiry: true })
  const watcher = await connect(t, running.url, { clientId: 'will-watcher-2' })
  const box = inbox(watcher)
  await watcher.subscribeAsync('will/#', { qos: 1 })
  await connect(t, running.url, persistentV5('will-back', 300))
  t.ok(Date.now() < deadline, `back before the deadline (${deadline - Date.now()} ms to go)`)
  await sleep(Math.max(0, deadline + 300 - Date.now()))
  t.strictSame(box.messages, [], 'no will after the client came back, past the deadline')
  t.equal(running.expiry?.pending, 0)
})

t.test('attach fails loudly when aedes internals it relies on are missing', async (t) => {
  const store: CulexPersistence = createPersistence({ kind: 'memory' })
  const fake = { on () {}, removeListener () {} } as unknown as Parameters<typeof attachSessionExpiry>[0]
  await t.rejects(attachSessionExpiry(fake, store), /aedes internals changed/)
})
