// Unit tests of the store semantics culex adds over aedes-persistence, run
// against both the memory and the level store.
import t from 'tap'
import type { DropEvent, StoredPacket } from '../../lib/persistence/index.js'
import { KINDS, captureLogger, collect, expectedProperties, openStore, publish, v5Properties } from '../helpers/store.js'
import { sleep, waitFor } from '../helpers/wait.js'

for (const kind of KINDS) {
  t.test(`${kind}: MQTT 5 properties round-trip on queued, in-flight, retained, will and incoming packets`, async (t) => {
    const store = await openStore(t, kind)
    const client = { id: 'props' }
    const expiry = Date.now() + 100_000
    const packet = publish('p/q', 'hello', { properties: v5Properties(), messageExpiry: expiry, qos: 1 })
    await store.outgoingEnqueueCombi([{ clientId: client.id, topic: 'p/#', qos: 1 }], packet)

    const [queued] = await collect(store.outgoingStream(client))
    t.ok(queued, 'queued message streamed')
    t.strictSame(queued?.properties, expectedProperties(), 'queued: every property but the Topic Alias')
    t.ok(Buffer.isBuffer(queued?.properties?.correlationData), 'correlationData comes back as a Buffer')
    t.ok(Buffer.isBuffer(queued?.payload), 'payload comes back as a Buffer')
    t.equal(queued?.messageExpiry, expiry, 'absolute expiry deadline kept')

    await store.outgoingUpdate(client, { ...packet, messageId: 17 })
    const [inflight] = await collect(store.outgoingStream(client))
    t.equal(inflight?.messageId, 17, 'in-flight packet id kept')
    t.strictSame(inflight?.properties, expectedProperties(), 'in-flight: properties kept')
    const cleared = await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 17 })
    t.strictSame(cleared?.properties, expectedProperties(), 'PUBACK returns the packet with its properties')

    await store.storeRetained({ ...publish('r/1', 'kept', { properties: v5Properties(), messageExpiry: expiry }), retain: true })
    const [retained] = await collect(store.createRetainedStream('r/+'))
    t.strictSame(retained?.properties, expectedProperties(), 'retained: properties kept')
    t.notOk(retained?.properties !== undefined && Object.hasOwn(retained.properties, 'topicAlias'), 'retained: no topicAlias key at all')
    t.equal(retained?.messageExpiry, expiry)

    const will = { cmd: 'publish', topic: 'w/died', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { ...v5Properties(), willDelayInterval: 5 } }
    await store.putWill(client, will)
    const gotWill = await store.getWill(client)
    t.strictSame(gotWill?.properties, { ...expectedProperties(), willDelayInterval: 5 }, 'will: properties kept (incl. Will Delay)')
    t.equal(gotWill?.clientId, client.id)
    t.equal(gotWill?.brokerId, 'broker-1')

    await store.incomingStorePacket(client, { ...packet, qos: 2, messageId: 5 })
    const incoming = await store.incomingGetPacket(client, { messageId: 5 })
    t.strictSame(incoming.properties, expectedProperties(), 'incoming QoS 2: properties kept')
  })

  t.test(`${kind}: undefined is never stored (not as null either)`, async (t) => {
    const store = await openStore(t, kind)
    const packet = publish('u/1', 'x', { properties: { topicAlias: undefined, contentType: undefined, responseTopic: 'r' }, retain: true, extra: undefined })
    await store.storeRetained(packet)
    const [retained] = await collect(store.createRetainedStream('u/1'))
    t.strictSame(retained?.properties, { responseTopic: 'r' })
    t.notOk(Object.hasOwn(retained ?? {}, 'extra'))
    t.notOk(Object.values(retained ?? {}).includes(null), 'no null fields')
  })

  t.test(`${kind}: [MQTT-3.3.2-5] expired messages are not streamed, are deleted and counted`, async (t) => {
    const store = await openStore(t, kind)
    const drops: DropEvent[] = []
    store.onDrop((e) => drops.push(e))
    const client = { id: 'exp' }
    const sub = { clientId: client.id, topic: 'e/#', qos: 1 }
    await store.outgoingEnqueueCombi([sub], publish('e/past', 'x', { messageExpiry: Date.now() - 1 }))
    t.equal(store.stats().queued, 0, 'a message already past its expiry is never queued')
    // 'started' must still be live when it is queued and given its packet id, however slowly the writes go
    const soon = Date.now() + 300
    await store.outgoingEnqueueCombi([sub], publish('e/soon', 'x', { messageExpiry: soon }))
    await store.outgoingEnqueueCombi([sub], publish('e/later', 'x', { messageExpiry: Date.now() + 60_000 }))
    const started = publish('e/started', 'x', { messageExpiry: soon })
    await store.outgoingEnqueueCombi([sub], started)
    await store.outgoingUpdate(client, { ...started, messageId: 3 })
    t.ok(Date.now() < soon, `queued and started before its expiry (${soon - Date.now()} ms to spare)`)
    await sleep(Math.max(0, soon + 40 - Date.now()))
    const list = await collect(store.outgoingStream(client))
    t.strictSame(list.map((p) => p.topic), ['e/later', 'e/started'],
      'the expired unsent message is dropped; one whose delivery started (packet id assigned) is still resent')
    t.equal(store.stats().queued, 2, 'the expired message is deleted')
    t.equal(store.stats().dropped.expired, 2)
    t.strictSame(drops, [{ clientId: 'exp', reason: 'expired', count: 1 }, { clientId: 'exp', reason: 'expired', count: 1 }])

    await store.storeRetained(publish('e/retained', 'x', { retain: true, messageExpiry: Date.now() + 30 }))
    await store.storeRetained(publish('e/retained2', 'y', { retain: true, messageExpiry: Date.now() + 60_000 }))
    await sleep(60)
    const retained = await collect(store.createRetainedStream('e/#'))
    t.strictSame(retained.map((p) => p.topic), ['e/retained2'], 'expired retained message skipped')
    await waitFor(() => store.stats().retained === 1, { timeout: 3000 })
    t.equal(store.stats().retained, 1, 'and deleted')
  })

  t.test(`${kind}: overlapping subscriptions of one client all stay and all match (aedes #543)`, async (t) => {
    const store = await openStore(t, kind)
    const client = { id: 'overlap' }
    await store.addSubscriptions(client, [{ topic: 'a/#', qos: 1 }])
    await store.addSubscriptions(client, [{ topic: 'a/+/x', qos: 2 }])
    await store.addSubscriptions(client, [{ topic: 'a/b/x', qos: 1 }])
    await store.addSubscriptions({ id: 'other' }, [{ topic: 'a/b/x', qos: 1 }])
    t.strictSame((await store.subscriptionsByClient(client)).map((s) => s.topic).sort(), ['a/#', 'a/+/x', 'a/b/x'])
    const byTopic = (await store.subscriptionsByTopic('a/b/x')).filter((s) => s.clientId === client.id)
    t.strictSame(byTopic.map((s) => `${s.topic}@${s.qos}`).sort(), ['a/#@1', 'a/+/x@2', 'a/b/x@1'], 'one entry per matching filter')
    t.strictSame((await store.subscriptionsByTopic('a/q')).map((s) => s.topic), ['a/#'], 'a/# still matches a/q')
    t.strictSame((await store.subscriptionsByTopic('a/c/x')).map((s) => s.topic).sort(), ['a/#', 'a/+/x'])
    t.strictSame(await store.countOffline(), { subsCount: 4, clientsCount: 2 })

    // aedes hands every matching subscription to outgoingEnqueueCombi
    const subs = await store.subscriptionsByTopic('a/b/x')
    await store.outgoingEnqueueCombi(subs, publish('a/b/x', 'm', { qos: 2 }))
    const queued = await collect(store.outgoingStream(client))
    t.equal(queued.length, 1, 'queued once per client, not once per subscription')
    t.equal(queued[0]?.qos, 2, '[MQTT-3.3.4-2] at the highest QoS of the matching subscriptions')
    const other = await collect(store.outgoingStream({ id: 'other' }))
    t.equal(other[0]?.qos, 1, 'capped by the granted QoS of the only matching subscription')

    await store.removeSubscriptions(client, ['a/+/x'])
    t.strictSame((await store.subscriptionsByTopic('a/c/x')).map((s) => s.topic), ['a/#'], 'removing one filter keeps the others')
  })

  t.test(`${kind}: [MQTT-4.7.2-1] wildcard-first filters do not match $ topics`, async (t) => {
    const store = await openStore(t, kind)
    await store.addSubscriptions({ id: 'c' }, [{ topic: '#', qos: 1 }, { topic: '+/x', qos: 1 }, { topic: '$app/#', qos: 1 }])
    t.strictSame((await store.subscriptionsByTopic('$app/x')).map((s) => s.topic), ['$app/#'])
    t.strictSame((await store.subscriptionsByTopic('app/x')).map((s) => s.topic).sort(), ['#', '+/x'])
    await store.storeRetained(publish('$SYS/x', 'sys', { retain: true }))
    await store.storeRetained(publish('app/x', 'app', { retain: true }))
    t.strictSame((await collect(store.createRetainedStream('#'))).map((p) => p.topic), ['app/x'])
    t.strictSame((await collect(store.createRetainedStream('+/x'))).map((p) => p.topic), ['app/x'])
    t.strictSame((await collect(store.createRetainedStream('$SYS/#'))).map((p) => p.topic), ['$SYS/x'])
  })

  t.test(`${kind}: retained index lookups with wildcards`, async (t) => {
    const store = await openStore(t, kind)
    const topics = ['a', 'a/b', 'a/b/c', 'a//c', 'b/b/c', '/lead', 'a/b/c/d']
    for (const topic of topics) await store.storeRetained(publish(topic, topic, { retain: true }))
    const lookup = async (patterns: string[]): Promise<string[]> =>
      (await collect(store.createRetainedStreamCombi(patterns))).map((p) => p.topic as string).sort()
    t.strictSame(await lookup(['a/#']), ['a', 'a/b', 'a/b/c', 'a/b/c/d', 'a//c'].sort(), '[MQTT-4.7.1-2] # matches the parent level too')
    t.strictSame(await lookup(['+/b/+']), ['a/b/c', 'b/b/c'])
    t.strictSame(await lookup(['a/+/c']), ['a/b/c', 'a//c'].sort(), '+ matches an empty level')
    t.strictSame(await lookup(['+']), ['a'])
    t.strictSame(await lookup(['+/+']), ['/lead', 'a/b'].sort())
    t.strictSame(await lookup(['#']), [...topics].sort())
    t.strictSame(await lookup(['a/b']), ['a/b'])
    t.strictSame(await lookup(['a/b/c/d/#']), ['a/b/c/d'])
    t.strictSame(await lookup(['a/b', 'a/+', '+/b']), ['a/b'], 'a topic matched by several patterns comes once')
    t.strictSame(await lookup(['nope/#', 'x/+']), [])

    await store.storeRetained(publish('a/b', '', { retain: true }))
    t.strictSame(await lookup(['a/+']), [], '[MQTT-3.3.1-6] an empty payload deletes the retained message')
    t.equal(store.stats().retained, topics.length - 1)
    await store.storeRetained(publish('a/b/c', 'new', { retain: true }))
    const [replaced] = await collect(store.createRetainedStream('a/b/c'))
    t.equal(replaced?.payload?.toString(), 'new', '[MQTT-3.3.1-5] a new retained message replaces the old one')
  })

  t.test(`${kind}: a retained stream sends the current message of a topic replaced or removed while it runs`, async (t) => {
    const store = await openStore(t, kind)
    const name = (i: number): string => `s/${String(i).padStart(3, '0')}`
    for (let i = 0; i < 200; i++) await store.storeRetained(publish(name(i), `old ${i}`, { retain: true }))
    const stream = store.createRetainedStream('s/#')
    const iterator = stream[Symbol.asyncIterator]()
    const first = await iterator.next()
    t.equal((first.value as StoredPacket).payload?.toString(), 'old 0')
    // far past the first chunk the stream has prepared
    await store.storeRetained(publish(name(150), 'new 150', { retain: true }))
    await store.storeRetained(publish(name(151), '', { retain: true }))
    const rest: string[] = []
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      rest.push(String((next.value as StoredPacket).payload))
    }
    t.equal(rest.length, 198, 'the removed topic is not sent')
    t.ok(rest.includes('new 150'), 'the replaced topic is sent with its new message')
    t.notOk(rest.includes('old 150') || rest.includes('old 151'))
  })

  t.test(`${kind}: offline queue limits, drop-oldest`, async (t) => {
    const { logger, lines } = captureLogger()
    const store = await openStore(t, kind, { logger, limits: { maxQueuedMessages: 3 } })
    const drops: DropEvent[] = []
    store.onDrop((e) => drops.push(e))
    const client = { id: 'slow' }
    const sub = { clientId: client.id, topic: 'q/#', qos: 1 }
    await store.outgoingEnqueueCombi([sub], publish('q/1', '1'))
    await store.outgoingEnqueue({ clientId: client.id }, publish('q/2', '2', { qos: 0 }))
    await store.outgoingEnqueueCombi([sub], publish('q/3', '3'))
    await store.outgoingEnqueueCombi([sub], publish('q/4', '4'))
    t.strictSame((await collect(store.outgoingStream(client))).map((p) => p.topic), ['q/1', 'q/3', 'q/4'], 'the oldest QoS 0 message goes first')
    for (let i = 5; i <= 104; i++) await store.outgoingEnqueueCombi([sub], publish(`q/${i}`, String(i)))
    t.strictSame((await collect(store.outgoingStream(client))).map((p) => p.topic), ['q/102', 'q/103', 'q/104'], 'then the oldest')
    t.equal(store.stats().queued, 3, 'memory stays bounded')
    t.equal(store.stats().dropped.queueFull, 101)
    t.equal(drops.reduce((n, e) => n + e.count, 0), 101, 'every drop reported')
    t.ok(drops.every((e) => e.clientId === 'slow' && e.reason === 'queue-full'))
    const warnings = lines.filter((l) => l.reason === 'queue-full')
    t.equal(warnings.length, 1, 'one log line for the burst, not one per message')
  })

  t.test(`${kind}: offline queue limits, refuse and byte limit`, async (t) => {
    const store = await openStore(t, kind, { limits: { maxQueuedMessages: 3, maxQueuedBytes: 1000, overflow: 'refuse' } })
    const client = { id: 'refuser' }
    const sub = { clientId: client.id, topic: '#', qos: 1 }
    for (let i = 1; i <= 5; i++) await store.outgoingEnqueueCombi([sub], publish(`r/${i}`, 'x'))
    t.strictSame((await collect(store.outgoingStream(client))).map((p) => p.topic), ['r/1', 'r/2', 'r/3'], 'new messages refused')
    t.equal(store.stats().dropped.queueFull, 2)

    const bytes = await openStore(t, kind, { limits: { maxQueuedBytes: 30 } })
    const b = { id: 'bytes' }
    // each message accounts 10 payload + 3 topic bytes
    for (let i = 1; i <= 4; i++) await bytes.outgoingEnqueueCombi([{ clientId: b.id, qos: 1 }], publish(`b/${i}`, '0123456789'))
    t.strictSame((await collect(bytes.outgoingStream(b))).map((p) => p.topic), ['b/3', 'b/4'], 'byte limit with drop-oldest')
    t.equal(bytes.stats().queuedBytes, 26)
    await bytes.outgoingEnqueueCombi([{ clientId: b.id, qos: 1 }], publish('b/huge', Buffer.alloc(100)))
    t.strictSame((await collect(bytes.outgoingStream(b))).map((p) => p.topic), ['b/3', 'b/4'], 'a message larger than the limit is refused, not queued by emptying the queue')
  })

  t.test(`${kind}: retained limits refuse, log once, count and emit`, async (t) => {
    const { logger, lines } = captureLogger()
    const store = await openStore(t, kind, { logger, limits: { maxRetained: 2, maxRetainedPayload: 5 } })
    const drops: DropEvent[] = []
    store.onDrop((e) => drops.push(e))
    await store.storeRetained(publish('t/1', 'a', { retain: true }))
    await store.storeRetained(publish('t/2', 'b', { retain: true }))
    await store.storeRetained(publish('t/3', 'c', { retain: true }))
    await store.storeRetained(publish('t/4', 'd', { retain: true }))
    t.strictSame((await collect(store.createRetainedStream('t/#'))).map((p) => p.topic).sort(), ['t/1', 't/2'])
    await store.storeRetained(publish('t/1', 'A', { retain: true }))
    t.equal((await collect(store.createRetainedStream('t/1')))[0]?.payload?.toString(), 'A', 'replacing an existing topic is allowed at the limit')
    await store.storeRetained(publish('t/2', 'toolong', { retain: true }))
    t.equal((await collect(store.createRetainedStream('t/2')))[0]?.payload?.toString(), 'b', 'an oversized payload is refused')
    await store.storeRetained(publish('t/2', '', { retain: true }))
    await store.storeRetained(publish('t/3', 'c', { retain: true }))
    t.strictSame((await collect(store.createRetainedStream('t/#'))).map((p) => p.topic).sort(), ['t/1', 't/3'], 'room again after a delete')
    t.equal(store.stats().dropped.retainedLimit, 3)
    t.strictSame(drops.map((d) => d.reason), ['retained-limit', 'retained-limit', 'retained-limit'])
    t.equal(lines.filter((l) => l.reason === 'retained-limit').length, 1, 'logged once')
  })

  t.test(`${kind}: prototype-named client ids are ordinary ids`, async (t) => {
    const store = await openStore(t, kind)
    const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']
    for (const id of ids) {
      await store.addSubscriptions({ id }, [{ topic: `own/${id}`, qos: 1 }])
      await store.outgoingEnqueueCombi([{ clientId: id, qos: 1 }], publish(`own/${id}`, id))
      await store.putWill({ id }, { cmd: 'publish', topic: `will/${id}`, payload: Buffer.from(id), qos: 0, retain: false })
      await store.incomingStorePacket({ id }, publish(`in/${id}`, id, { qos: 2, messageId: 1 }))
      await store.putSession(id, { expiresAt: 1 })
    }
    t.strictSame(await store.countOffline(), { subsCount: ids.length, clientsCount: ids.length })
    t.strictSame(await store.subscriptionsByClient({ id: 'nobody' }), [])
    for (const id of ids) {
      t.strictSame((await store.subscriptionsByClient({ id })).map((s) => s.topic), [`own/${id}`])
      t.strictSame((await collect(store.outgoingStream({ id }))).map((p) => p.payload?.toString()), [id])
      t.equal((await store.getWill({ id }))?.topic, `will/${id}`)
      t.equal((await store.incomingGetPacket({ id }, { messageId: 1 })).topic, `in/${id}`)
      t.strictSame(await store.getSession(id), { expiresAt: 1 })
      t.strictSame(await collect(store.getClientList(`own/${id}`)), [id])
    }
    await t.rejects(store.incomingGetPacket({ id: 'nobody' }, { messageId: 1 }), { code: 'CULEX_ERR_NO_SUCH_PACKET' })
    t.equal(await store.getWill({ id: 'nobody' }), undefined)
  })

  t.test(`${kind}: QoS 2 outgoing flow, packet ids and clearing`, async (t) => {
    const store = await openStore(t, kind, { limits: { maxQueuedMessages: 2 } })
    const client = { id: 'q2' }
    const m1 = publish('x/1', '1', { qos: 2 })
    const m2 = publish('x/2', '2', { qos: 2 })
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 2 }], m1)
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 2 }], m2)
    await store.outgoingUpdate(client, { ...m1, messageId: 10 })
    t.equal(store.stats().inflight, 1)
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 10 })
    t.strictSame(store.stats().pubrels, 1)
    t.strictSame(await collect(store.outgoingStream(client)), [
      { cmd: 'pubrel', messageId: 10 },
      { cmd: 'publish', brokerId: 'broker-1', brokerCounter: m2.brokerCounter, topic: 'x/2', payload: Buffer.from('2'), qos: 2, retain: false, dup: false, messageId: undefined }
    ], 'PUBREL state keeps its place in the queue')
    // a PUBREL does not count against the message limit
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 2 }], publish('x/3', '3', { qos: 2 }))
    t.equal(store.stats().dropped.queueFull, 0)
    t.strictSame(await store.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 10 }), { cmd: 'pubrel', messageId: 10 })
    t.equal(store.stats().pubrels, 0)
    t.equal(await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 999 }), undefined, 'unknown packet id: nothing')
    // a PUBREC for a message the store no longer has still tracks the PUBREL
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 77 })
    t.ok((await collect(store.outgoingStream(client))).some((p) => p.cmd === 'pubrel' && p.messageId === 77))
    // a message aedes delivers live after the store refused it: no error
    await store.outgoingUpdate(client, { ...publish('x/none', 'n'), messageId: 5 })
  })

  t.test(`${kind}: clearing a not-forwarded message clears that very message`, async (t) => {
    const store = await openStore(t, kind)
    const client = { id: 'nl' }
    const first = publish('n/1', 'first')
    const own = publish('n/2', 'own message, No Local')
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], first)
    await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], own)
    // aedes' deliverQoS passes the original packet, without a packet id
    const cleared = await store.outgoingClearMessageId(client, { ...own, messageId: undefined })
    t.equal(cleared?.topic, 'n/2')
    t.strictSame((await collect(store.outgoingStream(client))).map((p) => p.topic), ['n/1'])
  })

  t.test(`${kind}: session metadata, wipeSession, stats`, async (t) => {
    const store = await openStore(t, kind)
    const id = 'sess'
    await store.putSession(id, { expiresAt: 1234, willDelayUntil: 1000, expiryInterval: 60 })
    await store.putSession('other', { expiresAt: null })
    t.strictSame(await store.getSession(id), { expiresAt: 1234, willDelayUntil: 1000, expiryInterval: 60 })
    const listed: string[] = []
    for await (const { clientId } of store.listSessions()) listed.push(clientId)
    t.strictSame(listed.sort(), ['other', 'sess'])
    await store.delSession('other')
    t.equal(await store.getSession('other'), undefined)

    await store.addSubscriptions({ id }, [{ topic: 's/#', qos: 1 }, { topic: 's/0', qos: 0 }])
    await store.outgoingEnqueueCombi([{ clientId: id, qos: 1 }], publish('s/1', 'x'))
    const inflight = publish('s/2', 'y')
    await store.outgoingEnqueueCombi([{ clientId: id, qos: 1 }], inflight)
    await store.outgoingUpdate({ id }, { ...inflight, messageId: 1 })
    await store.incomingStorePacket({ id }, publish('s/in', 'z', { qos: 2, messageId: 9 }))
    await store.putWill({ id }, { cmd: 'publish', topic: 's/will', payload: Buffer.from('w'), qos: 1, retain: false })
    t.match(store.stats(), { queued: 2, inflight: 1, incoming: 1, subscriptions: 2, clients: 1, wills: 1, sessions: 1 })
    const stored = { clientId: id, meta: { expiresAt: 1234, willDelayUntil: 1000, expiryInterval: 60 }, subscriptions: 2, queued: 2 }
    t.strictSame(store.storedSessions(), [stored], 'storedSessions: the record and its counts')
    t.strictSame(store.storedSession(id), stored)
    t.equal(store.storedSession('other'), undefined, 'no record, nothing')
    await store.addSubscriptions({ id: 'no-record' }, [{ topic: 'x', qos: 1 }])
    t.equal(store.storedSessions().length, 1, 'subscriptions without a record are no stored session')
    await store.cleanSubscriptions({ id: 'no-record' })

    await store.wipeSession(id)
    t.match(store.stats(), { queued: 0, inflight: 0, incoming: 0, subscriptions: 0, clients: 0, wills: 0, sessions: 0, queuedBytes: 0 })
    t.strictSame(await store.subscriptionsByClient({ id }), [])
    t.strictSame(await collect(store.outgoingStream({ id })), [])
    t.equal(await store.getWill({ id }), undefined)
    t.equal(await store.getSession(id), undefined)
    await t.rejects(store.incomingGetPacket({ id }, { messageId: 9 }))
  })

  t.test(`${kind}: close is idempotent and later writes are refused`, async (t) => {
    const store = await openStore(t, kind)
    await store.close()
    await store.destroy()
    await t.rejects(store.storeRetained(publish('c/1', 'x', { retain: true })), { code: 'CULEX_ERR_PERSISTENCE_CLOSED' })
    await t.rejects(store.outgoingEnqueueCombi([{ clientId: 'c', qos: 1 }], publish('c/1', 'x')), { code: 'CULEX_ERR_PERSISTENCE_CLOSED' })
    t.strictSame(await collect(store.outgoingStream({ id: 'c' })), [])
  })

  t.test(`${kind}: outgoing stream is a snapshot that skips acknowledged messages`, async (t) => {
    const store = await openStore(t, kind)
    const client = { id: 'snap' }
    const packets: StoredPacket[] = []
    for (let i = 0; i < 200; i++) {
      const p = publish(`s/${i}`, String(i))
      packets.push(p)
      await store.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], p)
      await store.outgoingUpdate(client, { ...p, messageId: i + 1 })
    }
    let seen = 0
    for await (const p of store.outgoingStream(client)) {
      seen++
      await store.outgoingClearMessageId(client, p as StoredPacket)
      if (seen === 1) await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 200 })
    }
    t.equal(seen, 199, 'a message acknowledged while the stream runs is not streamed')
    t.equal(store.stats().queued, 0)
  })
}

for (const kind of KINDS) {
  t.test(`${kind}: a queue sink takes the QoS 1 head of a resumed queue in order; the rest streams behind it`, async (t) => {
    const store = await openStore(t, kind)
    const client = { id: 'sink' }
    const sub = [{ clientId: client.id, topic: 's/#', qos: 2 }]
    const now = Date.now()
    await store.outgoingEnqueueCombi(sub, publish('s/1', '1'))
    await store.outgoingEnqueueCombi(sub, publish('s/refused', '2'))
    await store.outgoingEnqueueCombi(sub, publish('s/3', '3', { messageExpiry: now + 60_000, properties: { messageExpiryInterval: 60 } }))
    await store.outgoingEnqueueCombi(sub, publish('s/expired', '4', { messageExpiry: now + 30 }))
    await store.outgoingEnqueueCombi(sub, publish('s/5', '5'))
    await store.outgoingEnqueueCombi(sub, publish('s/qos2', '6', { qos: 2 }))
    await store.outgoingEnqueueCombi(sub, publish('s/7', '7'))
    await sleep(50)

    const sent: StoredPacket[] = []
    let nextId = 41
    let asked = 0
    let acknowledge: ((messageId: number) => boolean) | undefined
    store.setQueueSink((c, ack) => {
      asked++
      acknowledge = ack
      if (c.id !== client.id) return undefined
      return {
        room: () => 10 - sent.length,
        nextPacketId: () => nextId++,
        send: (packet) => {
          if (packet.topic === 's/refused') return false
          sent.push(packet)
          return true
        }
      }
    })
    const rest = await collect(store.outgoingStream(client))
    t.equal(asked, 1, 'asked once per stream')
    t.same(sent.map((p) => [p.topic, p.messageId, p.qos]), [['s/1', 41, 1], ['s/3', 43, 1], ['s/5', 44, 1]], 'QoS 1 messages in queue order, with the next packet ids')
    t.equal(sent[1]?.messageExpiry, now + 60_000, 'the absolute expiry goes along (the gateway sends what remains)')
    t.same(rest.map((p) => p.topic), ['s/qos2', 's/7'], 'from the first QoS 2 message on, aedes streams the rest')
    const stats = store.stats()
    t.equal(stats.queued, 5, 'the refused and the expired message left the queue')
    t.equal(stats.inflight, 3, 'the packet ids of the sent ones are recorded')
    t.equal(stats.dropped.expired, 1, 'the expired one counts as expired')

    // a reconnect without acknowledgements: the same ids again, marked as re-sent (DUP)
    sent.length = 0
    const again = await collect(store.outgoingStream(client))
    t.same(sent.map((p) => [p.topic, p.messageId]), [['s/1', 41], ['s/3', 43], ['s/5', 44]], 'the same packet ids again [MQTT-4.4.0-1]')
    const resent = store as unknown as { wasInFlight: (clientId: string, brokerId: string, counter: number) => boolean }
    t.equal(resent.wasInFlight(client.id, 'broker-1', sent[0]?.brokerCounter as number), true, 're-sent with its id: DUP [MQTT-3.3.1-1]')
    t.same(again.map((p) => p.topic), ['s/qos2', 's/7'])

    // the PUBACKs: two taken by the store from the gateway (QueueAck), one through aedes' clear
    t.equal(acknowledge?.(42), false, 'an id the queue does not hold')
    t.equal(acknowledge?.(41), true)
    t.equal(acknowledge?.(41), false, 'cleared once')
    t.equal(acknowledge?.(43), true)
    t.equal(store.stats().inflight, 1)
    t.equal(await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 43 }), undefined, 'aedes\' clear finds nothing left')
    await store.outgoingClearMessageId(client, { cmd: 'puback', messageId: 44 })
    t.equal(store.stats().queued, 2, 'acknowledged ones are gone')
    t.same((await collect(store.outgoingStream(client))).map((p) => p.topic), ['s/qos2', 's/7'], 'and are not sent again')

    // a full window: nothing taken, all streamed
    sent.length = 0
    await store.outgoingEnqueueCombi(sub, publish('s/8', '8'))
    store.setQueueSink(() => ({ room: () => 0, nextPacketId: () => 1, send: () => { throw new Error('not to be called') } }))
    t.same((await collect(store.outgoingStream(client))).map((p) => p.topic), ['s/qos2', 's/7', 's/8'], 'no room: aedes streams everything')
    store.setQueueSink(undefined)
  })
}
