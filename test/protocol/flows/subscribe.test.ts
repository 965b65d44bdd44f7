/**
 * lib/protocol/flows/subscribe.ts against a stub connection (no sockets):
 * how a SUBSCRIBE is split, how `$share/` filters join and leave, and how
 * the SUBACKs and UNSUBACKs are merged back in the client's order.
 */
import t from 'tap'
import mqtt, { type ISubscribePacket, type IUnsubackPacket, type IUnsubscribePacket, type Packet } from 'mqtt-packet'
import type { Client } from 'aedes'
import { frameOf, type Frame } from '../../../lib/protocol/frame.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { JoinResult } from '../../../lib/shared/dispatcher.js'
import type { Verdict } from '../../../lib/protocol/flows/verdict.js'
import {
  SubscribeState, onSubscribe, onSubscribeInOrder, onSuback, onUnsubscribe, onUnsuback, routeDeliveries, subscribesPending, type SubscribeHost
} from '../../../lib/protocol/flows/subscribe.js'
import { silentConnectionLog } from '../../helpers/flow-host.js'
import { parsePacket } from '../../helpers/packet-bytes.js'

interface Stub extends SubscribeHost {
  retainedOrder: SubscribeHost['retainedOrder']
  written: Buffer[]
  /** calls of expectRetained */
  retainedExpected: number
  joined: Array<{ key: string, filter: string, qos: number }>
  left: string[]
}

interface StubOptions {
  version?: 4 | 5
  shared?: boolean
  join?: (key: string) => Promise<JoinResult>
  leave?: (key: string) => Promise<boolean>
  maySubscribe?: (filter: string) => boolean
  maxSubscriptions?: number
  held?: string[]
}

function stub (o: StubOptions = {}): Stub {
  const subscriptions: Record<string, unknown> = Object.fromEntries((o.held ?? []).map(f => [f, { qos: 0 }]))
  const client = { id: 'c1', clean: true, subscriptions, deliver0: () => {}, deliverQoS: () => {} } as unknown as Client
  const host: Stub = {
    client,
    clientId: 'c1',
    connectClientId: 'c1',
    authenticatedAs: undefined,
    username: undefined,
    meta: { remoteAddress: undefined },
    room: () => 0,
    publish: () => {},
    version: o.version ?? 5,
    settings: { maximumQoS: 2, maxTopicLevels: 128, maxTopicLength: 65535, wildcardSubscriptionAvailable: true, subscriptionIdentifierAvailable: true },
    ctx: {
      policy: { maySubscribe: (_conn, filter) => o.maySubscribe?.(filter) ?? true, maxSubscriptions: o.maxSubscriptions ?? 1000 },
      shared: o.shared === false
        ? undefined
        : {
            join: async (_link, key, filter, sub) => {
              host.joined.push({ key, filter, qos: sub.qos })
              return await (o.join?.(key) ?? Promise.resolve({ ok: true, qos: sub.qos }))
            },
            leave: async (_clientId, key) => {
              host.left.push(key)
              return await (o.leave?.(key) ?? Promise.resolve(true))
            },
            membershipCount: () => host.joined.length
          }
    },
    log: silentConnectionLog(),
    retainedOrder: undefined,
    subscribeState: undefined,
    usesSubscriptionIds: false,
    deliveriesRouted: false,
    takeLiveQoS0: () => false,
    writeToClient (buf) { host.written.push(buf) },
    expectRetained () { host.retainedExpected++ },
    written: [],
    retainedExpected: 0,
    joined: [],
    left: []
  }
  return host
}

const subscribe = (subscriptions: ISubscribePacket['subscriptions'], version: 4 | 5 = 5, properties?: ISubscribePacket['properties']): Frame =>
  frameOf(mqtt.generate({ cmd: 'subscribe', messageId: 42, subscriptions, ...(properties ? { properties } : {}) }, { protocolVersion: version }))

const unsubscribe = (unsubscriptions: string[], version: 4 | 5 = 5): Frame =>
  frameOf(mqtt.generate({ cmd: 'unsubscribe', messageId: 43, unsubscriptions }, { protocolVersion: version }))

const decode = parsePacket

/** aedes' answer to a part: the SUBACK (or UNSUBACK) it would write under the part's internal id */
const suback = (messageId: number, code: number, version: 4 | 5 = 5): Frame =>
  frameOf(mqtt.generate({ cmd: 'suback', messageId, granted: [code] }, { protocolVersion: version }))

const parts = (verdict: Verdict): Packet[] => verdict.kind === 'replace' ? verdict.packets : []

t.test('[MQTT-3.8.4-7] filters go to aedes one per SUBSCRIBE and the SUBACK is merged in the order of the filters', async (t) => {
  const h = stub()
  const verdict = onSubscribe(h, subscribe([{ topic: 'a', qos: 1 }, { topic: 'b', qos: 2 }]))
  const sent = parts(verdict) as ISubscribePacket[]
  t.equal(sent.length, 2, 'one part per filter')
  t.same(sent.map(p => p.subscriptions.map(s => s.topic)), [['a'], ['b']])
  t.not(sent[0]?.messageId, sent[1]?.messageId, 'each part has its own internal id')
  t.ok(subscribesPending(h), 'parts are with aedes')
  const out: Buffer[] = []
  onSuback(h, suback(sent[1]?.messageId as number, 2), out)
  t.same(out, [], 'no SUBACK before every filter is answered')
  onSuback(h, suback(sent[0]?.messageId as number, 1), out)
  t.equal(out.length, 1)
  t.match(decode(out[0] as Buffer), { cmd: 'suback', messageId: 42, granted: [1, 2] })
  t.notOk(subscribesPending(h))
})

t.test('a granted part tells the writer retained messages may follow; a refused one does not', async (t) => {
  const h = stub()
  const sent = parts(onSubscribe(h, subscribe([{ topic: 'a', qos: 1 }, { topic: 'b', qos: 1 }]))) as ISubscribePacket[]
  const out: Buffer[] = []
  onSuback(h, suback(sent[0]?.messageId as number, ReasonCode.NotAuthorized), out)
  t.equal(h.retainedExpected, 0, 'refused by aedes: no retained messages follow')
  onSuback(h, suback(sent[1]?.messageId as number, 1), out)
  t.equal(h.retainedExpected, 1)
  t.match(decode(out[0] as Buffer), { granted: [ReasonCode.NotAuthorized, 1] })
})

t.test('[MQTT-3.8.3-1] [MQTT-4.7.1-2] a bad filter gets 0x8F in its place; the others still subscribe', async (t) => {
  const h = stub()
  const sent = parts(onSubscribe(h, subscribe([{ topic: 'a/#/b', qos: 0 }, { topic: 'ok', qos: 0 }]))) as ISubscribePacket[]
  t.equal(sent.length, 1)
  const out: Buffer[] = []
  onSuback(h, suback(sent[0]?.messageId as number, 0), out)
  t.match(decode(out[0] as Buffer), { granted: [ReasonCode.TopicFilterInvalid, 0] })
})

t.test('a SUBSCRIBE whose every filter is refused is answered at once, without aedes', async (t) => {
  const h = stub({ maySubscribe: () => false })
  t.same(onSubscribe(h, subscribe([{ topic: 'x', qos: 1 }])), { kind: 'drop' })
  t.match(decode(h.written[0] as Buffer), { cmd: 'suback', messageId: 42, granted: [ReasonCode.NotAuthorized] })
  const v4 = stub({ version: 4, maySubscribe: () => false })
  onSubscribe(v4, subscribe([{ topic: 'x', qos: 1 }], 4))
  t.match(decode(v4.written[0] as Buffer, 4), { granted: [0x80] }, '3.1.1 has only 0x80')
})

t.test('[MQTT-3.8.3-2] a SUBSCRIBE without a Topic Filter is a Protocol Error; the state is not made for it', async (t) => {
  const h = stub({ version: 4 })
  const verdict = onSubscribe(h, frameOf(Buffer.from([0x82, 0x02, 0x00, 0x01])))
  t.match(verdict, { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  t.equal(h.subscribeState, undefined)
  t.match(onSubscribe(h, frameOf(Buffer.from([0x80, 0x02, 0x00, 0x01]))), { kind: 'close', reasonCode: ReasonCode.MalformedPacket }, '[MQTT-3.8.1-1] flags 0000')
})

t.test('the subscription limit counts held, pending and earlier unanswered filters: 0x97', async (t) => {
  const h = stub({ maxSubscriptions: 3, held: ['h'] })
  const first = parts(onSubscribe(h, subscribe([{ topic: 'a', qos: 0 }]))) as ISubscribePacket[]
  t.equal(first.length, 1, 'held 1 + new 1')
  const second = parts(onSubscribe(h, subscribe([{ topic: 'b', qos: 0 }, { topic: 'c', qos: 0 }]))) as ISubscribePacket[]
  t.equal(second.length, 1, 'held 1 + unanswered 1 + b: c is over the limit')
  const out: Buffer[] = []
  onSuback(h, suback(second[0]?.messageId as number, 0), out)
  t.match(decode(out[0] as Buffer), { granted: [0, ReasonCode.QuotaExceeded] })
  const again = parts(onSubscribe(h, subscribe([{ topic: 'h', qos: 1 }]))) as ISubscribePacket[]
  t.equal(again.length, 1, 'a filter already held replaces its subscription: not counted')
})

t.test('a Subscription Identifier marks the connection, and QoS 0 deliveries are routed before the first subscription', async (t) => {
  const h = stub()
  const deliver0 = (h.client as unknown as { deliver0: unknown }).deliver0
  onSubscribe(h, subscribe([{ topic: 'a', qos: 0 }], 5, { subscriptionIdentifier: 7 }))
  t.ok(h.usesSubscriptionIds)
  t.ok(h.deliveriesRouted)
  t.not((h.client as unknown as { deliver0: unknown }).deliver0, deliver0, 'deliver0 is wrapped')
  const wrapped = (h.client as unknown as { deliver0: unknown }).deliver0
  routeDeliveries(h)
  t.equal((h.client as unknown as { deliver0: unknown }).deliver0, wrapped, 'once only')
})

t.test('spec 4.8.2: $share filters join their group; the SUBACK waits for the join and for aedes', async (t) => {
  let resolveJoin: (r: JoinResult) => void = () => {}
  const h = stub({ join: async () => await new Promise<JoinResult>((resolve) => { resolveJoin = resolve }) })
  const sent = parts(onSubscribe(h, subscribe([{ topic: '$share/g/s', qos: 2 }, { topic: 'p', qos: 1 }]))) as ISubscribePacket[]
  t.same(h.joined, [{ key: '$share/g/s', filter: 's', qos: 2 }])
  t.same(sent.map(p => p.subscriptions[0]?.topic), ['p'], 'only the plain filter goes to aedes')
  const out: Buffer[] = []
  onSuback(h, suback(sent[0]?.messageId as number, 1), out)
  t.same(out, [], 'the join has not answered')
  resolveJoin({ ok: true, qos: 1 })
  await new Promise(resolve => setImmediate(resolve))
  t.match(decode(h.written[0] as Buffer), { cmd: 'suback', messageId: 42, granted: [1, 1] })
})

t.test('a failed join answers 0x80 in its place', async (t) => {
  const h = stub({ join: async () => await Promise.reject(new Error('store down')) })
  t.same(onSubscribe(h, subscribe([{ topic: '$share/g/s', qos: 1 }])), { kind: 'drop' })
  await new Promise(resolve => setImmediate(resolve))
  t.match(decode(h.written[0] as Buffer), { granted: [ReasonCode.UnspecifiedError] })
})

t.test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error', async (t) => {
  const verdict = onSubscribe(stub(), subscribe([{ topic: '$share/g/s', qos: 1, nl: true }]))
  t.match(verdict, { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a malformed share gets 0x8F; shared subscriptions off: 0x9E', async (t) => {
  const h = stub()
  onSubscribe(h, subscribe([{ topic: '$share/g+/s', qos: 1 }, { topic: '$share/g', qos: 1 }]))
  t.match(decode(h.written[0] as Buffer), { granted: [ReasonCode.TopicFilterInvalid, ReasonCode.TopicFilterInvalid] })
  const off = stub({ shared: false })
  onSubscribe(off, subscribe([{ topic: '$share/g/s', qos: 1 }]))
  t.match(decode(off.written[0] as Buffer), { granted: [ReasonCode.SharedSubscriptionsNotSupported] })
  t.same(h.joined, [], 'nothing joined')
})

t.test('a SUBSCRIBE waits for the retained PUBLISHes before it to be routed', async (t) => {
  let route: () => void = () => {}
  const h = stub()
  h.retainedOrder = { whenRouted: () => new Promise<void>((resolve) => { route = resolve }), subscriptionsAnswered: () => {} }
  const verdict = onSubscribeInOrder(h, subscribe([{ topic: 'a', qos: 0 }]))
  t.equal(verdict.kind, 'defer')
  t.equal(h.subscribeState, undefined, 'not checked yet')
  if (verdict.kind !== 'defer') return
  route()
  t.equal((await verdict.decision).kind, 'replace')
})

t.test('the retained order learns when every SUBSCRIBE part is answered', async (t) => {
  let answered = 0
  const h = stub()
  h.retainedOrder = { whenRouted: () => undefined, subscriptionsAnswered: () => { answered++ } }
  const sent = parts(onSubscribeInOrder(h, subscribe([{ topic: 'a', qos: 0 }, { topic: 'b', qos: 0 }]))) as ISubscribePacket[]
  onSuback(h, suback(sent[0]?.messageId as number, 0), [])
  t.equal(answered, 0)
  onSuback(h, suback(sent[1]?.messageId as number, 0), [])
  t.equal(answered, 1)
})

t.test('a SUBACK that is not a part passes as aedes wrote it', async (t) => {
  const out: Buffer[] = []
  const frame = suback(9, 1)
  onSuback(stub(), frame, out)
  t.equal(out[0], frame.buf)
})

t.test('UNSUBSCRIBE without $share filters passes to aedes; [MQTT-3.10.3-2] one without a filter is a Protocol Error', async (t) => {
  const h = stub()
  t.same(onUnsubscribe(h, unsubscribe(['a', 'b'])), { kind: 'pass' })
  t.equal(h.subscribeState, undefined, 'no state for a plain UNSUBSCRIBE')
  t.match(onUnsubscribe(h, frameOf(Buffer.from([0xa2, 0x03, 0x00, 0x01, 0x00]))), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('spec 3.10: $share filters leave their group, the rest goes to aedes, and the UNSUBACK is merged in order', async (t) => {
  const h = stub({ leave: async (key) => key === '$share/g/a' })
  const verdict = onUnsubscribe(h, unsubscribe(['$share/g/a', 'p', '$share/g/b', 'q']))
  t.equal(verdict.kind, 'defer')
  if (verdict.kind !== 'defer') return
  const decided = await verdict.decision
  t.same(h.left, ['$share/g/a', '$share/g/b'])
  const part = parts(decided)[0] as IUnsubscribePacket
  t.same(part.unsubscriptions, ['p', 'q'])
  const out: Buffer[] = []
  onUnsuback(h, frameOf(mqtt.generate({ cmd: 'unsuback', messageId: part.messageId, granted: [ReasonCode.NoSubscriptionExisted, 0] }, { protocolVersion: 5 })), out)
  t.match(decode(out[0] as Buffer) as IUnsubackPacket, { cmd: 'unsuback', messageId: 43, granted: [0, ReasonCode.NoSubscriptionExisted, ReasonCode.NoSubscriptionExisted, 0] })
})

t.test('an UNSUBSCRIBE of $share filters only is answered without aedes (3.1.1: no reason codes)', async (t) => {
  const h = stub({ version: 4 })
  const verdict = onUnsubscribe(h, unsubscribe(['$share/g/a'], 4))
  if (verdict.kind !== 'defer') { t.fail('deferred'); return }
  t.same(await verdict.decision, { kind: 'drop' })
  t.match(decode(h.written[0] as Buffer, 4), { cmd: 'unsuback', messageId: 43 })
})

t.test('internal packet ids skip those of parts still in progress', async (t) => {
  const state = new SubscribeState()
  const first = state.allocateInternalId()
  state.subParts.set(first + 1, { pending: undefined as never, index: 0 })
  t.equal(state.allocateInternalId(), first + 2)
  state.unsubParts.set(first + 3, { messageId: 1, codes: [], indexes: [] })
  t.equal(state.allocateInternalId(), first + 4, 'and those of UNSUBSCRIBEs')
})
