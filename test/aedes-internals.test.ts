/**
 * The aedes 2.0.0-beta.1 internals culex relies on (lib/aedes-internals.ts
 * and lib/protocol/*). If an aedes upgrade changes any of them, this fails
 * first and says which.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Duplex, PassThrough, Readable, Writable } from 'node:stream'
import { Aedes, type Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { hardenBroker, hardenClient, clientSubscriptions } from '../lib/aedes-internals.js'

const require = createRequire(import.meta.url)

t.test('aedes is pinned at exactly 2.0.0-beta.1', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> }
  t.equal(pkg.dependencies.aedes, '2.0.0-beta.1', 'no caret, no range')
  const installed = JSON.parse(readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'package.json'), 'utf8')) as { version: string }
  t.equal(installed.version, '2.0.0-beta.1')
})

t.test('broker.clients is a map culex can replace', async (t) => {
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const b = broker as unknown as { clients: Record<string, unknown> }
  t.type(b.clients, 'object')
  hardenBroker(broker)
  t.equal(Object.getPrototypeOf(b.clients), null)
  t.equal(b.clients.constructor, undefined)
})

t.test('a Client has subscriptions and duplicates maps, and reads its stream', async (t) => {
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const stream = new PassThrough()
  const client = broker.handle(stream)
  const c = client as unknown as { subscriptions: unknown, duplicates: unknown, connackSent: unknown, conn: unknown }
  t.type(c.subscriptions, 'object', 'client.subscriptions')
  t.type(c.duplicates, 'object', 'client.duplicates')
  t.equal(c.connackSent, false, 'client.connackSent')
  t.equal(c.conn, stream, 'client.conn is the stream given to handle()')
  hardenClient(client)
  const subs = clientSubscriptions(client)
  t.equal(Object.getPrototypeOf(Object.getPrototypeOf(subs)), null, 'subscriptions inherit from an object without a prototype')
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) t.equal(subs[name], undefined, `no inherited ${name}`)
  t.notOk('constructor' in subs)
  const another = Object.create(Object.getPrototypeOf(subs) as object) as Record<string, unknown>
  Reflect.set(another, 'constructor', { qos: 1 })
  t.same(Object.keys(another), ['constructor'], 'a filter named like an Object member is an ordinary key')
  stream.destroy()
})

t.test('the error messages the gateway maps to reason codes still exist in aedes', async (t) => {
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  const connectSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/connect.js'), 'utf8')
  t.match(connectSource, "new Error('keep alive timeout')", 'keep-alive timeout error (DISCONNECT 0x8D)')
  t.match(clientSource, "new Error('connect did not arrive in time')", 'connect timeout error (0xA0)')
  t.match(clientSource, "new Error('packet too large')", 'packet too large error (0x95)')
  t.match(clientSource, 'this.subscriptions = {}', 'client.subscriptions is a plain object (hardenClient replaces it)')
  t.match(clientSource, 'const result = (duplicates[id] || 0) < counter', 'aedes drops a message whose broker counter is not above the last one seen (hardenClient turns that off)')
  t.match(clientSource, "this._parser.on('packet', enqueue)", 'aedes feeds packets to handlers through _parser\'s packet event (injectPacket)')
  t.match(clientSource, 'const q = this._parser._queue', 'aedes queues pre-connect packets on _parser._queue (InjectedPackets keeps it)')
  t.match(clientSource, 'this._parser = mqtt.parser()', 'aedes makes its parser with mqtt-packet\'s parser() (handleStream replaces it)')
  t.match(clientSource, 'this._eos = finished(this.conn, this.close.bind(this))', 'aedes closes the client when its stream finishes (handleStream keeps only the close)')
  t.match(clientSource, "import { pipeline, finished } from 'stream'", 'aedes\' finished is the one of the stream module (handleStream answers it for the client\'s stream)')
  t.match(clientSource, 'this._topicAliases = new Map()', 'aedes keeps inbound topic aliases in _topicAliases (handleStream shares the gateway\'s)')
})

t.test('the Client internals the gateway drives exist: _parser, _nextBatch, _parsingBatch, _eos, _topicAliases, _nextId, deliver0/deliverQoS, mq._matcher', async (t) => {
  const { handleStream, pacePackets, injectPacket, packetsInProgress, InjectedPackets, AliasTable, routeQoS0Delivery, allocatePacketId, liveSubscriptionCount } = await import('../lib/aedes-internals.js')
  const mqtt = (await import('mqtt-packet')).default
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const stream = new PassThrough()
  const factory = mqtt.parser
  const aliases = new AliasTable()
  const client = handleStream(broker, stream, aliases)
  t.equal(mqtt.parser, factory, 'mqtt-packet\'s parser factory is back')
  t.type(mqtt.parser(), 'object', 'and still makes real parsers')
  let done = 0
  pacePackets(client, { packetDone: () => { done++ } })
  t.equal(packetsInProgress(client), 0, 'starts with no packet in progress')
  const c = client as unknown as { _parser: InstanceType<typeof InjectedPackets>, _topicAliases: unknown, _eos: () => void }
  const parser = c._parser
  t.ok(parser instanceof InjectedPackets, 'aedes got no byte parser (and no BufferList stream)')
  t.equal(parser.client, client, 'the stand-in carries client, as aedes\' enqueue reads it')
  t.same(parser._queue, [], 'and the pre-connect queue')
  t.equal(parser.listenerCount('packet'), 1, 'and aedes\' packet listener')
  t.equal(parser.listenerCount('error'), 0, 'aedes\' error listener dropped: culex never emits one on it')
  t.equal(stream.listenerCount('end'), 1, 'a stream that may end keeps aedes\' end listener')
  t.equal(c._topicAliases, aliases, 'aedes reads and writes the gateway\'s alias table')
  for (const event of ['end', 'finish', 'error', 'close']) {
    t.ok(stream.listeners(event).every(l => !/^on(end|finish|error|close)$/.test(l.name)), `no end-of-stream watcher on '${event}'`)
  }
  t.equal(stream.listenerCount('close'), 1, 'one close listener instead')
  const streams = await import('node:stream')
  const other = new PassThrough()
  const otherEnded = new Promise<unknown>((resolve) => { streams.finished(other, resolve) })
  other.resume()
  other.end()
  t.equal(await otherEnded, undefined, 'finished() still watches any other stream')
  const { promisify } = await import('node:util')
  const promised = promisify(streams.finished)(new PassThrough().end())
  t.equal(promised instanceof Promise, true, 'and util.promisify still gives its promise version')
  t.equal(promisify(streams.finished), streams.promises.finished, 'the same as stream.promises.finished')
  t.doesNotThrow(() => routeQoS0Delivery(client, () => false))
  const first = allocatePacketId(client)
  const second = allocatePacketId(client)
  t.equal(second, first >= 65535 ? 1 : first + 1, 'ids follow aedes\' sequence')
  t.equal(liveSubscriptionCount(broker, 'nothing/here'), 0)
  await new Promise<void>((resolve) => broker.subscribe('some/+', (_p: unknown, cb: () => void) => cb(), () => resolve()))
  t.equal(liveSubscriptionCount(broker, 'some/topic'), 1, 'the matcher sees a listener')
  injectPacket(client, { cmd: 'pingreq', length: 0 })
  t.equal(done, 1, 'aedes handled the injected packet (refused before CONNECT) and called _nextBatch')
  const closed = new Promise<void>((resolve) => broker.once('clientDisconnect', () => resolve()))
  const errors: unknown[] = []
  broker.on('connectionError', (_client: unknown, err: unknown) => errors.push(err))
  stream.destroy()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal((client as unknown as { closed: boolean }).closed, true, 'destroying the stream closes the client, as the watcher did')
  t.equal(parser.listenerCount('packet'), 0, 'and aedes removed its packet listener on close')
  void closed
})

t.test('a stream that never ends or errs (quietEnds) keeps none of aedes\' end and error listeners', async (t) => {
  const { handleStream, AliasTable } = await import('../lib/aedes-internals.js')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(clientSource, "conn.on('error', this.emit.bind(this, 'error'))", 'aedes binds one error listener per stream (handleStream drops it)')
  t.match(clientSource, "conn.on('end', this.close.bind(this))", 'aedes binds one end listener per stream (handleStream drops it)')
  t.match(clientSource, "this._parser.on('error', this.emit.bind(this, 'error'))", 'aedes binds one error listener per parser (handleStream drops it)')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const stream = Object.assign(new PassThrough(), { quietEnds: true })
  handleStream(broker, stream, new AliasTable())
  t.equal(stream.listenerCount('end'), 0, 'no end listener')
  t.equal(stream.listenerCount('error'), 0, 'no error listener')
  t.equal(stream.listenerCount('close'), 1, 'the close listener stays: it closes the client')
  const twice = Object.assign(new PassThrough(), { quietEnds: true })
  twice.on('end', () => {})
  t.throws(() => handleStream(broker, twice, new AliasTable()), /review lib\/aedes-internals.ts/, 'an unexpected listener count is a change in aedes')
  stream.destroy()
  twice.destroy()
})

t.test('InjectedPackets behaves like the EventEmitter aedes expects', async (t) => {
  const { InjectedPackets } = await import('../lib/aedes-internals.js')
  const p = new InjectedPackets()
  const seen: unknown[] = []
  p.on('packet', function (this: unknown, packet: unknown) { seen.push([this === p, packet]) })
  t.equal(p.emit('packet', 1), true)
  t.same(seen, [[true, 1]], 'listeners run with the parser as this, as aedes\' enqueue needs')
  t.throws(() => p.emit('error', new Error('boom')), /boom/, 'an error nobody listens for throws')
  t.throws(() => p.on('packet', () => {}), /review lib\/aedes-internals.ts/, 'a second listener is a change in aedes')
  t.throws(() => p.on('data', () => {}), /review lib\/aedes-internals.ts/, 'as is any other event')
  p.removeAllListeners('packet')
  t.equal(p.emit('packet', 2), false, 'no listener after removeAllListeners')
})

t.test('aedes matches every published topic through mq._matcher, and listeners come and go through add/remove (liveSubscriptions)', async (t) => {
  const { liveSubscriptions } = await import('../lib/aedes-internals.js')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const publish = (topic: string): Promise<void> => new Promise<void>((resolve) => {
    broker.publish({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => resolve())
  })
  const live = liveSubscriptions(broker)
  t.equal(liveSubscriptions(broker), live, 'one wrapper per broker')
  t.equal(live.known('a/b'), undefined, 'nothing matched yet')
  await publish('a/b')
  t.equal(live.known('a/b'), 0, 'publishing matched the topic: the answer is remembered')
  const deliver = (_p: unknown, cb: () => void): void => cb()
  await new Promise<void>((resolve) => broker.subscribe('a/+', deliver, () => resolve()))
  t.equal(live.known('a/b'), undefined, 'a new listener forgets it')
  await publish('a/b')
  t.equal(live.known('a/b'), 1, 'the next publish remembers the new count')
  t.equal(live.known('a/c'), undefined, 'only for the topic matched last')
  t.equal(live.count('a/c'), 1, 'count matches any other topic')
  await new Promise<void>((resolve) => broker.unsubscribe('a/+', deliver, () => resolve()))
  t.equal(live.known('a/c'), undefined, 'removing a listener forgets it')
  t.equal(live.count('a/c'), 0)
})

t.test('the listeners matching a topic are remembered until a listener comes or goes (liveSubscriptions)', async (t) => {
  const { liveSubscriptions } = await import('../lib/aedes-internals.js')
  const mqemitterPath = createRequire(require.resolve('aedes')).resolve('mqemitter')
  const qlobberSource = readFileSync(createRequire(mqemitterPath).resolve('qlobber/lib/qlobber.js'), 'utf8')
  t.match(qlobberSource, /Qlobber\.prototype\.match = function \(topic, ctx\)\s*\{\s*return this\._match2\(\[\], topic, ctx\);/, 'mqemitter\'s qlobber returns a new array per match (one may be kept)')
  t.match(readFileSync(mqemitterPath, 'utf8'), 'const matches = this._matcher.match(message.topic)', 'mqemitter matches each message once and only passes the array on')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const live = liveSubscriptions(broker)
  const seen: string[] = []
  const publish = (topic: string): Promise<void> => new Promise<void>((resolve) => {
    broker.publish({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => resolve())
  })
  const listener = (name: string) => (p: { topic: string }, cb: () => void): void => { seen.push(`${name} ${p.topic}`); cb() }
  const one = listener('one')
  const two = listener('two')
  await new Promise<void>((resolve) => broker.subscribe('a/+', one, () => resolve()))
  await publish('a/b')
  await publish('a/b')
  t.same(seen, ['one a/b', 'one a/b'], 'a remembered topic reaches its listeners every time')
  await new Promise<void>((resolve) => broker.subscribe('#', two, () => resolve()))
  await publish('a/b')
  t.same(seen.slice(2).sort(), ['one a/b', 'two a/b'], 'a new listener gets the next message of a remembered topic')
  await new Promise<void>((resolve) => broker.unsubscribe('a/+', one, () => resolve()))
  await publish('a/b')
  t.same(seen.slice(4), ['two a/b'], 'a listener gone gets no more')
  t.equal(live.count('a/b'), 1)
  const long = `a/${'x'.repeat(300)}`
  await publish(long)
  await publish(long)
  t.same(seen.slice(5), [`two ${long}`, `two ${long}`], 'a long topic is matched each time, not remembered')
  for (let i = 0; i < 1100; i++) await publish(`many/${i}`)
  t.equal(seen.length, 7 + 1100, 'more topics than are remembered: each still reaches its listener')
  await publish('a/b')
  t.equal(seen.at(-1), 'two a/b')
})

t.test('aedes\' PUBACK handler only clears the message from the store and emits \'ack\' (the gateway clears a queue sink\'s message itself: flows/fast-paths.ts ackQueued)', async (t) => {
  const source = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/puback.js'), 'utf8')
  const body = source.replace(/\s+/g, ' ')
  t.match(body, "persistence.outgoingClearMessageId(client, packet) .then((packet) => emitAck(null, packet), emitAck)", 'the store\'s clear')
  t.match(body, "client.broker.emit('ack', origPacket, client) done(err)", 'then the \'ack\' event, and nothing else')
  t.equal((source.match(/client\./g) ?? []).length, 2, 'no other use of the client')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.notMatch(clientSource, /puback/i, 'aedes\' client keeps no state of its own for outgoing QoS 1 flows')
})

t.test('a remembered stable count is forgotten only by a listener whose filter may match its topic (liveSubscriptions stableCount)', async (t) => {
  const { liveSubscriptions } = await import('../lib/aedes-internals.js')
  const mqemitterPath = createRequire(require.resolve('aedes')).resolve('mqemitter')
  const mqemitterSource = readFileSync(mqemitterPath, 'utf8')
  t.match(mqemitterSource, 'this._matcher.add(topic, notify)', 'mqemitter adds a listener with its filter first')
  t.match(mqemitterSource, 'that._matcher.remove(topic, notify)', 'and removes it so')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const matcher = (broker as unknown as { mq: { _matcher: Record<string, unknown> } }).mq._matcher
  t.same([matcher._separator, matcher._wildcard_one, matcher._wildcard_some], ['/', '+', '#'], 'qlobber keeps mqemitter\'s separator and wildcards')
  const live = liveSubscriptions(broker)
  let matched = 0
  const match = matcher.match as (...args: unknown[]) => unknown[]
  matcher.match = function counted (...args: unknown[]) { matched++; return match.apply(this, args) }
  const deliver = (_p: unknown, cb: () => void): void => cb()
  const subscribe = (filter: string): Promise<void> => new Promise<void>((resolve) => broker.subscribe(filter, deliver, () => resolve()))
  const unsubscribe = (filter: string): Promise<void> => new Promise<void>((resolve) => broker.unsubscribe(filter, deliver, () => resolve()))
  t.equal(live.stableCount('$SYS/x/other'), 0)
  t.equal(live.stableCount('a/b'), 0)
  t.equal(matched, 2)
  await subscribe('drain/1')
  t.equal(live.stableCount('$SYS/x/other'), 0, 'another first level: still remembered')
  t.equal(live.stableCount('a/b'), 0)
  t.equal(matched, 2, 'neither matched again')
  await subscribe('a/+')
  t.equal(live.stableCount('a/b'), 1, 'the same first level: counted again')
  t.equal(live.stableCount('$SYS/x/other'), 0)
  t.equal(matched, 3)
  await subscribe('$SYS/+/other')
  t.equal(live.stableCount('$SYS/x/other'), 1)
  await unsubscribe('$SYS/+/other')
  t.equal(live.stableCount('$SYS/x/other'), 0, 'a listener gone from that level: counted again')
  t.equal(matched, 5)
  await subscribe('#')
  t.equal(live.stableCount('a/b'), 2, 'a filter starting with a wildcard forgets every count')
  live.stableCount('$SYS/x/other')
  t.equal(matched, 7, 'both matched again')
  await unsubscribe('drain/1')
  t.equal(live.stableCount('a/b'), 2)
  t.equal(matched, 7)
})

t.test('a live QoS 0 message taken by the gateway skips aedes\' deliverQoS0, which only asks authorizeForward, drops No Local copies and calls back after a setImmediate, what its callbacks take in the same run (routeQoS0Delivery takeLive)', async (t) => {
  const { handleStream, routeQoS0Delivery, AliasTable } = await import('../lib/aedes-internals.js')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(clientSource, 'if (_packet.clientId === that.id && _packet.nl) return', 'aedes drops the client\'s own message under No Local before anything else')
  t.match(clientSource, /const toForward = dedupe\(that, _packet\) &&\s+that\.broker\.authorizeForward\(that, _packet\)/, 'then asks only dedupe and authorizeForward')
  t.match(clientSource, /} else {\s+setImmediate\(cb\)\s+}/, 'and calls back after a setImmediate when it writes nothing')
  let asked = 0
  const broker = await Aedes.createBroker({ authorizeForward: () => { asked++; return null } })
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const make = (harden: boolean): { deliver0: (packet: object, cb: () => void) => void, offered: object[] } => {
    const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
    t.teardown(() => { stream.destroy() })
    const client = handleStream(broker, stream, new AliasTable())
    if (harden) hardenClient(client)
    const c = client as unknown as { id: string, deliver0: (packet: object, cb: () => void) => void }
    c.id = 'me'
    const offered: object[] = []
    routeQoS0Delivery(client, () => false, (packet) => { offered.push(packet); return (packet as { topic: string }).topic === 'take' })
    return { deliver0: (packet, cb) => { c.deliver0(packet, cb) }, offered }
  }
  const hardened = make(true)
  const calledBack: string[] = []
  hardened.deliver0({ topic: 'take', qos: 0, clientId: 'other' }, () => calledBack.push('first'))
  hardened.deliver0({ topic: 'take', qos: 0, clientId: 'other' }, () => calledBack.push('second'))
  t.same(calledBack, [], 'no callback before the setImmediate')
  t.equal(asked, 0, 'aedes did not ask authorizeForward about taken messages')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calledBack, ['first', 'second'], 'both called back, in order, at the next check phase')
  // a callback frees mqemitter's slot for a waiting message, taken in turn
  hardened.deliver0({ topic: 'take', qos: 0, clientId: 'other' }, () => {
    calledBack.push('third')
    hardened.deliver0({ topic: 'take', qos: 0, clientId: 'other' }, () => calledBack.push('taken by a callback'))
  })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calledBack.slice(2), ['third', 'taken by a callback'], 'a message taken while calling back is called back in the same check phase')
  await new Promise<void>((resolve) => { hardened.deliver0({ topic: 'leave', qos: 0, clientId: 'other' }, resolve) })
  t.equal(asked, 1, 'a message not taken goes through aedes\' deliverQoS0')
  const before = hardened.offered.length
  await new Promise<void>((resolve) => { hardened.deliver0({ topic: 'take', qos: 0, clientId: 'me', nl: true }, resolve) })
  t.equal(hardened.offered.length, before, '[MQTT-3.8.3-3] the client\'s own message under No Local is not offered')
  t.equal(asked, 1, 'aedes dropped it before authorizeForward, as before')
  const plain = make(false)
  await new Promise<void>((resolve) => { plain.deliver0({ topic: 'take', qos: 0, clientId: 'other' }, resolve) })
  t.same(plain.offered, [], 'without hardenClient (aedes\' duplicates check live) nothing is offered')
  t.equal(asked, 2)
})

t.test('a plain QoS 0 PUBLISH of a connected client is published as aedes\' handle, handlePublish, authorizePublish and enqueuePublish would (publishQoS0)', async (t) => {
  const { handleStream, injectPacket, pacePackets, publishQoS0, AliasTable } = await import('../lib/aedes-internals.js')
  const dir = require.resolve('aedes').replace(/aedes\.js$/, 'lib/')
  const clientSource = readFileSync(dir + 'client.js', 'utf8')
  const handlersSource = readFileSync(dir + 'handlers/index.js', 'utf8')
  const publishSource = readFileSync(dir + 'handlers/publish.js', 'utf8')
  t.match(clientSource, 'if (client.connackSent || client._parsingBatch === 1) {\n    handle(client, packet, client._nextBatch)', 'enqueue counts the packet and hands it over with _nextBatch once CONNACK is out')
  t.match(handlersSource, "case 'publish':\n      handlePublish(client, packet, done)", 'handle passes a PUBLISH to handlePublish')
  t.match(handlersSource, /if \(!client\.connecting && !client\.connected\) \{/, 'only for a connecting or connected client')
  t.match(handlersSource, /if \(client\._keepaliveInterval > 0\) \{\s+client\._keepaliveTimer\.refresh\(\)/, 'and restarts the keep-alive (the gateway does, per chunk)')
  t.match(publishSource, "if (client.version === 5 && packet.properties?.topicAlias !== undefined) {", 'a topic alias needs properties (not taken)')
  t.match(publishSource, 'const publishActions = [\n  authorizePublish,\n  enqueuePublish\n]', 'then authorizePublish and enqueuePublish')
  t.match(publishSource, 'case 0:\n      client.broker.publish(packet, client, done)', 'QoS 0: broker.publish with the client and done')
  t.match(publishSource, /packet\._notAuthorized = true\s+client\.broker\.emit\('clientError', client, err\)/, 'MQTT 5: a refusal is a clientError and the message is dropped')
  t.match(publishSource, 'return client.broker.authorizePublish(client, packet, done)', '3.1.1: the refusal goes to the read loop')

  let refuse = false
  const broker = await Aedes.createBroker({ authorizePublish: (_c, _p, cb) => { cb(refuse ? new Error('no') : null) } })
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const connect = async (version: 4 | 5, clientId: string): Promise<{ client: Client, done: () => number }> => {
    const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
    t.teardown(() => { stream.destroy() })
    const client = handleStream(broker, stream, new AliasTable())
    let finished = 0
    pacePackets(client, { packetDone: () => { finished++ } })
    const plain = { cmd: 'publish', topic: 'd/1', qos: 0, retain: false, dup: false, payload: Buffer.from('x') }
    t.equal(publishQoS0(client, plain), false, 'not before CONNECT')
    const ready = new Promise<void>((resolve) => { broker.once('clientReady', () => resolve()) })
    injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId, keepalive: 0, length: 0 })
    await ready
    return { client, done: () => finished }
  }
  type Client = Parameters<typeof publishQoS0>[0]
  const seen: string[] = []
  await new Promise<void>((resolve) => broker.subscribe('d/#', (p: { topic: string, clientId?: string }, cb: () => void) => { seen.push(`${p.topic} ${String(p.clientId)}`); cb() }, () => resolve()))
  const v5 = await connect(5, 'direct-5')
  const before = v5.done()
  const publish = (over: object): boolean => publishQoS0(v5.client, { cmd: 'publish', topic: 'd/1', qos: 0, retain: false, payload: Buffer.from('x'), ...over } as never)
  t.equal(publish({}), true, 'taken')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(seen, ['d/1 direct-5'], 'published, with the client as aedes\' emitPacket marks it')
  t.equal(v5.done(), before + 1, 'and finished like any packet (_nextBatch, then the pacer)')
  for (const [what, over] of [['QoS 1', { qos: 1, messageId: 1 }], ['retained', { retain: true }], ['with properties', { properties: { topicAlias: 1 } }], ['an empty topic', { topic: '' }], ['a wildcard', { topic: 'd/+' }], ['too many levels', { topic: 'd' + '/x'.repeat(300) }], ['not a PUBLISH', { cmd: 'pingreq' }]] as const) {
    t.equal(publish(over), false, `not taken: ${what}`)
  }
  refuse = true
  const errors: string[] = []
  broker.on('clientError', (c: { id: string }, err: Error) => { errors.push(`${c.id} ${err.message}`) })
  t.equal(publish({ topic: 'd/2' }), true)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(seen, ['d/1 direct-5'], 'MQTT 5, refused: not published')
  t.same(errors, ['direct-5 no'], 'a clientError, as aedes\' authorizePublish emits it')
  t.equal((v5.client as unknown as { closed: boolean }).closed, false, 'and the connection goes on')
  refuse = false
  const v4 = await connect(4, 'direct-4')
  refuse = true
  t.equal(publishQoS0(v4.client, { cmd: 'publish', topic: 'd/3', qos: 0, retain: false } as never), true)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal((v4.client as unknown as { closed: boolean }).closed, true, '3.1.1, refused: the read loop got the error and closed the client')
  t.same(seen, ['d/1 direct-5'])
})

t.test('aedes keeps its store on broker.persistence: the one given, or its in-memory default (persistenceOf)', async (t) => {
  const { persistenceOf } = await import('../lib/aedes-internals.js')
  const aedesSource = readFileSync(require.resolve('aedes'), 'utf8')
  t.match(aedesSource, 'this.persistence = opts.persistence || memory()', 'aedes.js sets broker.persistence')
  const plain = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => plain.close(() => resolve())))
  const memory = persistenceOf(plain) as { subscriptionsByTopic?: unknown } | undefined
  t.type(memory?.subscriptionsByTopic, 'function', 'aedes\' in-memory store by default')
  const { createPersistence } = await import('../lib/persistence/index.js')
  const given = createPersistence({ kind: 'memory' })
  const broker = await Aedes.createBroker({ persistence: given as never })
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  t.equal(persistenceOf(broker), given, 'the store it was given')
  t.equal(persistenceOf({} as Aedes), undefined, 'a stand-in broker has none')
})

t.test('aedes holds connected clients in broker.clients by id and delayed wills in broker.delayedWills (clientById, holdsDelayedWill, assertSessionInternals)', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, clientById, holdsDelayedWill, assertSessionInternals } = await import('../lib/aedes-internals.js')
  const aedesSource = readFileSync(require.resolve('aedes'), 'utf8')
  t.match(aedesSource, 'this.clients[client.id] = client', 'a client is registered by id')
  t.match(aedesSource, 'delete this.clients[clientId]', 'and removed when it goes')
  t.match(aedesSource, 'this.delayedWills = new Map()', 'delayed wills are a Map')
  t.match(aedesSource, 'this._armIdTimer(this.delayedWills, client.id', 'keyed by client id')
  t.throws(() => clientById({} as Aedes, 'x'), /aedes internals changed/, 'clientById fails loudly without broker.clients')
  t.throws(() => holdsDelayedWill({} as Aedes, 'x'), /aedes internals changed/, 'holdsDelayedWill fails loudly without broker.delayedWills')
  t.throws(() => assertSessionInternals({} as Aedes), /aedes internals changed/)
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  hardenBroker(broker)
  t.doesNotThrow(() => assertSessionInternals(broker))
  const id = 'internals-will'
  t.equal(clientById(broker, id), undefined, 'not connected yet')
  t.equal(clientById(broker, 'constructor'), undefined, 'no inherited member is a client')
  const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
  injectPacket(client, {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: id, keepalive: 0, length: 0,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: 'internals/will', payload: Buffer.from('gone'), qos: 0, retain: false, properties: { willDelayInterval: 30 } }
  })
  await ready
  t.equal(clientById(broker, id), client, 'the connected client, by id')
  t.equal(holdsDelayedWill(broker, id), false, 'no will held while connected')
  const gone = new Promise<void>((resolve) => broker.once('clientDisconnect', () => resolve()))
  stream.destroy()
  await gone
  t.equal(clientById(broker, id), undefined, 'gone once closed')
  for (let i = 0; i < 100 && !holdsDelayedWill(broker, id); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(holdsDelayedWill(broker, id), true, 'aedes holds the will for its Will Delay Interval')
})

t.test('clientWill reads the will aedes keeps on the Client after CONNECT', async (t) => {
  const { clientWill } = await import('../lib/aedes-internals.js')
  const { default: mqttPacket } = await import('mqtt-packet')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const stream = new PassThrough()
  const client = broker.handle(stream)
  t.equal(clientWill(client), undefined, 'no will before CONNECT')
  const connected = new Promise<void>((resolve) => broker.once('client', () => resolve()))
  stream.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'w', keepalive: 0, will: { topic: 'last/words', payload: Buffer.from('bye'), qos: 1, retain: true } }))
  await connected
  const will = clientWill(client)
  t.equal(will?.topic, 'last/words')
  t.equal(will?.payload.toString(), 'bye')
  t.equal(will?.qos, 1)
  t.equal(will?.retain, true)
})

t.test('aedes publishes a client\'s PUBLISH through broker.publish(packet, client, done) and closes on its error (interceptPublishErrors)', async (t) => {
  const { interceptPublishErrors } = await import('../lib/aedes-internals.js')
  const handlerSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/publish.js'), 'utf8')
  t.match(handlerSource, 'client.broker.publish(packet, client, done)', 'QoS 1: published through the instance\'s publish with the client, done being the read loop')
  const aedesSource = readFileSync(require.resolve('aedes'), 'utf8')
  t.match(aedesSource, 'publish (packet, client, done) {', 'broker.publish(packet, client, done)')
  t.match(aedesSource, 'const publishFuncsQoS = [\n  storeRetained,', 'a retained message is stored first: a refused write stops the publish before any delivery')
  const refused = new Error('refused')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  ;(broker as unknown as { persistence: { storeRetained: () => Promise<void> } }).persistence.storeRetained = async () => { throw refused }
  const seen: Array<[Error, number | undefined, unknown]> = []
  let answer = true
  interceptPublishErrors(broker, (err, packet, client) => { seen.push([err, packet.messageId, client]); return answer })
  const client = { id: 'c' } as never
  const publish = (c: unknown): Promise<Error | null | undefined> => new Promise((resolve) => {
    (broker.publish as unknown as (p: object, c: unknown, d: (e?: Error | null) => void) => void)({ cmd: 'publish', topic: 'r', payload: Buffer.from('x'), qos: 1, retain: true, messageId: 9 }, c, resolve)
  })
  t.equal(await publish(client), null, 'answered: no error for the read loop')
  t.same(seen, [[refused, 9, client]], 'the handler saw the error, the client\'s packet id and the client')
  answer = false
  t.equal(await publish(client), refused, 'not answered: the error goes on')
  t.equal(await publish(null), refused, 'no client: not intercepted')
  t.equal(seen.length, 2)
  await new Promise<void>((resolve) => { broker.publish({ cmd: 'publish', topic: 'q', payload: Buffer.from('y'), qos: 0, retain: false, dup: false }, () => resolve()) })
  t.pass('the two-argument form still works')
})

t.test('a queued message has the fields aedes-packet gives one: brokerId, the next brokerCounter, no packet id; messageExpiry as aedes.publish sets it (queuedPacket)', async (t) => {
  const { queuedPacket } = await import('../lib/aedes-internals.js')
  const packetSource = readFileSync(require.resolve('aedes-packet', { paths: [require.resolve('aedes')] }), 'utf8')
  t.match(packetSource, 'this.brokerCounter = original.brokerCounter || (broker ? (++broker.counter) : 0)', 'aedes-packet counts on broker.counter')
  const aedesSource = readFileSync(require.resolve('aedes'), 'utf8')
  t.match(aedesSource, 'p.messageExpiry = Date.now() + (p.properties.messageExpiryInterval * 1000)', 'aedes.publish sets the absolute expiry')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const before = (broker as unknown as { counter: number }).counter
  const q = queuedPacket(broker, { topic: 't', payload: Buffer.from('x'), qos: 1, properties: { messageExpiryInterval: 10 } })
  t.equal(q.brokerId, broker.id)
  t.equal(q.brokerCounter, before + 1)
  t.equal((broker as unknown as { counter: number }).counter, before + 1, 'the instance\'s counter moved on')
  t.ok(typeof q.messageExpiry === 'number' && Math.abs((q.messageExpiry as number) - Date.now() - 10000) < 1000)
  t.equal(q.messageId, undefined)
})

t.test('a step before aedes publishes a client\'s message: awaited ahead of any delivery, its error the publish\'s (beforeClientPublish)', async (t) => {
  const { beforeClientPublish, interceptPublishErrors } = await import('../lib/aedes-internals.js')
  const handlerSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/publish.js'), 'utf8')
  t.match(handlerSource, /incomingStorePacket\(client, packet\)[\s\S]*client\.broker\.publish\(packet, client, \(err\)/, 'QoS 2: published through the instance\'s publish with the client, after storing it')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const delivered: string[] = []
  broker.subscribe('#', (packet: { topic: string }, cb: () => void) => { delivered.push(packet.topic); cb() }, () => {})
  const refused = new Error('refused')
  let release: () => void = () => {}
  const steps: string[] = []
  beforeClientPublish(broker, (packet) => {
    steps.push(packet.topic)
    if (packet.topic === 'now') return undefined
    if (packet.topic === 'refused') return Promise.reject(refused)
    return new Promise<void>((resolve) => { release = resolve })
  })
  const answered: Error[] = []
  interceptPublishErrors(broker, (err) => { answered.push(err); return true })
  const client = { id: 'c' } as never
  const publish = (topic: string, c: unknown): Promise<Error | null | undefined> => new Promise((resolve) => {
    (broker.publish as unknown as (p: object, c: unknown, d: (e?: Error | null) => void) => void)({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: false, messageId: 3 }, c, resolve)
  })
  t.equal(await publish('now', client), null)
  t.same(delivered, ['now'], 'no step: published at once')
  const waiting = publish('later', client)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(delivered, ['now'], 'not delivered while the step is pending')
  release()
  t.equal(await waiting, null)
  t.same(delivered, ['now', 'later'], 'delivered once the step resolved')
  t.equal(await publish('refused', client), null, 'a refused step: interceptPublishErrors answered its error')
  t.same(answered, [refused])
  t.same(delivered, ['now', 'later'], 'a refused step: delivered to nobody')
  t.equal(await publish('nobody', null), null)
  t.same(steps, ['now', 'later', 'refused'], 'no client: no step')
  await new Promise<void>((resolve) => { broker.publish({ cmd: 'publish', topic: 'q', payload: Buffer.from('y'), qos: 0, retain: false, dup: false }, () => resolve()) })
  t.pass('the two-argument form still works')
})

t.test('aedes emits \'subscribe\' then asks broker.persistence.createRetainedStreamCombi for the due filters, in one run (claimRetainedAtSubscribe, deliverRetainedByBroker)', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, claimRetainedAtSubscribe } = await import('../lib/aedes-internals.js')
  const subscribeSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/subscribe.js'), 'utf8')
  t.match(subscribeSource, /broker\.emit\('subscribe', subs, client\)[\s\S]*persistence\.createRetainedStreamCombi\(topics\)/, 'completeSubscribe: the event, then the lookup')
  t.match(subscribeSource, 'client.deliverQoS(newPacket, cb)', 'aedes sends each retained message through client.deliverQoS')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  await new Promise<void>((resolve) => broker.publish({ cmd: 'publish', topic: 'r/1', payload: Buffer.from('kept'), qos: 0, retain: true, dup: false }, () => resolve()))
  const offers: Array<{ client: unknown, filters: string[], si: number | undefined, topics: string[] }> = []
  let take = true
  claimRetainedAtSubscribe(broker, (client, subscriptions, lookup) => {
    if (!take) return false
    const { messages } = lookup()
    const topics: string[] = []
    // a store without retainedBatches (aedes' own): its stream, one message per batch
    void (async () => { for await (const batch of messages) for (const p of batch) topics.push((p as { topic: string }).topic) })()
    offers.push({ client, filters: subscriptions.map(s => s.topic), si: subscriptions[0]?.subscriptionIdentifier, topics })
    return true
  })
  const written: Buffer[] = []
  const stream = new Duplex({ read () {}, write (chunk: Buffer, _enc, cb) { written.push(chunk); cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'retained-internals', keepalive: 0, length: 0 })
  await ready
  const subscribed = (): Promise<void> => new Promise<void>((resolve) => broker.once('subscribe', () => setTimeout(resolve, 50)))
  let done = subscribed()
  injectPacket(client, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r/#', qos: 0 }], properties: { subscriptionIdentifier: 7 } })
  await done
  t.equal(offers.length, 1, 'offered once')
  t.equal(offers[0]?.client, client, 'with the subscribing client')
  t.same(offers[0]?.filters, ['r/#'])
  t.equal(offers[0]?.si, 7, 'the SUBSCRIBE\'s Subscription Identifier on each subscription')
  t.same(offers[0]?.topics, ['r/1'], 'the lookup reads the store')
  const wroteRetained = (): boolean => Buffer.concat(written).includes(Buffer.from('kept'))
  t.notOk(wroteRetained(), 'taken: aedes sends nothing')
  done = subscribed()
  injectPacket(client, { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'r/+', qos: 0, rh: 2 }] })
  await done
  t.equal(offers.length, 1, 'Retain Handling 2: aedes asks for no retained messages, so nothing is offered')
  take = false
  done = subscribed()
  injectPacket(client, { cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'r/1', qos: 0 }] })
  await done
  t.ok(wroteRetained(), 'declined: aedes sends it')
  stream.destroy()
})

t.test('claimRetainedAtSubscribe reads a culex store through retainedBatches, not its stream', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, claimRetainedAtSubscribe, persistenceOf } = await import('../lib/aedes-internals.js')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const store = persistenceOf(broker) as unknown as { retainedBatches?: (filters: string[]) => AsyncIterable<readonly object[]> }
  const asked: string[][] = []
  const stored = [{ topic: 'b/1' }, { topic: 'b/2' }]
  store.retainedBatches = (filters) => { asked.push(filters); return (async function * () { yield stored })() }
  const got: object[][] = []
  claimRetainedAtSubscribe(broker, (_client, _subscriptions, lookup) => {
    void (async () => { for await (const batch of lookup().messages) got.push([...batch]) })()
    return true
  })
  const stream = new Duplex({ read () {}, write (_chunk: Buffer, _enc, cb) { cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'retained-batches', keepalive: 0, length: 0 })
  await ready
  const done = new Promise<void>((resolve) => broker.once('subscribe', () => setTimeout(resolve, 50)))
  injectPacket(client, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'b/#', qos: 0 }] })
  await done
  t.same(asked, [['b/#']], 'asked with the due filters')
  t.equal(got.length, 1, 'one batch')
  t.equal(got[0]?.[0], stored[0], 'the stored objects themselves, uncopied')
  stream.destroy()
})

t.test('aedes arms a delayed will before it emits clientDisconnect, and cancelDelayedWill stops it (delayedWillTimer, cancelDelayedWill)', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, delayedWillTimer, cancelDelayedWill, holdsDelayedWill } = await import('../lib/aedes-internals.js')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(clientSource, /that\.broker\.scheduleWill\(that, will, delay\)[\s\S]*that\.broker\.unregisterClient\(that\)/, 'the will is scheduled before the client is unregistered (clientDisconnect)')
  t.throws(() => delayedWillTimer({} as Aedes, 'x'), /aedes internals changed/, 'delayedWillTimer fails loudly without broker.delayedWills')
  t.equal(cancelDelayedWill({} as Aedes, 'x', { clear () {} }), false)
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  hardenBroker(broker)
  const id = 'internals-cancel'
  const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
  injectPacket(client, {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: id, keepalive: 0, length: 0,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: 'internals/cancelled', payload: Buffer.from('gone'), qos: 0, retain: false, properties: { willDelayInterval: 1 } }
  })
  await ready
  t.equal(delayedWillTimer(broker, id), undefined, 'no timer while connected')
  const published: string[] = []
  broker.on('publish', (packet) => { published.push(packet.topic) })
  const timer = await new Promise<ReturnType<typeof delayedWillTimer>>((resolve) => {
    broker.once('clientDisconnect', () => resolve(delayedWillTimer(broker, id)))
    stream.destroy()
  })
  t.ok(timer !== undefined, 'the timer is there when clientDisconnect is emitted')
  if (timer === undefined) return
  t.equal(cancelDelayedWill(broker, id, { clear () {} }), false, 'another timer is not cancelled')
  t.equal(cancelDelayedWill(broker, id, timer), true, 'the same timer is')
  t.equal(holdsDelayedWill(broker, id), false, 'aedes no longer holds the will')
  await new Promise((resolve) => setTimeout(resolve, 1300))
  t.notOk(published.includes('internals/cancelled'), 'and does not publish it when its delay would have run out')
})

t.test('discardWill: aedes publishes client.will at close, and not once it is discarded', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, discardWill } = await import('../lib/aedes-internals.js')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(clientSource, 'const will = that.will', 'the will sent at close is client.will')
  t.throws(() => discardWill({} as Parameters<typeof discardWill>[0]), /aedes internals changed/)
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  hardenBroker(broker)
  const published: string[] = []
  broker.on('publish', (packet) => { published.push(packet.topic) })
  for (const discard of [false, true]) {
    const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
    const client = handleStream(broker, stream, new AliasTable())
    pacePackets(client, { packetDone: () => {} })
    const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
    const topic = `internals/discard-${String(discard)}`
    injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: topic, keepalive: 0, length: 0, will: { topic, payload: Buffer.from('x'), qos: 0, retain: false } })
    await ready
    if (discard) discardWill(client)
    const gone = new Promise<void>((resolve) => broker.once('clientDisconnect', () => resolve()))
    stream.destroy()
    await gone
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.equal(published.includes(topic), !discard, discard ? 'a discarded will is not published' : 'a will is published at close')
  }
})
