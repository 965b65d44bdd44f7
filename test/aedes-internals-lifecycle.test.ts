/**
 * The aedes 2.0.0-beta.1 internals of a connection's life culex relies on
 * (lib/aedes-internals.ts): keep-alive, listeners, the queue drain at CONNECT
 * and the client events. If an aedes upgrade changes any of them, this fails
 * first and says which (the rest: aedes-internals.test.ts).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Duplex, PassThrough, Readable, Writable } from 'node:stream'
import { Aedes, type Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { hardenBroker, hardenClient, clientSubscriptions } from '../lib/aedes-internals.js'

const require = createRequire(import.meta.url)

/** An aedes client past CONNACK on a stream that, as the gateway's, reads nothing and takes every write. */
async function connectedClient (broker: Aedes, clientId: string, keepalive: number): Promise<{ client: Client, stream: Duplex }> {
  const { handleStream, injectPacket, pacePackets, AliasTable } = await import('../lib/aedes-internals.js')
  const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive, length: 0 })
  await ready
  return { client, stream }
}

t.test('[MQTT-3.1.2-22] aedes keeps the keep-alive in client._keepaliveTimer / _keepaliveInterval, which refreshKeepAlive restarts', async (t) => {
  const { handleStream, injectPacket, pacePackets, refreshKeepAlive, AliasTable } = await import('../lib/aedes-internals.js')
  const connectSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/connect.js'), 'utf8')
  const handlersSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/index.js'), 'utf8')
  t.match(connectSource, 'client._keepaliveInterval = (keepalive * 1500) + 1', 'the timer lasts 1.5 x keep-alive')
  t.match(connectSource, 'client._keepaliveTimer = setTimeout(keepaliveTimeout, client._keepaliveInterval)', 'one setTimeout per client')
  t.match(handlersSource, 'client._keepaliveTimer.refresh()', 'aedes restarts it for the packets it handles')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  // reads nothing (the gateway hands packets over decoded), takes every write
  const stream = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const c = client as unknown as { _keepaliveInterval: number, _keepaliveTimer: NodeJS.Timeout | null }
  t.equal(c._keepaliveInterval, -1, 'no keep-alive before CONNECT')
  t.doesNotThrow(() => refreshKeepAlive(client), 'nothing to restart before CONNECT')
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('aedes did not accept the CONNECT')), 5000)
    broker.once('clientReady', () => { clearTimeout(timer); resolve() })
  })
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'keepalive-internals', keepalive: 2, length: 0 })
  await ready
  t.equal(c._keepaliveInterval, 3001, 'armed at 1.5 x 2 s after CONNECT')
  t.equal(typeof c._keepaliveTimer?.refresh, 'function', 'a Node Timeout')
  t.doesNotThrow(() => refreshKeepAlive(client))
  t.equal(c._keepaliveTimer?.hasRef(), true, 'still armed after the restart')
  stream.destroy()
})

t.test('[MQTT-3.1.2-24] wheelKeepAlive: aedes\' keep-alive Timeout becomes a timer wheel entry that refreshes, expires as aedes\' does, and is dropped at close', async (t) => {
  const { refreshKeepAlive, wheelKeepAlive } = await import('../lib/aedes-internals.js')
  const connectSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/connect.js'), 'utf8')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(connectSource, /function keepaliveTimeout \(\) \{\s+client\.broker\.emit\('keepaliveTimeout', client\)\s+client\.emit\('error', new Error\('keep alive timeout'\)\)\s+\}/, 'aedes\' timeout emits keepaliveTimeout, then the client\'s error (the entry does the same)')
  t.match(clientSource, /if \(this\._keepaliveTimer\) \{\s+clearTimeout\(this\._keepaliveTimer\)\s+this\._keepaliveInterval = -1\s+this\._keepaliveTimer = null/, 'aedes drops the timer at close (the entry is then forgotten)')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const { client, stream } = await connectedClient(broker, 'wheel-keepalive', 1)
  const c = client as unknown as { _keepaliveInterval: number, _keepaliveTimer: { due?: number, armed?: boolean, refresh: () => void } | null }
  const timeout = c._keepaliveTimer
  wheelKeepAlive(client)
  const entry = c._keepaliveTimer
  t.not(entry, timeout, 'the Timeout is replaced')
  t.equal(typeof entry?.due, 'number', 'by a wheel entry')
  wheelKeepAlive(client)
  t.equal(c._keepaliveTimer, entry, 'once')
  const before = entry?.due as number
  await new Promise((resolve) => setTimeout(resolve, 20))
  refreshKeepAlive(client)
  t.ok((entry?.due as number) > before, 'refreshKeepAlive moves its deadline')
  const started = Date.now()
  const expired = new Promise<[number, unknown]>((resolve) => {
    broker.once('keepaliveTimeout', (who: unknown) => resolve([Date.now() - started, who]))
  })
  const errored = new Promise<string>((resolve) => broker.once('clientError', (_c: unknown, err: Error) => resolve(err.message)))
  const [after, who] = await expired
  t.equal(who, client, 'keepaliveTimeout for the silent client')
  t.ok(after >= 1500 - 25, `not before 1.5 x 1 s after the last refresh (${after} ms)`)
  t.equal(await errored, 'keep alive timeout', 'and aedes\' error, which the gateway turns into DISCONNECT 0x8D')
  t.equal(c._keepaliveTimer, null, 'aedes dropped it when the client closed')
  t.equal(entry?.armed, false, 'so the wheel forgets it')
  stream.destroy()
  const second = await connectedClient(broker, 'wheel-keepalive-closed', 1)
  wheelKeepAlive(second.client)
  let timedOut = false
  broker.once('keepaliveTimeout', () => { timedOut = true })
  second.stream.destroy()
  await new Promise((resolve) => setTimeout(resolve, 1800))
  t.equal(timedOut, false, 'a closed client\'s entry never expires')
})

t.test('compactClientListeners: a connected client\'s listeners move to a fixed-shape table that EventEmitter keeps using', async (t) => {
  const { compactClientListeners } = await import('../lib/aedes-internals.js')
  const clientSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/client.js'), 'utf8')
  t.match(clientSource, 'util.inherits(Client, EventEmitter)', 'an aedes Client is an EventEmitter')
  t.match(clientSource, "this.once('connected', dequeue)", 'with a one-time connected listener (gone before the tables are swapped)')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const { client, stream } = await connectedClient(broker, 'compact-listeners', 0)
  await new Promise((resolve) => process.nextTick(resolve))
  const c = client as unknown as { _events: object, on: (e: string, l: (...a: unknown[]) => void) => void, emit: (e: string, ...a: unknown[]) => boolean, listenerCount: (e: string) => number, removeAllListeners: (e: string) => void }
  const before = c._events
  t.equal(Object.getPrototypeOf(before), null, 'Node keeps them in a null-prototype object')
  const errorListeners = c.listenerCount('error')
  compactClientListeners(client)
  t.not(c._events, before, 'a new table')
  t.not(Object.getPrototypeOf(c._events), null)
  t.equal(c.listenerCount('error'), errorListeners, 'with the same listeners')
  t.equal(c.listenerCount('toString'), 0, 'and no inherited names')
  t.equal(c.emit('constructor'), false, 'nothing to call for a name on Object.prototype')
  const seen: unknown[] = []
  c.on('x', (v) => seen.push(v))
  t.equal(c.emit('x', 1), true)
  c.removeAllListeners('x')
  t.equal(c.emit('x', 2), false, 'added and removed as before')
  t.same(seen, [1])
  const table = c._events
  compactClientListeners(client)
  t.equal(c._events, table, 'once')
  stream.destroy()
})

t.test('aedes drains a session\'s queue at CONNECT through the pipeline it imports from \'stream\'; with nothing queued skipEmptyQueuePipelines answers it alone', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, NothingQueued, skipEmptyQueuePipelines, skippedPipelines, persistenceOf } = await import('../lib/aedes-internals.js')
  const connectSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/handlers/connect.js'), 'utf8')
  t.match(connectSource, "import { pipeline } from 'stream'", 'emptyQueue\'s pipeline is the one of the stream module')
  t.match(connectSource, /const outgoing = persistence\.outgoingStream\(client\)[\s\S]{0,80}pipeline\(\s*outgoing,/, 'the store\'s outgoing stream is the pipeline\'s first')
  const { promisify } = await import('node:util')
  const stream = await import('node:stream')
  const before = stream.pipeline
  skipEmptyQueuePipelines()
  skipEmptyQueuePipelines()
  t.not(stream.pipeline, before, 'stream.pipeline is the bypass')
  t.equal(promisify(stream.pipeline), promisify(before), 'util.promisify still gives the promise version')

  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  hardenBroker(broker)
  const store = persistenceOf(broker) as { outgoingStream: (client: unknown) => unknown, outgoingEnqueueCombi: (subs: object[], packet: object) => Promise<void> }
  const queued = store.outgoingStream.bind(store)
  let empty = true
  store.outgoingStream = (client) => empty ? new NothingQueued() : queued(client)
  const delivered: string[] = []
  for (const nothing of [true, false]) {
    empty = nothing
    const skipped = skippedPipelines()
    const clientId = `internals/queue-${String(nothing)}`
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (packet) => { if (packet.cmd === 'publish') delivered.push(clientId) })
    const conn = new Duplex({ read () {}, write (chunk: Buffer, _enc, cb) { parser.parse(chunk); cb() } })
    const client = handleStream(broker, conn, new AliasTable())
    pacePackets(client, { packetDone: () => {} })
    const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
    if (!nothing) {
      await store.outgoingEnqueueCombi([{ clientId, topic: 'q', qos: 1 }], { cmd: 'publish', topic: 'q', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, brokerId: broker.id, brokerCounter: 1 })
    }
    injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: nothing, clientId, keepalive: 0, length: 0 })
    await ready
    t.equal(skippedPipelines() - skipped, nothing ? 1 : 0, nothing ? 'an empty queue costs no pipeline' : 'a queue goes through Node\'s pipeline')
    if (!nothing) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      t.same(delivered, [clientId], 'and its queued message is sent')
    }
    conn.destroy()
  }
  const sent = new Promise<unknown>((resolve, reject) => { stream.pipeline(Readable.from(['a', 'b']), new Writable({ objectMode: true, write (_c, _e, cb) { cb() } }), (err) => { if (err) reject(err); else resolve(undefined) }) })
  await sent
  t.pass('an ordinary pipeline still runs')
})

t.test('aedes publishes $SYS/{id}/new/clients and /disconnect/clients per client; skipUnheardClientEvents publishes them only to someone listening', async (t) => {
  const { handleStream, injectPacket, pacePackets, AliasTable, skipUnheardClientEvents } = await import('../lib/aedes-internals.js')
  const aedesSource = readFileSync(require.resolve('aedes'), 'utf8')
  t.match(aedesSource, "topic: $SYS_PREFIX + this.id + '/new/clients'", 'registerClient publishes new/clients')
  t.match(aedesSource, "topic: $SYS_PREFIX + this.id + '/disconnect/clients'", 'unregisterClient publishes disconnect/clients')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  hardenBroker(broker)
  skipUnheardClientEvents(broker)
  const published: string[] = []
  broker.on('publish', (packet) => { if (packet.topic.startsWith('$SYS/')) published.push(packet.topic.slice(packet.topic.lastIndexOf('/', packet.topic.length - 9) + 1)) })
  const connectAndLeave = async (clientId: string): Promise<void> => {
    const conn = new Duplex({ read () {}, write (_chunk, _enc, cb) { cb() } })
    const client = handleStream(broker, conn, new AliasTable())
    pacePackets(client, { packetDone: () => {} })
    const ready = new Promise<void>((resolve) => broker.once('clientReady', () => resolve()))
    injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, length: 0 })
    await ready
    const gone = new Promise<void>((resolve) => broker.once('clientDisconnect', () => resolve()))
    conn.destroy()
    await gone
    await new Promise((resolve) => setImmediate(resolve))
  }
  await connectAndLeave('internals/unheard')
  t.same(published, [], 'nobody listens: neither is published')
  const heard: string[] = []
  const listener = (packet: { payload: Buffer | string }, cb: () => void): void => { heard.push(String(packet.payload)); cb() }
  await new Promise<void>((resolve) => broker.subscribe('$SYS/+/+/clients', listener as never, () => resolve()))
  await connectAndLeave('internals/heard')
  t.same(published, ['new/clients', 'disconnect/clients'], 'with a listener both are published')
  t.same(heard, ['internals/heard', 'internals/heard'], 'and reach it')
  await new Promise<void>((resolve) => broker.unsubscribe('$SYS/+/+/clients', listener as never, () => resolve()))
  published.length = 0
  await connectAndLeave('internals/unheard-again')
  t.same(published, [], 'once it left, neither is published again')
})
