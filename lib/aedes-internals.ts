/**
 * The one place where culex touches aedes 2.0.0-beta.1 beyond its documented
 * API. Each function names the internal it relies on; test/aedes-internals.test.ts
 * fails loudly when an aedes upgrade changes any of them.
 */
import { syncBuiltinESMExports } from 'node:module'
import streamModule, { Readable, type Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import mqtt from 'mqtt-packet'
import { TimerWheel, wheelNow } from './protocol/timer-wheel.js'

/**
 * aedes keys `broker.clients`, `client.subscriptions` and `client.duplicates`
 * by client id, topic filter and broker id in plain objects, so a client id
 * or filter named like an Object.prototype member (`constructor`,
 * `__proto__`, `toString`) reads an inherited function and crashes or
 * confuses the broker (GHSA-52qw-whmv-87c5, fixed upstream only in 1.2.0).
 * Objects without a prototype have no such members.
 */
export function hardenBroker (broker: Aedes): void {
  const b = broker as unknown as { clients: Record<string, unknown> }
  if (Object.keys(b.clients).length > 0) throw new Error('hardenBroker must run before clients connect')
  b.clients = Object.create(null) as Record<string, unknown>
}

export function hardenClient (client: Client): void {
  const c = client as unknown as { subscriptions: Record<string, unknown>, duplicates: Record<string, unknown> }
  if (typeof c.subscriptions !== 'object' || typeof c.duplicates !== 'object') {
    throw new Error('aedes Client no longer has subscriptions/duplicates maps: review lib/aedes-internals.ts')
  }
  c.subscriptions = Object.create(NO_MEMBERS) as Record<string, unknown>
  c.duplicates = NO_COUNTER_DEDUPE
}

/**
 * The prototype of every client's `subscriptions`: it has no members and no
 * prototype, so no filter name reads an inherited one. V8 keeps an object made
 * by `Object.create(null)` in dictionary mode, about 180 bytes more per
 * connection (heap snapshot over 3000 idle connections) than one whose
 * prototype is this object.
 */
const NO_MEMBERS: object = Object.freeze(Object.create(null) as object)

/**
 * aedes drops a message for a client when `client.duplicates[brokerId]`
 * already holds a higher broker counter, meaning to drop the second copy of
 * a message that matches two subscriptions of the client. But counters are
 * taken when a message enters the broker, and a retained message waits for
 * the store before it is forwarded, so a later message (from any client)
 * often overtakes it, and aedes then dropped the retained one for every
 * subscriber that got both. This `duplicates` remembers nothing, so that
 * check always passes; lib/broker/hooks/forward.ts drops only exact copies of the message
 * just forwarded (`Connection.isRepeat`).
 */
const NO_COUNTER_DEDUPE: Record<string, unknown> = new Proxy(Object.create(null) as Record<string, unknown>, {
  get: () => undefined,
  set: () => true,
  deleteProperty: () => true
})

/** A subscription as aedes keeps it on `client.subscriptions[filter]`. */
export interface AedesClientSubscription {
  qos: number
  rh?: number
  rap?: boolean | number
  nl?: boolean | number
  si?: number
}

/** The client's live subscriptions, keyed by topic filter (aedes internal). */
export function clientSubscriptions (client: Client): Record<string, AedesClientSubscription> {
  return (client as unknown as { subscriptions: Record<string, AedesClientSubscription> }).subscriptions
}


interface Matcher {
  match: (topic: string, ctx?: unknown) => unknown[]
  add: (...args: unknown[]) => unknown
  remove: (...args: unknown[]) => unknown
  clear: (...args: unknown[]) => unknown
  /** qlobber's options, as mqemitter set them */
  _separator?: unknown
  _wildcard_one?: unknown
  _wildcard_some?: unknown
}

/**
 * The remembered counts a listener for `filter` coming or going can change:
 * a filter whose first level is a word matches only topics whose first
 * level is that word, so the counts of other topics stay (a resumed
 * session's subscription to `a/b` keeps the count of a `$SYS/...` topic).
 * Without qlobber's separator and wildcards, or for a filter starting with a
 * wildcard, every count is forgotten.
 */
function forgetStable (stable: Map<string, number>, m: Matcher, filter: unknown): void {
  const separator = m._separator
  if (typeof filter !== 'string' || typeof separator !== 'string' || separator.length === 0 ||
    typeof m._wildcard_one !== 'string' || typeof m._wildcard_some !== 'string') {
    stable.clear()
    return
  }
  const first = firstLevel(filter, separator)
  if (first === m._wildcard_one || first === m._wildcard_some) {
    stable.clear()
    return
  }
  for (const topic of stable.keys()) if (firstLevel(topic, separator) === first) stable.delete(topic)
}

function firstLevel (topic: string, separator: string): string {
  const end = topic.indexOf(separator)
  return end < 0 ? topic : topic.slice(0, end)
}

/** The live subscriptions (mqemitter listeners) of a broker, as the gateway asks about them. */
export interface LiveSubscriptions {
  /** how many listeners match `topic` */
  count (topic: string): number
  /**
   * count(topic) when it is known without matching: `topic` is the one aedes
   * matched last and no listener came or went since (as when the message
   * being acknowledged was just published); otherwise undefined.
   */
  known (topic: string): number | undefined
  /** count(topic), remembered for each topic asked until a listener that may match it comes or goes (for a few fixed topics) */
  stableCount (topic: string): number
}

const liveByMatcher = new WeakMap<object, LiveSubscriptions>()

/** topics whose matching listeners the matcher remembers (all forgotten when full) */
const REMEMBERED_MATCHES = 1024
/** longer topics are matched each time: what is remembered stays under about 256 KiB of topic names */
const REMEMBERED_TOPIC_LENGTH = 256

/**
 * aedes has no public way to ask which live subscriptions match a topic; its
 * mqemitter keeps them in a qlobber, `mq._matcher`, and matches every
 * message's topic when it publishes the message. The gateway asks the same
 * question right after, to choose PUBACK 0x10 (No matching subscribers), so
 * the matcher's `match` is wrapped to remember its last answer, and
 * `add`/`remove`/`clear` to forget it: that second question is then a string
 * comparison instead of a second match.
 *
 * The wrapper also remembers the listeners matching each of the last
 * topics (up to REMEMBERED_MATCHES, forgotten together when a listener comes
 * or goes): a device publishes to the same few topics again and again, and
 * splitting and walking the topic tree took about a tenth of a QoS 0
 * fan-in's broker CPU (benchmarks/README.md). qlobber returns a new array
 * per match, and mqemitter only reads it, so one array may serve several
 * messages.
 */
export function liveSubscriptions (broker: Aedes): LiveSubscriptions {
  const mq = (broker as unknown as { mq: { _matcher?: Partial<Matcher> } }).mq
  const matcher = mq._matcher
  if (!matcher || typeof matcher.match !== 'function' || typeof matcher.add !== 'function' || typeof matcher.remove !== 'function' || typeof matcher.clear !== 'function') {
    throw new Error('aedes mqemitter no longer has _matcher with match/add/remove/clear: review lib/aedes-internals.ts')
  }
  const m = matcher as Matcher
  const existing = liveByMatcher.get(m)
  if (existing !== undefined) return existing
  const { match, add, remove, clear } = m
  let lastTopic: string | undefined
  let lastCount = 0
  const stable = new Map<string, number>()
  const known = new Map<string, unknown[]>()
  m.match = function matchRemembered (topic, ctx) {
    let matches: unknown[] | undefined
    // qlobber's match(topic, ctx): one with a context may filter, and is not remembered
    if (ctx === undefined) {
      matches = known.get(topic)
      if (matches === undefined) {
        matches = match.call(this, topic)
        if (topic.length <= REMEMBERED_TOPIC_LENGTH) {
          if (known.size >= REMEMBERED_MATCHES) known.clear()
          known.set(topic, matches)
        }
      }
      lastTopic = topic
    } else {
      matches = match.call(this, topic, ctx)
      lastTopic = undefined
    }
    lastCount = matches.length
    return matches
  }
  // mqemitter's add(topic, listener) and remove(topic[, listener]): the filter comes first
  const forget = (filter: unknown): void => {
    lastTopic = undefined
    if (stable.size > 0) forgetStable(stable, m, filter)
    if (known.size > 0) known.clear()
  }
  m.add = function addForgetting (...args) { forget(args[0]); return add.apply(this, args) }
  m.remove = function removeForgetting (...args) { forget(args[0]); return remove.apply(this, args) }
  m.clear = function clearForgetting (...args) { forget(undefined); return clear.apply(this, args) }
  const live: LiveSubscriptions = {
    count: (topic) => lastTopic === topic ? lastCount : m.match(topic).length,
    known: (topic) => lastTopic === topic ? lastCount : undefined,
    stableCount: (topic) => {
      let n = stable.get(topic)
      if (n === undefined) stable.set(topic, n = m.match(topic).length)
      return n
    }
  }
  liveByMatcher.set(m, live)
  return live
}

/** How many live subscriptions (mqemitter listeners) match `topic`. */
export function liveSubscriptionCount (broker: Aedes, topic: string): number {
  return liveSubscriptions(broker).count(topic)
}

type Deliver = (packet: { topic: string, qos: number }, cb: () => void) => void

/** A message aedes hands a subscription's delivery function (a copy per subscription: aedes-packet's Packet). */
export interface LiveDelivery {
  topic: string
  qos: number
  /** the publishing client (aedes' emitPacket) */
  clientId?: string
  /** the subscription's No Local flag (aedes' handlePacketSubscription) */
  nl?: boolean | number
}

/**
 * aedes binds each subscription to `client.deliver0` (QoS 0) or
 * `client.deliverQoS` when it is made; routing the QoS 0 path lets culex send
 * a message at the highest QoS of overlapping subscriptions.
 *
 * `takeLive`, when given, is offered each message on the QoS 0 path first:
 * true means the gateway delivered it (or its forward steps dropped it), and
 * aedes' deliverQoS0 is skipped. That function only asks `authorizeForward`
 * (the gateway runs the same steps), drops the client's own message under
 * No Local [MQTT-3.8.3-3] (checked here first, as aedes does), checks
 * `client.duplicates` (a no-op once hardenClient ran; `takeLive` is used
 * only then), and calls back after a setImmediate: the callbacks of taken messages are
 * called together at the next check phase, one setImmediate for all of them
 * instead of one each, and what those callbacks take joins that run
 * (`runDueCallbacks`).
 */
export function routeQoS0Delivery (client: Client, useQoSPath: (packet: { topic: string, qos: number }) => boolean, takeLive?: (packet: LiveDelivery) => boolean): void {
  const c = client as unknown as { deliver0?: Deliver, deliverQoS?: Deliver, duplicates?: unknown, id?: unknown }
  const deliver0 = c.deliver0
  const deliverQoS = c.deliverQoS
  if (typeof deliver0 !== 'function' || typeof deliverQoS !== 'function') {
    throw new Error('aedes Client no longer has deliver0/deliverQoS: review lib/aedes-internals.ts')
  }
  // skipping deliverQoS0 skips its duplicates check too: only once hardenClient made it a no-op
  if (takeLive === undefined || c.duplicates !== NO_COUNTER_DEDUPE) {
    c.deliver0 = function deliver0Routed (packet, cb) {
      if (packet.qos > 0 && useQoSPath(packet)) deliverQoS(packet, cb)
      else deliver0(packet, cb)
    }
    return
  }
  c.deliver0 = function deliver0Taken (packet: LiveDelivery, cb) {
    if (packet.qos > 0 && useQoSPath(packet)) deliverQoS(packet, cb)
    else if (!(Boolean(packet.nl) && packet.clientId === c.id) && takeLive(packet)) callBackNextTurn(cb)
    else deliver0(packet, cb)
  }
}

let dueCallbacks: Array<() => void> | undefined
/** runDueCallbacks is calling back: what is taken meanwhile joins its run */
let callingBack = false

function callBackNextTurn (cb: () => void): void {
  if (dueCallbacks === undefined) {
    dueCallbacks = [cb]
    if (!callingBack) setImmediate(runDueCallbacks)
  } else dueCallbacks.push(cb)
}

/**
 * A callback releases mqemitter's slot, which delivers the next message
 * waiting in its queue (concurrency 100) at once; taken, that message's
 * callback joins this run instead of waiting a turn, so a burst of messages
 * is delivered in one check phase rather than one hundred per turn, each
 * held (and copied by the collector) while it waits. Each callback is still
 * called from this loop, never from inside another's delivery.
 */
function runDueCallbacks (): void {
  callingBack = true
  try {
    while (dueCallbacks !== undefined) {
      const due = dueCallbacks
      dueCallbacks = undefined
      let i = 0
      try {
        for (; i < due.length; i++) (due[i] as () => void)()
      } finally {
        // one that threw does not hold back the others
        for (i++; i < due.length; i++) callBackNextTurn(due[i] as () => void)
      }
    }
  } finally {
    callingBack = false
    if (dueCallbacks !== undefined) setImmediate(runDueCallbacks)
  }
}

/**
 * Takes the next packet identifier from aedes' per-client sequence
 * (`client._nextId`), the way aedes' QoSPacket does, so an id culex assigns
 * ahead of aedes never collides with one aedes assigns.
 */
export function allocatePacketId (client: Client): number {
  const c = client as unknown as { _nextId?: number }
  if (typeof c._nextId !== 'number') throw new Error('aedes Client no longer has _nextId: review lib/aedes-internals.ts')
  const id = c._nextId
  c._nextId = id >= 65535 ? 1 : id + 1
  return id
}

type PacketListener = (this: InjectedPackets, arg: unknown) => void

/**
 * What aedes uses of `client._parser` once culex hands it decoded packets:
 * its 'packet' listener (aedes' `enqueue`), its 'error' listener, `client`
 * and `_queue` (packets that arrive before the client is connected), and
 * `removeAllListeners('packet')` when the client closes. One listener per
 * event, held in a field: no EventEmitter, whose listener table alone is
 * about 180 bytes per connection.
 */
export class InjectedPackets {
  client: unknown = undefined
  _queue: unknown[] | null | undefined = undefined
  private onPacket: PacketListener | undefined = undefined
  private onError: PacketListener | undefined = undefined

  on (event: string, listener: PacketListener): this {
    if (event === 'packet' && this.onPacket === undefined) this.onPacket = listener
    else if (event === 'error' && this.onError === undefined) this.onError = listener
    else throw new Error(`aedes listens for '${event}' on client._parser in a new way: review lib/aedes-internals.ts`)
    return this
  }

  removeAllListeners (event?: string): this {
    if (event === undefined || event === 'packet') this.onPacket = undefined
    if (event === undefined || event === 'error') this.onError = undefined
    return this
  }

  listenerCount (event: string): number {
    return (event === 'packet' ? this.onPacket : event === 'error' ? this.onError : undefined) === undefined ? 0 : 1
  }

  emit (event: string, arg: unknown): boolean {
    const listener = event === 'packet' ? this.onPacket : event === 'error' ? this.onError : undefined
    if (listener === undefined) {
      // as an EventEmitter does with an 'error' nobody listens for
      if (event === 'error') throw arg
      return false
    }
    listener.call(this, arg)
    return true
  }
}

function injectedPackets (): InjectedPackets {
  return new InjectedPackets()
}

interface ClientInternals {
  _parser?: unknown
  _nextBatch?: (err?: Error) => void
  _parsingBatch?: number
  _eos?: () => void
  _topicAliases?: unknown
  conn?: unknown
}

/**
 * `broker.handle(stream)`, minus what culex does not use:
 *
 * 1. aedes makes every client an mqtt-packet byte parser (`mqtt.parser()`,
 *    with a BufferList Duplex of its own: about 8 µs and 2 KB of garbage per
 *    connect in a CPU and an allocation profile of 9000 connects). Bytes never
 *    reach it under culex, which hands aedes decoded packets
 *    (`injectPacket`), so while aedes builds the client, mqtt-packet's parser
 *    factory makes an `InjectedPackets` instead. aedes' Client constructor
 *    is synchronous, and the factory is put back before this returns.
 * 2. aedes watches the stream with `finished()` (`client._eos`) only to call
 *    `client.close()` when it closes: eight listeners and their closures,
 *    about 800 bytes per connection (heap snapshot). A single shared 'close'
 *    listener does the same; aedes never ends the stream (it destroys it),
 *    and culex's stream never ends its readable side, so 'close' is the only
 *    event that watcher acted on. aedes imports `finished` from Node's
 *    'stream', so that call is answered by `finishedUnwatched` for this one
 *    stream, while aedes builds the client: setting up the watcher and taking
 *    it down again were about 1.5% of a plain connect's busy time (profile
 *    of 9,000 connects).
 * 3. aedes' inbound topic alias map (`client._topicAliases`) becomes `aliases`,
 *    which the gateway keeps anyway and makes its Map on first use.
 * 4. aedes binds a function per client for its parser's 'error' and, on a
 *    stream that says it never ends or errs (`AedesStream.quietEnds`: the
 *    gateway's, whose end and errors are the socket's), for the stream's
 *    'end' and 'error': three bound functions of 72 bytes each (heap snapshot,
 *    benchmarks/heap-per-connection.ts) that nothing would ever call, since
 *    culex hands aedes decoded packets and never emits these events. They
 *    are dropped once counted.
 */
export function handleStream (broker: Aedes, stream: AedesStream, aliases: AliasTable): Client {
  const factory = mqtt as unknown as { parser: () => unknown }
  const parser = factory.parser
  const unwatched = finishedUnwatched()
  factory.parser = injectedPackets
  unwatched.stream = stream
  let client: Client
  try {
    client = broker.handle(stream as unknown as Duplex)
  } finally {
    factory.parser = parser
    unwatched.stream = undefined
  }
  const c = client as unknown as ClientInternals
  const packets = c._parser
  if (!(packets instanceof InjectedPackets) || packets.client !== client || !Array.isArray(packets._queue) ||
    packets.listenerCount('packet') !== 1 || packets.listenerCount('error') !== 1) {
    throw new Error('aedes Client no longer takes its parser from mqtt-packet\'s parser(): review lib/aedes-internals.ts')
  }
  packets.removeAllListeners('error')
  if (c._eos !== notWatched || c.conn !== stream) {
    throw new Error('aedes Client no longer watches its stream with finished() (client._eos): review lib/aedes-internals.ts')
  }
  if (stream.quietEnds === true) {
    if (stream.listenerCount('end') !== 1 || stream.listenerCount('error') !== 1) {
      throw new Error('aedes no longer listens once for its stream\'s end and error: review lib/aedes-internals.ts')
    }
    stream.removeAllListeners('end')
    stream.removeAllListeners('error')
  }
  stream.on('close', closeClientOfStream)
  if (!(c._topicAliases instanceof Map) || c._topicAliases.size !== 0) {
    throw new Error('aedes Client no longer has a _topicAliases Map: review lib/aedes-internals.ts')
  }
  c._topicAliases = aliases
  if (typeof stream.writePacket === 'function') {
    offerWritesToStreams()
    // before any subscription (or routeQoS0Delivery) takes client.deliverQoS
    keepRetainAsPublished(client)
  }
  return client
}

/** what `finished()` gave aedes for a stream it was not asked to watch: the cleanup aedes calls at close */
function notWatched (): void {}

type Finished = (...args: unknown[]) => unknown
let unwatchedState: { stream: object | undefined } | undefined

/**
 * `stream.finished` (and, through `syncBuiltinESMExports`, the binding aedes
 * imported) becomes a function that, called for `stream` of the result
 * (set by `handleStream` while aedes builds a client), watches nothing and
 * returns `notWatched`; every other call goes to Node's `finished`.
 * Installed once per process.
 */
function finishedUnwatched (): { stream: object | undefined } {
  if (unwatchedState !== undefined) return unwatchedState
  const original = streamModule.finished as unknown as Finished
  const state: { stream: object | undefined } = { stream: undefined }
  const bypass = function finished (this: unknown, ...args: unknown[]): unknown {
    if (state.stream !== undefined && args[0] === state.stream) {
      state.stream = undefined
      return notWatched
    }
    return Reflect.apply(original, this, args)
  }
  replaceStreamExport('finished', original, bypass)
  unwatchedState = state
  return state
}

/** `stream[name]` becomes `replacement` (with the original's own properties, such as util.promisify's), for ESM importers too. */
function replaceStreamExport (name: 'pipeline' | 'finished', original: Finished, replacement: Finished): void {
  for (const key of Reflect.ownKeys(original)) {
    if (key === 'length' || key === 'name' || key === 'prototype') continue
    const descriptor = Reflect.getOwnPropertyDescriptor(original, key)
    if (descriptor !== undefined) Reflect.defineProperty(replacement, key, descriptor)
  }
  ;(streamModule as unknown as Record<string, Finished>)[name] = replacement
  syncBuiltinESMExports()
}

/** A message aedes hands `client.deliverQoS`. */
interface QoSDelivery {
  cmd?: string
  qos: number
  retain?: boolean
  brokerId?: string | null
  brokerCounter?: number
}

/** per client, the live messages (broker id and counter) its PUBLISH is to carry RETAIN 1 in */
const retainOnWrite = new WeakMap<object, Set<string>>()
/** how many entries retainOnWrite holds over all clients: writes look only while there is any */
let retainsPending = 0

/**
 * aedes' deliverQoS records a message's packet id in the session's queue
 * (`outgoingUpdate`) unless the client is clean or the message has RETAIN 1
 * (`if (that.clean || packet.retain)`), meaning to skip the retained messages
 * it sends at SUBSCRIBE (made with `brokerId = null`), which are not queued.
 * But a live message with RETAIN 1 (a Retain As Published subscription,
 * [MQTT-3.3.1-12]) to a persistent session was queued first: without its
 * packet id the PUBACK [MQTT-4.3.2-4] or PUBCOMP [MQTT-4.3.3-10] clears
 * nothing, and it is sent again at every resume. Such a message goes into
 * aedes' deliverQoS with RETAIN 0, so that its id is recorded as any queued
 * message's, and its PUBLISH gets RETAIN 1 back where aedes writes it
 * (`offerWritesToStreams`), found by its broker id and counter; what was not
 * written by the time aedes calls back (not forwarded, connection closed)
 * is forgotten then.
 */
function keepRetainAsPublished (client: Client): void {
  const c = client as unknown as { deliverQoS?: Deliver, clean?: unknown }
  const deliverQoS = c.deliverQoS
  if (typeof deliverQoS !== 'function') throw new Error('aedes Client no longer has deliverQoS: review lib/aedes-internals.ts')
  c.deliverQoS = function deliverQoSKeepingRetain (delivery, cb) {
    const packet = delivery as QoSDelivery
    if (packet.retain !== true || packet.qos === 0 || packet.brokerId === null || packet.brokerId === undefined || Boolean(c.clean)) {
      deliverQoS(delivery, cb)
      return
    }
    const key = `${packet.brokerId}:${packet.brokerCounter ?? 0}`
    let keys = retainOnWrite.get(client)
    if (keys === undefined) retainOnWrite.set(client, keys = new Set())
    if (!keys.has(key)) retainsPending++
    keys.add(key)
    packet.retain = false
    const held = keys
    deliverQoS(delivery, () => {
      if (held.delete(key)) retainsPending--
      cb()
    })
  }
}

/** RETAIN 1 back on a PUBLISH keepRetainAsPublished sent through aedes with RETAIN 0. */
function restoreRetain (packet: QoSDelivery, stream: unknown): void {
  if (packet.cmd !== 'publish') return
  const client = (stream as { client?: object } | null)?.client
  const keys = client === undefined ? undefined : retainOnWrite.get(client)
  if (keys?.delete(`${packet.brokerId ?? ''}:${packet.brokerCounter ?? 0}`) === true) {
    retainsPending--
    packet.retain = true
  }
}

type WriteToStream = ((packet: object, stream: unknown, opts?: { protocolVersion?: number }) => boolean) & { cacheNumbers?: boolean }

let ownWrites: WriteToStream | undefined

/**
 * aedes writes every packet with `mqtt.writeToStream(packet, client.conn,
 * opts)` (lib/write.js), looking the function up on mqtt-packet's exports at
 * each write. From the first stream that can encode packets itself
 * (`AedesStream.writePacket`: protocol/broker-side.ts) on, that function
 * offers each packet to such a stream first; any other stream (an MQTT.js
 * client's in the same process) and any packet the stream does not take
 * get mqtt-packet's own. The `cacheNumbers` switch MQTT.js sets on the
 * function reaches mqtt-packet's. test/aedes-writes.test.ts fails if aedes
 * stops writing this way.
 */
function offerWritesToStreams (): void {
  if (ownWrites !== undefined) return
  const exports = mqtt as unknown as { writeToStream: WriteToStream }
  const original = exports.writeToStream
  if (typeof original !== 'function') throw new Error('mqtt-packet no longer exports writeToStream: review lib/aedes-internals.ts')
  const own: WriteToStream = function writeToStreamOrOwn (packet, stream, opts) {
    if (retainsPending > 0) restoreRetain(packet as QoSDelivery, stream)
    const writePacket = (stream as Partial<AedesStream> | null)?.writePacket
    if (writePacket !== undefined) {
      const written = writePacket.call(stream, packet, opts?.protocolVersion ?? 4)
      if (written !== undefined) return written
    }
    return original(packet, stream, opts)
  }
  Object.defineProperty(own, 'cacheNumbers', {
    get: () => original.cacheNumbers,
    set: (value: boolean) => { original.cacheNumbers = value }
  })
  exports.writeToStream = ownWrites = own
}

/**
 * What aedes 2.0.0-beta.1 uses of the stream it is given (client.js, write.js
 * through mqtt-packet's writeToStream, and Node's finished()): events
 * ('readable', 'error', 'end', 'drain', 'close'), write() (Buffers and
 * strings, no callbacks) with cork/uncork, read() when it resumes a client,
 * destroy(), and the destroyed/writable flags.
 */
export interface AedesStream {
  on (event: string | symbol, listener: (...args: never[]) => void): this
  once (event: string | symbol, listener: (...args: never[]) => void): this
  removeListener (event: string | symbol, listener: (...args: never[]) => void): this
  removeAllListeners (event?: string | symbol): this
  emit (event: string | symbol, ...args: unknown[]): boolean
  setMaxListeners (n: number): this
  listenerCount (event: string | symbol): number
  write (chunk: Buffer | Uint8Array | string, encoding?: BufferEncoding): boolean
  cork (): void
  uncork (): void
  read (): unknown
  destroy (err?: Error | null): unknown
  readonly destroyed: boolean
  readonly writable: boolean
  /**
   * `packet` written as mqtt-packet's writeToStream would write it (the same
   * bytes, the same result); undefined: not taken, mqtt-packet writes it
   * (`offerWritesToStreams`).
   */
  writePacket?: (packet: object, version: number) => boolean | undefined
  /** the stream never emits 'end' or 'error': aedes' listeners for them are dropped (`handleStream`) */
  readonly quietEnds?: boolean
}

/** aedes sets `stream.client` to the Client it made for the stream. */
function closeClientOfStream (this: { client: { close: () => void } }): void {
  this.client.close()
}

/** Inbound topic aliases (spec 3.3.2.3.4), shared by the gateway and aedes; the Map is made on first use. */
export class AliasTable {
  private map: Map<number, string> | undefined = undefined

  get (alias: number): string | undefined {
    return this.map?.get(alias)
  }

  set (alias: number, topic: string): this {
    (this.map ??= new Map()).set(alias, topic)
    return this
  }
}

/** Who `pacePackets` tells when aedes has finished a packet. */
export interface PacketPacer {
  packetDone (): void
}

/**
 * aedes counts packets in progress in `client._parsingBatch` and calls
 * `client._nextBatch` as each one is done; `pacer.packetDone()` runs after
 * that, so the gateway can pace the socket the way aedes paced reads.
 */
export function pacePackets (client: Client, pacer: PacketPacer): void {
  const c = client as unknown as ClientInternals
  const nextBatch = c._nextBatch
  if (typeof nextBatch !== 'function' || typeof c._parsingBatch !== 'number') {
    throw new Error('aedes Client no longer has _nextBatch/_parsingBatch: review lib/aedes-internals.ts')
  }
  // aedes starts at 1 and counts down when its stream first becomes readable;
  // no bytes ever arrive that way, so start where that first read would leave it
  c._parsingBatch = 0
  c._nextBatch = function nextBatchThenPace (err?: Error) {
    nextBatch(err)
    pacer.packetDone()
  }
}

/**
 * Hands a decoded packet to aedes as its own parser would (`client._parser`
 * emits 'packet'), so traffic the gateway already decoded is not parsed a
 * second time.
 */
export function injectPacket (client: Client, packet: object): void {
  ((client as unknown as ClientInternals)._parser as InjectedPackets).emit('packet', packet)
}

/** What `publishQoS0` reads of a decoded packet. */
export interface InboundPacket {
  cmd: string
  qos?: number
  retain?: boolean
  topic?: string
  properties?: object
}

interface PublishingClient {
  connected?: unknown
  connackSent?: unknown
  closed?: unknown
  version?: unknown
  _parser?: unknown
  _parsingBatch?: number
  _nextBatch?: (err?: Error | null) => void
  broker: {
    maxTopicLevels: number
    authorizePublish: (client: Client, packet: object, callback: (err?: Error | null) => void) => void
    publish: (packet: object, client: Client, done: (err?: Error | null) => void) => void
    emit: (event: string, ...args: unknown[]) => boolean
  }
}

/**
 * A QoS 0 PUBLISH of a connected client, published the way aedes' `enqueue`
 * → `handle` → `handlePublish` → `authorizePublish` → `enqueuePublish` would
 * (lib/handlers/index.js and publish.js), in one call instead of that series:
 *
 * 1. counted in `client._parsingBatch`, `client._nextBatch` called when done
 *    (the gateway's pacing sees it as any packet: pacePackets);
 * 2. the `authorizePublish` hook; refused, an MQTT 5 client gets a
 *    'clientError' and the message is dropped, a 3.1.1 client's read loop
 *    gets the error (it is closed), as aedes does;
 * 3. `broker.publish(packet, client, done)`, with every wrapper culex and the
 *    cluster installed on it.
 *
 * Only for what needs none of the steps skipped: no properties (no topic
 * alias, no Response Topic), not retained, a topic aedes' handlePublish
 * would pass (not empty, no wildcard, at most `maxTopicLevels` levels), a
 * client past CONNACK with no packets queued before it, and aedes still
 * listening. false: not taken, `injectPacket` it. aedes' handle also restarts
 * the keep-alive timer per packet; the gateway restarts it for every chunk
 * with packets (`refreshKeepAlive`), before they are handed over.
 */
export function publishQoS0 (client: Client, packet: InboundPacket): boolean {
  if (packet.cmd !== 'publish' || packet.qos !== 0 || packet.retain === true || packet.properties !== undefined) return false
  const c = client as unknown as PublishingClient
  const parser = c._parser
  if (c.connackSent !== true || c.connected !== true || c.closed === true || !(parser instanceof InjectedPackets) || parser._queue !== null || parser.listenerCount('packet') !== 1) return false
  const topic = packet.topic
  const broker = c.broker
  if (typeof topic !== 'string' || topic.length === 0 || topic.includes('#') || topic.includes('+') || levelsOf(topic) > broker.maxTopicLevels) return false
  const done = c._nextBatch
  if (typeof done !== 'function' || typeof c._parsingBatch !== 'number') return false
  c._parsingBatch++
  broker.authorizePublish(client, packet, (err) => {
    if (!err) broker.publish(packet, client, done)
    else if (c.version === 5) {
      broker.emit('clientError', client, err)
      done()
    } else done(err)
  })
  return true
}

function levelsOf (topic: string): number {
  let levels = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++
  return levels
}

/**
 * [MQTT-3.1.2-22] Every Control Packet from the client restarts its keep-alive
 * period, including the ones the gateway answers itself and never hands to
 * aedes (PUBACKs of shared deliveries it sent, refused PUBLISHes, `$share`
 * SUBSCRIBEs, AUTH). aedes restarts its timer (`client._keepaliveTimer`,
 * armed with `_keepaliveInterval` ms, -1 when off) only for packets it
 * handles, so a worker that only acknowledged gateway deliveries was dropped
 * with 0x8D while it worked. The gateway restarts the same timer for what
 * it reads: one timer and one timeout path (aedes' 'keep alive timeout'
 * error, which the gateway turns into DISCONNECT 0x8D), rather than a second
 * keep-alive of culex's own that would have to follow aedes' Server Keep
 * Alive and timer lifecycle.
 */
export function refreshKeepAlive (client: Client): void {
  const c = client as unknown as { _keepaliveInterval?: unknown, _keepaliveTimer?: { refresh?: unknown } | null }
  const interval = c._keepaliveInterval
  if (typeof interval !== 'number') throw new Error('aedes Client no longer has _keepaliveInterval: review lib/aedes-internals.ts')
  if (interval <= 0) return
  const timer = c._keepaliveTimer
  if (timer === null || timer === undefined || typeof timer.refresh !== 'function') {
    throw new Error('aedes Client no longer keeps its keep-alive in _keepaliveTimer: review lib/aedes-internals.ts')
  }
  (timer as NodeJS.Timeout).refresh()
}

interface KeepAliveClient {
  _keepaliveInterval: number
  _keepaliveTimer: unknown
  broker: { emit: (event: string, client: unknown) => unknown }
  emit: (event: string, err: Error) => unknown
}

/** ms; a keep-alive expires at most this long after 1.5 x its period */
const KEEP_ALIVE_TICK_MS = 100
const keepAlives = new TimerWheel(KEEP_ALIVE_TICK_MS)

/**
 * A client's keep-alive as aedes' `client._keepaliveTimer`: what aedes does
 * with its Timeout, `refresh()` for every packet (handlers/index.js, and the
 * gateway's `refreshKeepAlive`) and `clearTimeout()` then null when the
 * client closes (a no-op on an object that is not a Timeout), works on it.
 */
class WheeledKeepAlive {
  due: number
  constructor (private readonly client: KeepAliveClient) {
    this.due = wheelNow() + client._keepaliveInterval
  }

  get armed (): boolean { return this.client._keepaliveTimer === this }

  refresh (): this {
    this.due = wheelNow() + this.client._keepaliveInterval
    return this
  }

  /** what aedes' keepaliveTimeout does (handlers/connect.js): the error becomes DISCONNECT 0x8D */
  expire (): void {
    const client = this.client
    client.broker.emit('keepaliveTimeout', client)
    client.emit('error', new Error('keep alive timeout'))
  }
}

/**
 * [MQTT-3.1.2-24] aedes arms a Timeout per client at CONNECT, with a closure
 * of its own: about 250 bytes per idle connection (heap snapshot,
 * benchmarks/heap-per-connection.ts). Once aedes has sent the CONNACK it
 * is replaced by an entry of one shared timer wheel (protocol/timer-wheel.ts)
 * that expires 1.5 x the keep-alive after the last packet, as the Timeout
 * would, and at most KEEP_ALIVE_TICK_MS later. No keep-alive: nothing to do.
 */
export function wheelKeepAlive (client: Client): void {
  const c = client as unknown as KeepAliveClient
  if (typeof c._keepaliveInterval !== 'number') throw new Error('aedes Client no longer has _keepaliveInterval: review lib/aedes-internals.ts')
  if (c._keepaliveInterval <= 0 || c._keepaliveTimer instanceof WheeledKeepAlive) return
  const timer = c._keepaliveTimer as { refresh?: unknown, _onTimeout?: unknown } | null
  if (timer === null || typeof timer.refresh !== 'function' || typeof timer._onTimeout !== 'function') {
    throw new Error('aedes Client no longer keeps its keep-alive in a Timeout (_keepaliveTimer): review lib/aedes-internals.ts')
  }
  clearTimeout(timer as NodeJS.Timeout)
  const entry = new WheeledKeepAlive(c)
  c._keepaliveTimer = entry
  keepAlives.add(entry)
}

/** a listener table of fixed shape: lookups of any other name find nothing, as in Node's null-prototype table */
const ListenerTable = function ListenerTable (this: object) {} as unknown as new () => Record<string | symbol, unknown>
ListenerTable.prototype = Object.create(null) as object

/**
 * Node's EventEmitter keeps a client's listeners in a null-prototype object
 * (`_events`), which V8 holds as a dictionary: about 190 bytes per aedes
 * Client for the one 'error' listener it keeps once connected (heap
 * snapshot, benchmarks/heap-per-connection.ts). Once the client is connected
 * (aedes' one-time 'connected' listener has run: this is called on the
 * tick after its clientReady), the same listeners move to an object of
 * fixed shape, which EventEmitter reads and writes as it did the other.
 */
export function compactClientListeners (client: Client): void {
  const c = client as unknown as { _events?: unknown, _eventsCount?: unknown, closed?: unknown }
  const events = c._events
  if (typeof events !== 'object' || events === null || Object.getPrototypeOf(events) !== null || typeof c._eventsCount !== 'number') {
    if (events instanceof ListenerTable) return
    throw new Error('Node\'s EventEmitter no longer keeps listeners in a null-prototype _events: review lib/aedes-internals.ts')
  }
  if (c.closed === true) return
  const table = new ListenerTable()
  for (const key of Reflect.ownKeys(events)) table[key] = (events as Record<string | symbol, unknown>)[key]
  c._events = table
}

/**
 * [MQTT-3.1.2-4] An MQTT 5 client that resumes a session (Clean Start 0) with
 * Session Expiry 0 gets the session with its state, which then ends with
 * this connection. aedes marks such a client `clean` (its session does not
 * outlive the connection) and, being clean, drops the resumed session's
 * queue instead of sending it (connect.js emptyQueueFilter). Marked not
 * clean, aedes sends the queue and keeps the session's state in the store
 * while the client is connected, as for any session it resumes; the session
 * still ends at disconnect, since aedes ends it by the Session Expiry
 * Interval (0: `_wipeSession`), not by this flag.
 */
export function keepResumedSession (client: Client): void {
  const c = client as unknown as { clean?: unknown, sessionExpiryInterval?: unknown, connecting?: unknown }
  if (c.clean !== true || c.sessionExpiryInterval !== 0 || c.connecting !== true) {
    throw new Error('aedes Client no longer marks a connecting Session Expiry 0 client clean: review lib/aedes-internals.ts')
  }
  c.clean = false
}

/** Packets aedes is still handling (`client._parsingBatch`). */
export function packetsInProgress (client: Client): number {
  return (client as unknown as ClientInternals)._parsingBatch ?? 0
}

/**
 * The store aedes uses: the `persistence` option it was given, or its own
 * in-memory one, kept on `broker.persistence` (set in aedes.js, not part of
 * the documented API). undefined when it is not an object (a stand-in broker).
 */
export function persistenceOf (broker: Aedes): object | undefined {
  const store = (broker as unknown as { persistence?: unknown }).persistence
  return typeof store === 'object' && store !== null ? store : undefined
}

/** aedes' connected clients by id (`broker.clients`, made prototype-less by hardenBroker). */
function clientsOf (broker: Aedes): Record<string, Client | undefined> {
  const clients = (broker as unknown as { clients?: unknown }).clients
  if (typeof clients !== 'object' || clients === null) throw new Error('aedes internals changed: broker.clients is gone; review lib/aedes-internals.ts')
  return clients as Record<string, Client | undefined>
}

/**
 * The client aedes holds under `id` in `broker.clients`: from its CONNECT
 * (the entry is made before authentication ends) until it closes.
 */
export function clientById (broker: Aedes, id: string): Client | undefined {
  const clients = clientsOf(broker)
  return Object.hasOwn(clients, id) ? clients[id] : undefined
}

/**
 * Whether aedes holds a delayed will for `id` (`broker.delayedWills`, keyed
 * by client id, an entry per will whose Will Delay Interval is running).
 */
export function holdsDelayedWill (broker: Aedes, id: string): boolean {
  const wills = (broker as unknown as { delayedWills?: unknown }).delayedWills
  if (!(wills instanceof Map)) throw new Error('aedes internals changed: broker.delayedWills is gone; review lib/aedes-internals.ts')
  return wills.has(id)
}

/** aedes' timer of a delayed will (`broker.delayedWills` entry, from its armLongTimer) */
export interface DelayedWillTimer { clear (): void }

/** The timer of the delayed will aedes holds for `id`, if any (lib/broker/cluster-wills.ts). */
export function delayedWillTimer (broker: Aedes, id: string): DelayedWillTimer | undefined {
  const wills = (broker as unknown as { delayedWills?: unknown }).delayedWills
  if (!(wills instanceof Map)) throw new Error('aedes internals changed: broker.delayedWills is gone; review lib/aedes-internals.ts')
  const timer: unknown = wills.get(id)
  return typeof (timer as Partial<DelayedWillTimer> | undefined)?.clear === 'function' ? timer as DelayedWillTimer : undefined
}

/**
 * Stops aedes from publishing the delayed will of `id` if `timer` is still
 * the one it holds (a reconnect since has cleared it, and a later disconnect
 * armed another); true when cancelled. The cluster times it instead.
 */
export function cancelDelayedWill (broker: Aedes, id: string, timer: DelayedWillTimer): boolean {
  const wills = (broker as unknown as { delayedWills?: unknown }).delayedWills
  if (!(wills instanceof Map) || wills.get(id) !== timer) return false
  timer.clear()
  wills.delete(id)
  return true
}

/**
 * Session expiry (lib/persistence/session-expiry.ts) relies on `clientById`
 * and `holdsDelayedWill`: this fails at start, not at the first disconnect,
 * when aedes no longer has what they read.
 */
export function assertSessionInternals (broker: Aedes): void {
  const b = broker as unknown as { clients?: unknown, delayedWills?: unknown }
  if (b.clients === null || typeof b.clients !== 'object' || !(b.delayedWills instanceof Map)) {
    throw new Error('aedes internals changed: broker.clients / broker.delayedWills are gone; review lib/aedes-internals.ts')
  }
}

/** The Will Message aedes holds for a connected client (`client.will`), or undefined. */
export interface AedesWill {
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  properties?: { willDelayInterval?: number }
}

export function clientWill (client: Client): AedesWill | undefined {
  const will = (client as unknown as { will?: unknown }).will
  if (typeof will !== 'object' || will === null || typeof (will as { topic?: unknown }).topic !== 'string') return undefined
  return will as AedesWill
}

/**
 * A message as aedes' publish would queue it for an offline session
 * (aedes-packet's Packet: `brokerId`, the next `brokerCounter` of the
 * instance, no packet id; aedes.publish's absolute `messageExpiry`), for a
 * store enqueue that does not go through aedes.publish (a dead node's inbox
 * queued into the sessions adopted from it: lib/cluster/adoption.ts).
 */
export function queuedPacket (broker: Aedes, packet: { topic: string, payload: Buffer, qos: number, properties?: { messageExpiryInterval?: number } }): Record<string, unknown> {
  const b = broker as unknown as { id: string, counter: number }
  const out: Record<string, unknown> = { cmd: 'publish', brokerId: b.id, brokerCounter: ++b.counter, topic: packet.topic, payload: packet.payload, qos: packet.qos, retain: false, dup: false, messageId: undefined }
  if (packet.properties !== undefined) out.properties = packet.properties
  const expiry = packet.properties?.messageExpiryInterval
  if (expiry !== undefined && expiry > 0) out.messageExpiry = Date.now() + expiry * 1000
  return out
}

/** A step before aedes publishes a client's message: undefined = none, publish at once; a rejection fails the publish with its error (a value it resolves with is ignored). */
export type BeforePublish = (packet: { topic: string, payload: Buffer | string, qos: number, retain: boolean, messageId?: number, properties?: object }, client: Client) => Promise<unknown> | undefined

/**
 * aedes publishes a client's message with `client.broker.publish(packet,
 * client, done)` (`handlers/publish.js`; QoS 2 after storing it, QoS 1 after
 * writing the PUBACK, which culex's gateway holds until aedes' `published`
 * hook). `before` runs first, ahead of any delivery: when it returns a
 * promise, aedes publishes once it resolves, and a rejection is the
 * publish's error (no subscriber gets the message). Install it before
 * interceptPublishErrors, so that handler sees that error too. Messages with
 * no client (wills, the broker's own) are not seen.
 */
export function beforeClientPublish (broker: Aedes, before: BeforePublish): void {
  const publish = broker.publish.bind(broker) as unknown as (packet: never, client: Client | null, done: (err?: Error | null) => void) => void
  const wrapped = function (this: Aedes, packet: never, client: Client | ((err?: Error | null) => void) | null, done?: (err?: Error | null) => void): void {
    if (typeof client === 'function') {
      publish(packet, null, client)
      return
    }
    const callback = done ?? (() => {})
    const step = client === null || client === undefined ? undefined : before(packet as Parameters<BeforePublish>[0], client)
    if (step === undefined) {
      publish(packet, client ?? null, callback)
      return
    }
    step.then(() => { publish(packet, client as Client, callback) }, (err: unknown) => { callback(err instanceof Error ? err : new Error(String(err))) })
  }
  ;(broker as unknown as { publish: typeof wrapped }).publish = wrapped
}

/** Answers the error a client's message was not published with; true when it did (the connection goes on). */
export type PublishErrorHandler = (err: Error, packet: { messageId?: number, qos: number, retain: boolean }, client: Client) => boolean

/**
 * aedes' PUBLISH handler (`handlers/publish.js`) publishes a client's message
 * with `client.broker.publish(packet, client, done)`, `done` being the
 * client's read loop, which closes the connection on any error. `onError`
 * sees such an error first, with the client's own packet (its packet id);
 * when it answered it (an MQTT 5 PUBACK 0x80 for a refused store write),
 * `done` gets no error and aedes reads the client's next packet.
 */
export function interceptPublishErrors (broker: Aedes, onError: PublishErrorHandler): void {
  const publish = broker.publish.bind(broker) as unknown as (packet: never, client: Client | null, done: (err?: Error | null) => void) => void
  const intercepted = function (this: Aedes, packet: never, client: Client | ((err?: Error | null) => void) | null, done?: (err?: Error | null) => void): void {
    if (typeof client === 'function') {
      publish(packet, null, client)
      return
    }
    if (client === null || client === undefined || done === undefined) {
      publish(packet, client ?? null, done ?? (() => {}))
      return
    }
    publish(packet, client, (err) => {
      if (err instanceof Error && onError(err, packet as { messageId?: number, qos: number, retain: boolean }, client)) done(null)
      else done(err)
    })
  }
  ;(broker as unknown as { publish: typeof intercepted }).publish = intercepted
}

/** A subscription as aedes emits it with its 'subscribe' event (after granting it). */
export interface GrantedSubscription {
  readonly topic: string
  readonly qos: number
  /** the SUBSCRIBE's Subscription Identifier, which aedes copies onto each of its subscriptions */
  readonly subscriptionIdentifier?: number | undefined
}

/** The retained messages of one SUBSCRIBE, for whoever sends them. */
export interface RetainedLookup {
  /**
   * The stored retained messages matching the filters aedes chose (Retain
   * Handling applied), in batches: culex's store gives them as stored
   * (`retainedBatches`, read-only), another store's stream one per batch.
   */
  readonly messages: AsyncIterable<readonly object[]>
  /** [MQTT-3.3.2-5] removes an expired retained message, as aedes does (an empty retained PUBLISH to the store) */
  removeExpired (topic: string): Promise<void>
}

/**
 * `claim` is offered the retained messages aedes is about to send after a
 * SUBSCRIBE; when it takes them (true), aedes gets an empty stream and sends
 * none. Relies on aedes' completeSubscribe (handlers/subscribe.js) emitting
 * 'subscribe' with the client and then, in the same synchronous run, calling
 * `broker.persistence.createRetainedStreamCombi(topics)` with the filters
 * whose retained messages are due; nothing else calls it between the two.
 */
export function claimRetainedAtSubscribe (broker: Aedes, claim: (client: Client, subscriptions: readonly GrantedSubscription[], lookup: () => RetainedLookup) => boolean): void {
  const store = persistenceOf(broker) as { createRetainedStreamCombi?: unknown, storeRetained?: unknown } | undefined
  const original = store?.createRetainedStreamCombi
  if (store === undefined || typeof original !== 'function' || typeof store.storeRetained !== 'function') {
    throw new Error('aedes internals changed: broker.persistence has no createRetainedStreamCombi/storeRetained; review lib/aedes-internals.ts')
  }
  const batches = (store as { retainedBatches?: unknown }).retainedBatches
  const lookupOf = (topics: string[]): RetainedLookup => ({
    messages: typeof batches === 'function'
      ? Reflect.apply(batches, store, [topics]) as AsyncIterable<readonly object[]>
      : oneEach(Reflect.apply(original, store, [topics]) as Readable),
    removeExpired: async (topic) => { await (store.storeRetained as (packet: object) => Promise<void>).call(store, { topic, payload: Buffer.alloc(0) }) }
  })
  let pending: { client: Client, subscriptions: readonly GrantedSubscription[] } | undefined
  const forget = (): void => { pending = undefined }
  ;(broker as unknown as NodeJS.EventEmitter).on('subscribe', (subscriptions: GrantedSubscription[], client: Client) => {
    pending = { client, subscriptions }
    // only the call in the same synchronous run belongs to this SUBSCRIBE
    queueMicrotask(forget)
  })
  store.createRetainedStreamCombi = function createRetainedStreamCombiClaimed (topics: string[]): Readable {
    const offer = pending
    pending = undefined
    if (offer !== undefined && claim(offer.client, offer.subscriptions, () => lookupOf(topics))) return Readable.from([])
    return Reflect.apply(original, store, [topics]) as Readable
  }
}

async function * oneEach (stream: Readable): AsyncGenerator<readonly object[]> {
  for await (const message of stream) yield [message as object]
}

/**
 * aedes' own delivery of a retained message at subscribe (`client.deliverQoS`,
 * as its handlers/subscribe.js sendRetained calls it): the packet id, the
 * QoS flow and its persistence stay aedes'.
 */
export function deliverRetainedByBroker (client: Client, packet: object, done: () => void): void {
  const deliverQoS = (client as unknown as { deliverQoS?: Deliver }).deliverQoS
  if (typeof deliverQoS !== 'function') throw new Error('aedes Client no longer has deliverQoS: review lib/aedes-internals.ts')
  deliverQoS(packet as Parameters<Deliver>[0], done)
}

/**
 * Makes aedes forget a connected client's will (`client.will`, and `_will`
 * kept during CONNECT), so that it is not published when the connection
 * ends: another node of the cluster published it already.
 */
export function discardWill (client: Client): void {
  const c = client as unknown as { will?: unknown, _will?: unknown }
  if (!('will' in c)) throw new Error('aedes internals changed: client.will is gone; review lib/aedes-internals.ts')
  c.will = null
  c._will = null
}

/**
 * What a store's `outgoingStream` returns for a session with nothing queued:
 * a stream that ends when it is first read, so any reader sees it end at
 * once. Ending it only then, rather than when it is made, spares the tick
 * and the 'readable' event an ended stream schedules, for the drains at
 * CONNECT and at close that never read it (`skipEmptyQueuePipelines`).
 */
export class NothingQueued extends Readable {
  constructor () {
    super({ objectMode: true, highWaterMark: 1 })
  }

  override _read (): void {
    this.push(null)
  }
}

type Pipeline = (...args: unknown[]) => unknown
let pipelineBypass: { original: Pipeline, skipped: number } | undefined

/**
 * aedes sends a session's queued messages on every CONNECT (connect.js
 * emptyQueue), through `pipeline(outgoing, through(...), done)` imported from
 * Node's 'stream', clean sessions and empty queues included. Node's pipeline
 * makes an AbortController per call and aborts it when the streams finish,
 * building a DOMException with a stack: about an eighth of a plain connect's
 * CPU in a profile of 9000 connects. With nothing queued there is nothing
 * to pipe, so `stream.pipeline` (and, through `syncBuiltinESMExports`, the
 * binding aedes imported) becomes a function that, when the first stream is
 * a `NothingQueued`, only calls back (next tick, as pipeline does);
 * everything else goes to Node's pipeline unchanged. Installed once per
 * process; `skippedPipelines()` counts the calls it answered.
 */
export function skipEmptyQueuePipelines (): void {
  if (pipelineBypass !== undefined) return
  const original = streamModule.pipeline as unknown as Pipeline
  const state = { original, skipped: 0 }
  const bypass = function pipeline (this: unknown, ...args: unknown[]): unknown {
    const callback = args[args.length - 1]
    if (args[0] instanceof NothingQueued && args.length >= 3 && typeof callback === 'function') {
      state.skipped++
      process.nextTick(callback as () => void)
      return args[args.length - 2]
    }
    return Reflect.apply(original, this, args)
  }
  replaceStreamExport('pipeline', original, bypass)
  pipelineBypass = state
}

/** How many pipelines of empty queues `skipEmptyQueuePipelines` answered (0 before it is installed). */
export function skippedPipelines (): number {
  return pipelineBypass?.skipped ?? 0
}

/**
 * aedes publishes `$SYS/{broker id}/new/clients` for every client it
 * registers and `$SYS/{broker id}/disconnect/clients` for every one that
 * leaves (aedes.js `_finishRegisterClient`, `unregisterClient`), through its
 * whole publish series (retained step, matching, the `published` hook),
 * QoS 0 and not retained: a message nobody subscribed to reaches no one and
 * is stored nowhere. aedes' own listener (`$SYS/+/new/clients`, which closes
 * a client that connected to another broker of an aedes cluster) acts only
 * on other broker ids. So while no listener beyond those present at
 * install (aedes' own) matches such a topic, the message is not published;
 * a client subscribed to it (`$SYS/#`, say) still gets every one. Install
 * before clients connect.
 */
export function skipUnheardClientEvents (broker: Aedes): void {
  const b = broker as unknown as { id?: unknown, publish: (packet: { topic: string }, client?: unknown, done?: unknown) => void }
  if (typeof b.id !== 'string') throw new Error('aedes internals changed: broker.id is gone; review lib/aedes-internals.ts')
  const live = liveSubscriptions(broker)
  const topics = [`$SYS/${b.id}/new/clients`, `$SYS/${b.id}/disconnect/clients`]
  const own = topics.map((topic) => live.count(topic))
  const publish = b.publish
  b.publish = function publishHeardClientEvents (this: unknown, packet, client, done) {
    const which = client === null || typeof client === 'function' ? topics.indexOf(packet.topic) : -1
    if (which >= 0 && live.stableCount(packet.topic) <= (own[which] as number)) {
      const callback = typeof client === 'function' ? client : done
      if (typeof callback === 'function') (callback as () => void)()
      return
    }
    Reflect.apply(publish, this, [packet, client, done])
  }
}
