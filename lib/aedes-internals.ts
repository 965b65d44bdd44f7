/**
 * The one place where culex touches aedes 2.0.0-beta.1 beyond its documented
 * API. Each function names the internal it relies on; test/aedes-internals.test.ts
 * fails loudly when an aedes upgrade changes any of them.
 */
import { EventEmitter } from 'node:events'
import type { Aedes, Client } from 'aedes'

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
  c.subscriptions = Object.create(null) as Record<string, unknown>
  c.duplicates = NO_COUNTER_DEDUPE
}

/**
 * aedes drops a message for a client when `client.duplicates[brokerId]`
 * already holds a higher broker counter, meaning to drop the second copy of
 * a message that matches two subscriptions of the client. But counters are
 * taken when a message enters the broker, and a retained message waits for
 * the store before it is forwarded, so a later message (from any client)
 * often overtakes it, and aedes then dropped the retained one for every
 * subscriber that got both. This `duplicates` remembers nothing, so that
 * check always passes; lib/broker.ts drops only exact copies of the message
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
}

const liveByMatcher = new WeakMap<object, LiveSubscriptions>()

/**
 * aedes has no public way to ask which live subscriptions match a topic; its
 * mqemitter keeps them in a qlobber, `mq._matcher`, and matches every
 * message's topic when it publishes the message. The gateway asks the same
 * question right after, to choose PUBACK 0x10 (No matching subscribers), so
 * the matcher's `match` is wrapped to remember its last answer, and
 * `add`/`remove`/`clear` to forget it: that second question is then a string
 * comparison instead of a second match.
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
  m.match = function matchRemembered (topic, ctx) {
    const matches = match.call(this, topic, ctx)
    // qlobber's match(topic, ctx): one with a context may filter, and is not remembered
    lastTopic = ctx === undefined ? topic : undefined
    lastCount = matches.length
    return matches
  }
  m.add = function addForgetting (...args) { lastTopic = undefined; return add.apply(this, args) }
  m.remove = function removeForgetting (...args) { lastTopic = undefined; return remove.apply(this, args) }
  m.clear = function clearForgetting (...args) { lastTopic = undefined; return clear.apply(this, args) }
  const live: LiveSubscriptions = {
    count: (topic) => lastTopic === topic ? lastCount : m.match(topic).length,
    known: (topic) => lastTopic === topic ? lastCount : undefined
  }
  liveByMatcher.set(m, live)
  return live
}

/** How many live subscriptions (mqemitter listeners) match `topic`. */
export function liveSubscriptionCount (broker: Aedes, topic: string): number {
  return liveSubscriptions(broker).count(topic)
}

type Deliver = (packet: { topic: string, qos: number }, cb: () => void) => void

/**
 * aedes binds each subscription to `client.deliver0` (QoS 0) or
 * `client.deliverQoS` when it is made; routing the QoS 0 path lets culex send
 * a message at the highest QoS of overlapping subscriptions.
 */
export function routeQoS0Delivery (client: Client, useQoSPath: (packet: { topic: string, qos: number }) => boolean): void {
  const c = client as unknown as { deliver0?: Deliver, deliverQoS?: Deliver }
  const deliver0 = c.deliver0
  const deliverQoS = c.deliverQoS
  if (typeof deliver0 !== 'function' || typeof deliverQoS !== 'function') {
    throw new Error('aedes Client no longer has deliver0/deliverQoS: review lib/aedes-internals.ts')
  }
  c.deliver0 = function deliver0Routed (packet, cb) {
    if (packet.qos > 0 && useQoSPath(packet)) deliverQoS(packet, cb)
    else deliver0(packet, cb)
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

interface AedesParser {
  emit: (event: 'packet', packet: unknown) => boolean
  listeners: (event: string) => Array<(...args: unknown[]) => void>
  client?: unknown
  _queue?: unknown[] | null
}

interface ParserInternals {
  _parser?: AedesParser
  _nextBatch?: (err?: Error) => void
  _parsingBatch?: number
}

/** The part of aedes' `client._parser` aedes still uses once culex injects decoded packets. */
class InjectedPackets extends EventEmitter {
  constructor (readonly client: unknown, public _queue: unknown[] | null | undefined) {
    super()
  }
}

/**
 * aedes gives every client an mqtt-packet parser with its own BufferList
 * stream: about 1.3 KB per connection in a sampling heap profile over 3000
 * idle connections. Bytes never reach it under culex, so it is replaced by an
 * EventEmitter carrying only what aedes reads from `client._parser` besides
 * `parse()`: the 'packet' and 'error' listeners it registered, `client`, and
 * `_queue` (packets that arrive before the client is connected).
 */
function replaceParser (c: ParserInternals, parser: AedesParser): AedesParser {
  const lite = new InjectedPackets(parser.client, parser._queue)
  for (const event of ['packet', 'error']) {
    const listeners = parser.listeners(event)
    if (listeners.length === 0) throw new Error(`aedes no longer listens for '${event}' on client._parser: review lib/aedes-internals.ts`)
    for (const listener of listeners) lite.on(event, listener)
  }
  c._parser = lite as unknown as AedesParser
  return c._parser
}

/**
 * Hands a decoded packet to aedes as its own parser would (`client._parser`
 * emits 'packet'), so traffic the gateway already decoded is not parsed a
 * second time. aedes counts packets in progress in `client._parsingBatch`
 * and calls `client._nextBatch` as each one is done; `onPacketDone` runs
 * after that, so the gateway can pace the socket the way aedes paced reads.
 */
export function packetInjector (client: Client, onPacketDone: () => void): { inject: (packet: object) => void, inProgress: () => number } {
  const c = client as unknown as ParserInternals
  const parser = c._parser
  const nextBatch = c._nextBatch
  if (!parser || typeof parser.emit !== 'function' || typeof parser.listeners !== 'function' || !Array.isArray(parser._queue) || parser.client !== client || typeof nextBatch !== 'function' || typeof c._parsingBatch !== 'number') {
    throw new Error('aedes Client no longer has _parser/_nextBatch/_parsingBatch: review lib/aedes-internals.ts')
  }
  const packets = replaceParser(c, parser)
  // aedes starts at 1 and counts down when its stream first becomes readable;
  // no bytes ever arrive that way, so start where that first read would leave it
  c._parsingBatch = 0
  c._nextBatch = function nextBatchThenPace (err?: Error) {
    nextBatch(err)
    onPacketDone()
  }
  return {
    inject: (packet) => { packets.emit('packet', packet) },
    inProgress: () => c._parsingBatch ?? 0
  }
}
