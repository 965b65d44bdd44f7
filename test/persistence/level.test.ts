// The level store's data directory: reopening, format version, the lock,
// corrupt values, the body cache and group commit.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { Level } from 'level'
import { encodePacket, encodeRecord } from '../../lib/persistence/codec.js'
import { createPersistence, LevelPersistence, STORE_FORMAT, type CulexPersistence } from '../../lib/persistence/index.js'
import { repeatedLog } from '../../lib/repeated-log.js'
import { captureLogger, collect, expectedProperties, publish, tempDir, v5Properties } from '../helpers/store.js'
import { sleep } from '../helpers/wait.js'

async function open (dataDir: string, extra: Partial<ConstructorParameters<typeof LevelPersistence>[0]> = {}): Promise<LevelPersistence> {
  const store = new LevelPersistence({ dataDir, ...extra })
  await store.setup({ id: 'broker-1' })
  return store
}

t.test('everything is still there after close and reopen', async (t) => {
  const dir = tempDir(t)
  const first = await open(dir)
  const expiry = Date.now() + 100_000
  // overlapping subscriptions, with v5 options
  await first.addSubscriptions({ id: 'sub' }, [
    { topic: 'a/#', qos: 1, rh: 1, rap: true, nl: false },
    { topic: 'a/+/x', qos: 2, subscriptionIdentifier: 9 },
    { topic: 'a/b/x', qos: 1 },
    { topic: 'zero', qos: 0 }
  ])
  // a queue: unsent, in flight, and a QoS 2 in its PUBREL phase
  const m1 = publish('a/1', 'one', { properties: v5Properties(), messageExpiry: expiry })
  const m2 = publish('a/2', 'two', { qos: 2 })
  const m3 = publish('a/3', 'three', { qos: 2 })
  for (const m of [m1, m2, m3]) await first.outgoingEnqueueCombi([{ clientId: 'sub', qos: 2 }], m)
  await first.outgoingUpdate({ id: 'sub' }, { ...m2, messageId: 42 })
  await first.outgoingUpdate({ id: 'sub' }, { ...m3, messageId: 43 })
  await first.outgoingUpdate({ id: 'sub' }, { cmd: 'pubrel', messageId: 43 })
  await first.storeRetained({ ...publish('r/t', 'retained', { properties: v5Properties(), messageExpiry: expiry }), retain: true })
  await first.putWill({ id: 'sub' }, { cmd: 'publish', topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: true, properties: { willDelayInterval: 30, contentType: 'text/plain' } })
  await first.incomingStorePacket({ id: 'pub' }, publish('in', 'q2', { qos: 2, messageId: 7, properties: v5Properties() }))
  await first.putSession('sub', { expiresAt: 123, willDelayUntil: 100, expiryInterval: 300 })
  await first.close()

  const store = await open(dir)
  t.teardown(() => store.close())
  t.strictSame((await store.subscriptionsByClient({ id: 'sub' })).sort((a, b) => a.topic.localeCompare(b.topic)), [
    { topic: 'a/#', qos: 1, rh: 1, rap: true, nl: false },
    { topic: 'a/+/x', qos: 2, subscriptionIdentifier: 9 },
    { topic: 'a/b/x', qos: 1 },
    { topic: 'zero', qos: 0 }
  ], 'subscriptions with their options')
  t.equal((await store.subscriptionsByTopic('a/b/x')).length, 3, 'overlapping subscriptions all match after reload')
  t.strictSame(await store.countOffline(), { subsCount: 3, clientsCount: 1 })

  const queue = await collect(store.outgoingStream({ id: 'sub' }))
  t.strictSame(queue.map((p) => [p.cmd, p.topic, p.messageId]), [
    ['publish', 'a/1', undefined],
    ['publish', 'a/2', 42],
    ['pubrel', undefined, 43]
  ], 'queue order, packet ids and PUBREL state')
  t.strictSame(queue[0]?.properties, expectedProperties())
  t.equal(queue[0]?.messageExpiry, expiry)
  t.strictSame(queue[0]?.payload, Buffer.from('one'))
  t.match(store.stats(), { queued: 2, inflight: 1, pubrels: 1, retained: 1, wills: 1, incoming: 1, sessions: 1 })

  // ids are still matched by broker identity after reload, and new messages queue after the old ones
  await store.outgoingUpdate({ id: 'sub' }, { ...m1, messageId: 41 })
  await store.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('a/4', 'four'))
  t.strictSame((await collect(store.outgoingStream({ id: 'sub' }))).map((p) => p.topic ?? p.cmd), ['a/1', 'a/2', 'pubrel', 'a/4'])
  t.equal((await store.outgoingClearMessageId({ id: 'sub' }, { cmd: 'puback', messageId: 41 }))?.topic, 'a/1')

  const [retained] = await collect(store.createRetainedStream('r/#'))
  t.strictSame(retained?.properties, expectedProperties())
  t.strictSame((await store.getWill({ id: 'sub' }))?.properties, { willDelayInterval: 30, contentType: 'text/plain' })
  t.strictSame((await store.incomingGetPacket({ id: 'pub' }, { messageId: 7 })).properties, expectedProperties())
  t.strictSame(await store.getSession('sub'), { expiresAt: 123, willDelayUntil: 100, expiryInterval: 300 })
})

t.test('a data directory written by a newer format is refused', async (t) => {
  const dir = tempDir(t)
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.put('meta:format', encodeRecord({ format: STORE_FORMAT + 1 }))
  await db.close()
  const store = createPersistence({ kind: 'level', dataDir: dir })
  await t.rejects(store.setup({ id: 'b' }), {
    code: 'CULEX_ERR_DATA_FORMAT_TOO_NEW',
    message: `data directory ${dir} was written in store format ${STORE_FORMAT + 1}, newer than the format ${STORE_FORMAT} this culex reads; upgrade culex`
  })
  // the directory is left untouched and unlocked
  const again = new Level(dir)
  await again.open()
  await again.close()
})

t.test('a data directory culex did not write is refused', async (t) => {
  const dir = tempDir(t)
  const db = new Level(dir)
  await db.put('retained:foo', 'x')
  await db.close()
  await t.rejects(createPersistence({ kind: 'level', dataDir: dir }).open(), { code: 'CULEX_ERR_DATA_DIR_FOREIGN' })
})

t.test('a directory locked by another process gets a clear error', async (t) => {
  const dir = tempDir(t)
  // another process holds the LevelDB LOCK
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    import { Level } from 'level'
    const db = new Level(${JSON.stringify(dir)})
    await db.open()
    console.log('locked')
    process.stdin.on('data', () => {})
    process.stdin.on('end', () => db.close().then(() => process.exit(0)))
  `], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } })
  t.teardown(() => { holder.kill('SIGKILL') })
  const [line] = await once(holder.stdout, 'data') as [Buffer]
  t.equal(line.toString().trim(), 'locked')

  const store = createPersistence({ kind: 'level', dataDir: dir })
  const err = await store.setup({ id: 'b' }).then(() => null, (e: unknown) => e)
  t.match(err, { code: 'CULEX_ERR_DATA_DIR_LOCKED', message: `data directory ${dir} is in use by another culex process` })
  t.match((err as { cause?: { code?: string } }).cause, { code: 'LEVEL_DATABASE_NOT_OPEN' }, 'the LevelDB error is kept as the cause')

  holder.stdin.end()
  await once(holder, 'exit')
  const after = createPersistence({ kind: 'level', dataDir: dir })
  await after.setup({ id: 'b' })
  await after.close()
  t.pass('opens once the other process let go')
})

t.test('values that fail to decode are logged and skipped', async (t) => {
  const dir = tempDir(t)
  const first = await open(dir)
  await first.storeRetained({ ...publish('good/1', 'fine'), retain: true })
  await first.addSubscriptions({ id: 'c' }, [{ topic: 'good/#', qos: 1 }])
  await first.outgoingEnqueueCombi([{ clientId: 'c', qos: 1 }], publish('good/q', 'fine'))
  await first.close()
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.batch([
    { type: 'put', key: 'r:bad/1', value: Buffer.from('garbage') },
    { type: 'put', key: 'r:bad/2', value: encodePacket(publish('bad/2', 'x')).subarray(0, 9) },
    { type: 'put', key: 's:c:bad/#', value: Buffer.from('{') },
    { type: 'put', key: 'q:c:00000000000000ff', value: Buffer.from([0x50, 0, 0, 0, 0, 2, 0x7b]) },
    { type: 'put', key: 'w:%E0%A4%A', value: encodePacket(publish('w', 'x')) },
    { type: 'put', key: 'x:c', value: Buffer.from('J"no"') }
  ])
  await db.close()

  const { logger, lines } = captureLogger()
  const store = await open(dir, { logger })
  t.teardown(() => store.close())
  t.equal(store.stats().corrupt, 6, 'six values skipped')
  // one line at once per kind of record (two retained values: the second is counted, lib/repeated-log.ts)
  t.strictSame(lines.filter((l) => l.msg === 'skipping a stored value that cannot be decoded').map((l) => [l.kind, l.count]).sort(),
    [['q:', 1], ['r:', 1], ['s:', 1], ['w:', 1], ['x:', 1]], 'each kind logged')
  t.match(lines.find((l) => l.msg === 'skipped values that could not be decoded'), { corrupt: 6 }, 'and the total at open')
  t.strictSame((await collect(store.createRetainedStream('#'))).map((p) => p.topic), ['good/1'], 'good data is intact')
  t.strictSame((await store.subscriptionsByClient({ id: 'c' })).map((s) => s.topic), ['good/#'])
  t.strictSame((await collect(store.outgoingStream({ id: 'c' }))).map((p) => p.topic), ['good/q'])
  // the skipped queue key still advances the sequence: new messages sort after it
  await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 1 }], publish('good/after', 'x'))
  t.strictSame((await collect(store.outgoingStream({ id: 'c' }))).map((p) => p.topic), ['good/q', 'good/after'])
})

t.test('a store holding 2,000 undecodable values logs a bounded number of lines that carry their count (issue 13 item 8)', async (t) => {
  const dir = tempDir(t)
  const first = await open(dir)
  await first.storeRetained({ ...publish('good/1', 'fine'), retain: true })
  await first.close()
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.batch(Array.from({ length: 2000 }, (_x, i) => i % 2 === 0
    ? { type: 'put' as const, key: `r:bad/${i}`, value: Buffer.from('garbage') }
    : { type: 'put' as const, key: `q:c:${i.toString(16).padStart(16, '0')}`, value: Buffer.from([0x50, 0, 0, 0, 0, 2, 0x7b]) }))
  await db.close()

  const { logger, lines } = captureLogger()
  const store = await open(dir, { logger })
  t.teardown(() => store.close())
  t.equal(store.stats().corrupt, 2000, '2,000 values skipped')
  const skipping = (): Array<Record<string, unknown>> => lines.filter((l) => l.msg === 'skipping a stored value that cannot be decoded')
  t.equal(skipping().length, 2, 'at open: one line per kind of record (retained, queue), not one per value')
  t.match(lines.find((l) => l.msg === 'skipped values that could not be decoded'), { corrupt: 2000 }, 'the total at open')
  // the interval's end (here: the flush at shutdown) writes the repeats as one line per kind with their count
  repeatedLog.flush()
  t.ok(skipping().length <= 4, `at most two lines per kind (${skipping().length})`)
  t.equal(skipping().reduce((sum, l) => sum + (typeof l.count === 'number' ? l.count : 0), 0), 2000, 'their counts add up to the 2,000 values')
  t.strictSame((await collect(store.createRetainedStream('#'))).map((p) => p.topic), ['good/1'], 'good data is intact')
})

t.test('bodies beyond the cache budget are read back from disk', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir, { cacheBytes: 200 })
  t.teardown(() => store.close())
  const client = { id: 'big' }
  const sent: Array<ReturnType<typeof publish>> = []
  for (let i = 0; i < 100; i++) {
    const p = publish(`c/${i}`, `payload-${i}-`.padEnd(40, 'x'), { properties: { correlationData: Buffer.from([i]) } })
    sent.push(p)
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], p)
  }
  for (let i = 0; i < 20; i++) await store.storeRetained({ ...publish(`ret/${i}`, 'r'.repeat(50)), retain: true })
  t.ok(store.stats().cachedBytes <= 200, `cache within budget (${store.stats().cachedBytes} bytes)`)
  const queue = await collect(store.outgoingStream(client))
  t.equal(queue.length, 100)
  t.ok(queue.every((p, i) => p.payload?.toString() === sent[i]?.payload?.toString() && p.properties?.correlationData?.[0] === i), 'all bodies intact')
  t.equal((await collect(store.createRetainedStream('ret/+'))).length, 20)
  await store.outgoingUpdate(client, { ...sent[99], messageId: 1 })
  const cleared = await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 1 })
  t.equal(cleared?.topic, 'c/99', 'PUBACK of an uncached message returns it')
  t.strictSame(cleared?.payload, sent[99]?.payload)
})

t.test('retained messages in and beyond the cache budget: replacing and removing them keeps the accounting exact', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir, { cacheBytes: 200 })
  t.teardown(() => store.close())
  const retained = (topic: string, payload: string): ReturnType<typeof publish> => ({ ...publish(topic, payload), retain: true })
  // accounted bytes: topic + payload, 3 + 57 = 60 each
  for (const n of ['r/a', 'r/b', 'r/c', 'r/d']) await store.storeRetained(retained(n, n.padEnd(57, 'x')))
  t.equal(store.stats().cachedBytes, 180, 'three fit the budget, the fourth is read from disk')
  await store.storeRetained(retained('r/a', 'A'.repeat(17)))
  t.equal(store.stats().cachedBytes, 140, 'a cached message replaced by a smaller one')
  await store.storeRetained(retained('r/d', 'D'.repeat(57)))
  t.equal(store.stats().cachedBytes, 200, 'an uncached one replaced: the new body fits now')
  await store.storeRetained(retained('r/b', ''))
  t.equal(store.stats().cachedBytes, 140, '[MQTT-3.3.1-6] removing a cached one frees its bytes')
  const got = await collect(store.createRetainedStream('r/+'))
  t.strictSame(got.map((p) => [p.topic, p.payload?.toString()]).sort(), [
    ['r/a', 'A'.repeat(17)], ['r/c', 'r/c'.padEnd(57, 'x')], ['r/d', 'D'.repeat(57)]
  ], 'the current message of every topic')
  await store.close()
  const reopened = await open(dir, { cacheBytes: 100 })
  t.teardown(() => reopened.close())
  t.ok(reopened.stats().cachedBytes <= 100, `reopened within a smaller budget (${reopened.stats().cachedBytes} bytes)`)
  t.strictSame((await collect(reopened.createRetainedStream('r/#'))).map((p) => p.payload?.toString()).sort(), [
    'A'.repeat(17), 'D'.repeat(57), 'r/c'.padEnd(57, 'x')
  ], 'and read back from disk where they do not fit')
})

t.test('group commit: writes issued in one tick share one batch', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir)
  t.teardown(() => store.close())
  const before = store.writeCounters
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < 200; i++) pending.push(store.outgoingEnqueueCombi([{ clientId: `c${i % 10}`, qos: 1 }], publish(`g/${i}`, 'x')))
  pending.push(store.storeRetained({ ...publish('g/r', 'x'), retain: true }))
  pending.push(store.addSubscriptions({ id: 'c1' }, [{ topic: 'g/#', qos: 1 }]))
  await Promise.all(pending)
  const after = store.writeCounters
  t.equal(after.batches - before.batches, 1, 'one db.batch()')
  t.equal(after.ops - before.ops, 202)
})

t.test('fsync: writes are synced and still grouped', async (t) => {
  const dir = tempDir(t)
  const store = createPersistence({ kind: 'level', dataDir: dir, fsync: true }) as CulexPersistence & LevelPersistence
  await store.setup({ id: 'b' })
  const writes: Array<Promise<void>> = []
  for (let i = 0; i < 50; i++) writes.push(store.outgoingEnqueueCombi([{ clientId: 'f', qos: 1 }], publish(`f/${i}`, 'x')))
  await Promise.all(writes)
  t.equal(store.writeCounters.batches, 1)
  await store.close()
  const again = await open(dir)
  t.equal(again.stats().queued, 50)
  await again.close()
})

t.test('the level store needs a data directory', async (t) => {
  t.throws(() => createPersistence({ kind: 'level' }), { code: 'CULEX_ERR_DATA_DIR_REQUIRED' })
})

t.test('with a fixed broker id, the message counter continues after the queued messages', async (t) => {
  const dir = tempDir(t)
  const first = new LevelPersistence({ dataDir: dir })
  await first.setup({ id: 'fixed', counter: 0 })
  for (let i = 1; i <= 3; i++) await first.outgoingEnqueueCombi([{ clientId: 'c', qos: 1 }], publish(`f/${i}`, 'x', { brokerId: 'fixed', brokerCounter: i * 10 }))
  await first.close()
  const broker = { id: 'fixed', counter: 0 }
  const store = new LevelPersistence({ dataDir: dir })
  await store.setup(broker)
  t.teardown(() => store.close())
  t.equal(broker.counter, 30, 'new packets get counters the queued ones do not use')
  const other = { id: 'another', counter: 0 }
  const store2 = new LevelPersistence({ dataDir: tempDir(t) })
  await store2.setup(other)
  await store2.close()
  t.equal(other.counter, 0)
})

t.test('QoS 1 packet ids reach the disk only while unacknowledged; QoS 2 ids before the PUBLISH', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir)
  const client = { id: 'ids' }
  const sub = [{ clientId: client.id, qos: 2 }]
  const slow = publish('ids/slow', '1')
  const fast = publish('ids/fast', '2')
  const exact = publish('ids/exact', '3', { qos: 2 })
  await store.outgoingEnqueueCombi(sub, slow)
  await store.outgoingEnqueueCombi(sub, fast)
  await store.outgoingEnqueueCombi(sub, exact)
  const ops = (): number => store.writeCounters.ops
  const start = ops()

  await store.outgoingUpdate(client, { ...exact, messageId: 3 })
  t.equal(ops() - start, 1, 'the QoS 2 id is written before aedes may send the PUBLISH')

  await store.outgoingUpdate(client, { ...slow, messageId: 1 })
  await store.outgoingUpdate(client, { ...fast, messageId: 2 })
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 2 })
  await sleep(300)
  await store.outgoingEnqueueCombi(sub, publish('ids/flush', '4'))
  // the slow id, the fast message's delete, the new message; no id (nor its delete) for the fast one
  t.equal(ops() - start, 4, 'an id acknowledged within the delay costs no write')
  await store.close()

  const again = await open(dir)
  t.teardown(() => again.close())
  const queued = await collect(again.outgoingStream(client))
  t.same(queued.map((p) => [p.topic, p.messageId]), [['ids/slow', 1], ['ids/exact', 3], ['ids/flush', undefined]], '[MQTT-4.4.0-1] the unacknowledged keep their ids across a restart')
})

t.test('a QoS 1 packet id recorded just before the delay runs out for others is not written with them', async (t) => {
  const store = await open(tempDir(t))
  t.teardown(() => store.close())
  const client = { id: 'late-ids' }
  const sub = [{ clientId: client.id, qos: 1 }]
  const early = publish('ids/early', '1')
  const late = publish('ids/late', '2')
  await store.outgoingEnqueueCombi(sub, early)
  await store.outgoingEnqueueCombi(sub, late)
  const start = store.writeCounters.ops
  await store.outgoingUpdate(client, { ...early, messageId: 1 })
  await sleep(80)
  await store.outgoingUpdate(client, { ...late, messageId: 2 })
  // past the early id's first 100 ms, within the late one's
  await sleep(70)
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 2 })
  await sleep(200)
  t.equal(store.writeCounters.ops - start, 2, 'the early id and the late message\'s delete; no id (nor its delete) for the late one')
})

t.test('an acknowledged message\'s delete joins the next batch, or its own within 100 ms', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir)
  const client = { id: 'acked' }
  const sub = [{ clientId: client.id, qos: 1 }]
  const messages = [1, 2, 3, 4].map((i) => publish(`a/${i}`, String(i)))
  for (const m of messages) await store.outgoingEnqueueCombi(sub, m)
  // the fourth is sent later: its packet id would be written 100 ms on (not acknowledged by then)
  for (const [i, m] of messages.slice(0, 3).entries()) await store.outgoingUpdate(client, { ...m, messageId: i + 1 })
  const start = store.writeCounters
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 1 })
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 2 })
  await new Promise((resolve) => setImmediate(resolve))
  await sleep(10)
  t.equal(store.writeCounters.batches, start.batches, 'no batch of their own at once')
  await store.outgoingEnqueueCombi(sub, publish('a/5', '5'))
  t.strictSame(store.writeCounters, { batches: start.batches + 1, ops: start.ops + 3 }, 'they joined the next batch a waited-for write started')
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 3 })
  await sleep(250)
  t.strictSame(store.writeCounters, { batches: start.batches + 2, ops: start.ops + 4 }, 'alone, written within 100 ms')
  await store.outgoingUpdate(client, { ...messages[3], messageId: 4 })
  await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 4 })
  await store.close()
  const again = await open(dir)
  t.teardown(() => again.close())
  t.same((await collect(again.outgoingStream(client))).map((p) => p.topic), ['a/5'], 'the last delete was written at close')
})

t.test('QoS 1 packet ids still in memory are written at close', async (t) => {
  const dir = tempDir(t)
  const store = await open(dir)
  const client = { id: 'close-ids' }
  const m = publish('c/1', '1')
  await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], m)
  await store.outgoingUpdate(client, { ...m, messageId: 9 })
  await store.close()
  const again = await open(dir)
  t.teardown(() => again.close())
  t.same((await collect(again.outgoingStream(client))).map((p) => p.messageId), [9], 'the id survives a clean restart')
})
