/**
 * The aedes 2.0.0-beta.1 internals culex relies on (lib/aedes-internals.ts
 * and lib/protocol/*). If an aedes upgrade changes any of them, this fails
 * first and says which.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { PassThrough } from 'node:stream'
import { Aedes } from 'aedes'
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
  t.equal(Object.getPrototypeOf(clientSubscriptions(client)), null)
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
  t.match(clientSource, "this._parser.on('packet', enqueue)", 'aedes feeds packets to handlers through _parser\'s packet event (packetInjector)')
  t.match(clientSource, 'const q = this._parser._queue', 'aedes queues pre-connect packets on _parser._queue (packetInjector keeps it)')
})

t.test('the Client internals the gateway drives exist: _parser, _nextBatch, _parsingBatch, _nextId, deliver0/deliverQoS, mq._matcher', async (t) => {
  const { packetInjector, routeQoS0Delivery, allocatePacketId, liveSubscriptionCount } = await import('../lib/aedes-internals.js')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const stream = new PassThrough()
  const client = broker.handle(stream)
  let done = 0
  const injector = packetInjector(client, () => { done++ })
  t.equal(injector.inProgress(), 0, 'starts with no packet in progress')
  const parser = (client as unknown as { _parser: { parse?: unknown, client?: unknown, _queue?: unknown, listenerCount: (e: string) => number } })._parser
  t.equal(typeof parser.parse, 'undefined', 'the byte parser (and its BufferList stream) was replaced')
  t.equal(parser.client, client, 'the replacement carries client, as aedes\' enqueue reads it')
  t.same(parser._queue, [], 'and the pre-connect queue')
  t.equal(parser.listenerCount('packet'), 1, 'and aedes\' packet listener')
  t.equal(parser.listenerCount('error'), 1, 'and aedes\' error listener')
  t.doesNotThrow(() => routeQoS0Delivery(client, () => false))
  const first = allocatePacketId(client)
  const second = allocatePacketId(client)
  t.equal(second, first >= 65535 ? 1 : first + 1, 'ids follow aedes\' sequence')
  t.equal(liveSubscriptionCount(broker, 'nothing/here'), 0)
  await new Promise<void>((resolve) => broker.subscribe('some/+', (_p: unknown, cb: () => void) => cb(), () => resolve()))
  t.equal(liveSubscriptionCount(broker, 'some/topic'), 1, 'the matcher sees a listener')
  injector.inject({ cmd: 'pingreq', length: 0 })
  t.equal(done, 1, 'aedes handled the injected packet (refused before CONNECT) and called _nextBatch')
  stream.destroy()
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
