/**
 * SUBSCRIBE and UNSUBSCRIBE (spec 3.8-3.11) as the gateway handles them: a
 * SUBSCRIBE is split per filter, `$share/` filters join their group here
 * (spec 4.8.2), the others go to aedes one per SUBSCRIBE, and aedes' SUBACKs
 * are merged back into one SUBACK in the order of the filters
 * [MQTT-3.8.4-7]. An UNSUBSCRIBE's `$share/` filters leave their group here
 * and the UNSUBACKs are merged the same way.
 */
import type { AedesPublishPacket, Client } from 'aedes'
import type { ISubackPacket, ISubscribePacket, ISubscription, IUnsubackPacket, IUnsubscribePacket, Packet } from 'mqtt-packet'
import type { ConnectionLogger } from '../../logging.js'
import type { ConnectionPolicy, PolicySubject } from '../../auth/admission.js'
import type { MemberLink, SharedSubscriptions } from '../../shared/dispatcher.js'
import { clientSubscriptions, routeQoS0Delivery } from '../../aedes-internals.js'
import { decodeFrame, encode, type ProtocolVersion } from '../codec.js'
import { ackPacketId, type Frame } from '../frame.js'
import { checkSubscribeFrame, checkSubscription, PendingSuback, type SubscribePolicy } from '../inbound/subscribe.js'
import type { RetainedOrder } from '../inbound/retained-order.js'
import { ReasonCode, describeReasonCode } from '../reason-codes.js'
import { hasWildcard, parseSharedFilter } from '../topic.js'
import { shouldDeliverWithQoS } from '../delivery.js'
import { DROP, PASS, type Verdict } from './verdict.js'

interface UnsubscribeMerge { messageId: number, codes: number[], indexes: number[] }

/** A connection's SUBSCRIBEs and UNSUBSCRIBEs in progress, made at its first one. */
export class SubscribeState {
  /** SUBSCRIBE packets split into parts, by the internal id of each part */
  readonly subParts = new Map<number, { pending: PendingSuback, index: number }>()
  private _unsubParts: Map<number, UnsubscribeMerge> | undefined
  /** new filters accepted so far in the SUBSCRIBE being checked */
  subscribing = 0
  /** SUBSCRIBE parts sent to aedes before the one being checked, not yet answered */
  partsBefore = 0
  private nextInternalId = 1

  /** UNSUBSCRIBE packets whose $share filters culex answers, by the internal id of the rest */
  get unsubParts (): Map<number, UnsubscribeMerge> { return (this._unsubParts ??= new Map()) }

  /** A packet id for a part handed to aedes, unused by the parts in progress. */
  allocateInternalId (): number {
    for (;;) {
      const id = this.nextInternalId
      this.nextInternalId = id >= 0xffff ? 1 : id + 1
      if (!this.subParts.has(id) && this._unsubParts?.has(id) !== true) return id
    }
  }
}

/** What the SUBSCRIBE flow needs of the connection; it is the member a shared group delivers to. */
export interface SubscribeHost extends MemberLink, PolicySubject {
  readonly client: Client
  readonly version: ProtocolVersion | undefined
  readonly settings: SubscribePolicy
  readonly ctx: {
    readonly policy: Pick<ConnectionPolicy, 'maySubscribe' | 'maxSubscriptions'>
    readonly shared: Pick<SharedSubscriptions, 'join' | 'leave' | 'membershipCount'> | undefined
  }
  readonly log: ConnectionLogger
  /** a retained PUBLISH and a SUBSCRIBE take effect in the client's order */
  readonly retainedOrder: Pick<RetainedOrder, 'whenRouted' | 'subscriptionsAnswered'> | undefined
  subscribeState: SubscribeState | undefined
  usesSubscriptionIds: boolean
  deliveriesRouted: boolean
  /** a live QoS 0 message the gateway sends itself; false: aedes delivers it (flows/subscribe.ts `routeDeliveries`) */
  takeLiveQoS0 (packet: AedesPublishPacket): boolean
  writeToClient (buf: Buffer): void
  /** aedes granted a subscription: its retained messages may follow (flows/client-writer.ts `startGathering`) */
  expectRetained (): void
}

/** SUBSCRIBE parts are with aedes, not yet answered (a retained PUBLISH waits for them). */
export function subscribesPending (host: { readonly subscribeState: SubscribeState | undefined }): boolean {
  return host.subscribeState !== undefined && host.subscribeState.subParts.size > 0
}

/** A SUBSCRIBE waits for the retained PUBLISHes before it to be routed (inbound/retained-order.ts). */
export function onSubscribeInOrder (host: SubscribeHost, frame: Frame): Verdict {
  const routed = host.retainedOrder?.whenRouted()
  if (routed === undefined) return onSubscribe(host, frame)
  return { kind: 'defer', decision: routed.then(() => onSubscribe(host, frame)) }
}

/**
 * Steps:
 * 1. the raw packet (`checkSubscribeFrame`): flags, packet id, properties,
 *    UTF-8; [MQTT-3.8.3-2] a SUBSCRIBE without a Topic Filter is a Protocol Error;
 * 2. every filter on its own (inbound/subscribe.ts, `checkShared`), then
 *    the ACL and the subscription limit (`subscriptionLimit`): a refused
 *    filter gets its reason code in the SUBACK;
 * 3. `$share/` filters join their group (spec 4.8.2), the others go to aedes
 *    one per SUBSCRIBE, under internal packet ids;
 * 4. [MQTT-3.8.4-7] the SUBACK merges every answer in the order of the filters.
 */
export function onSubscribe (host: SubscribeHost, frame: Frame): Verdict {
  const packet = readRequest(host, frame, 'subscribe')
  if ('kind' in packet) return packet
  if (packet.subscriptions.length === 0) {
    return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'SUBSCRIBE without a topic filter' }
  }
  routeDeliveries(host)
  const state = host.subscribeState ??= new SubscribeState()
  state.subscribing = 0
  state.partsBefore = state.subParts.size
  const pending = new PendingSuback(packet.messageId ?? 0, packet.subscriptions.length)
  const parts: Packet[] = []
  const joins: Array<() => void> = []
  if (packet.properties?.subscriptionIdentifier !== undefined) host.usesSubscriptionIds = true
  for (let index = 0; index < packet.subscriptions.length; index++) {
    const sub = packet.subscriptions[index] as ISubscription
    const shared = parseSharedFilter(sub.topic)
    if (shared !== null) {
      const verdict = checkShared(host, state, packet, sub, shared)
      if (verdict.kind === 'close') return verdict
      if (verdict.kind === 'reject') pending.settle(index, verdict.code)
      else joins.push(() => { joinShared(host, pending, index, sub, verdict.qos, packet.properties?.subscriptionIdentifier) })
      continue
    }
    const verdict = checkSubscription(packet, sub, host.version ?? 4, host.settings)
    if (verdict.kind === 'reject') {
      host.log.repeated('debug', 'subscription refused ' + verdict.code, { filter: sub.topic, reasonCode: describeReasonCode(verdict.code) }, 'subscription refused')
      pending.settle(index, verdict.code)
      continue
    }
    const limited = subscriptionLimit(host, state, sub.topic)
    if (limited !== undefined) {
      pending.settle(index, limited)
      continue
    }
    const id = state.allocateInternalId()
    state.subParts.set(id, { pending, index })
    const part: ISubscribePacket = { cmd: 'subscribe', messageId: id, subscriptions: [verdict.subscription] }
    if (packet.properties) part.properties = packet.properties
    parts.push(part)
  }
  for (const join of joins) join()
  if (pending.complete) {
    host.writeToClient(encodeSuback(host.version, pending))
    return DROP
  }
  return parts.length > 0 ? { kind: 'replace', packets: parts } : DROP
}

type SharedVerdict = { kind: 'close', reasonCode: number, reason: string } | { kind: 'reject', code: number } | { kind: 'join', qos: 0 | 1 | 2 }

/**
 * A `$share/{name}/{filter}` subscription (spec 4.8.2):
 * 1. [MQTT-4.8.2-1] [MQTT-4.8.2-2] a malformed share name or filter: 0x8F;
 * 2. [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error;
 * 3. shared subscriptions off: 0x9E;
 * 4. wildcards off and a wildcard filter: 0xA2; QoS capped at the maximum.
 */
function checkShared (host: SubscribeHost, state: SubscribeState, packet: ISubscribePacket, sub: ISubscription, shared: ReturnType<typeof parseSharedFilter>): SharedVerdict {
  const v5 = host.version === 5
  if (shared === 'invalid' || shared === null) return { kind: 'reject', code: v5 ? ReasonCode.TopicFilterInvalid : ReasonCode.UnspecifiedError }
  if (sub.nl === true) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'No Local on a shared subscription' }
  if (!host.ctx.shared) return { kind: 'reject', code: v5 ? ReasonCode.SharedSubscriptionsNotSupported : ReasonCode.UnspecifiedError }
  const plain = checkSubscription(packet, { ...sub, topic: shared.filter }, host.version ?? 4, host.settings)
  if (plain.kind === 'reject') return plain
  if (!host.settings.wildcardSubscriptionAvailable && hasWildcard(shared.filter)) {
    return { kind: 'reject', code: v5 ? ReasonCode.WildcardSubscriptionsNotSupported : ReasonCode.UnspecifiedError }
  }
  const limited = subscriptionLimit(host, state, sub.topic)
  if (limited !== undefined) return { kind: 'reject', code: limited }
  return { kind: 'join', qos: plain.subscription.qos }
}

/**
 * The ACL (a `$share/` filter is checked against its filter, lib/auth/acl.ts)
 * and the per-client subscription limit: 0x87 / 0x97 (0x80 for 3.1.1).
 */
function subscriptionLimit (host: SubscribeHost, state: SubscribeState, filter: string): number | undefined {
  const v5 = host.version === 5
  const policy = host.ctx.policy
  if (!policy.maySubscribe(host, filter)) {
    host.log.repeated('info', 'subscription not authorized', { filter }, 'subscription not authorized')
    return v5 ? ReasonCode.NotAuthorized : ReasonCode.UnspecifiedError
  }
  const subs = clientSubscriptions(host.client)
  if (subs[filter] === undefined) {
    // held, being made (earlier SUBSCRIBEs not yet answered, this one so far), and shared
    const count = Object.keys(subs).length + state.partsBefore + state.subscribing + (host.ctx.shared?.membershipCount(host.client.id) ?? 0)
    if (count >= policy.maxSubscriptions) {
      host.log.repeated('warn', 'subscription limit reached', { filter, limit: policy.maxSubscriptions }, 'subscription limit reached')
      return v5 ? ReasonCode.QuotaExceeded : ReasonCode.UnspecifiedError
    }
    state.subscribing++
  }
  return undefined
}

function joinShared (host: SubscribeHost, pending: PendingSuback, index: number, sub: ISubscription, qos: 0 | 1 | 2, si: number | undefined): void {
  const shared = host.ctx.shared as NonNullable<SubscribeHost['ctx']['shared']>
  const filter = (parseSharedFilter(sub.topic) as { filter: string }).filter
  const persistent = !host.client.clean
  shared.join(host, sub.topic, filter, { qos, si, rap: sub.rap === true }, persistent).then((result) => {
    const code = result.ok ? result.qos : result.reasonCode
    if (pending.settle(index, code)) host.writeToClient(encodeSuback(host.version, pending))
  }, (err: unknown) => {
    host.log.error({ err, filter: sub.topic }, 'joining a shared subscription failed')
    if (pending.settle(index, ReasonCode.UnspecifiedError)) host.writeToClient(encodeSuback(host.version, pending))
  })
}

/** aedes answered a SUBSCRIBE part: the client's SUBACK goes out once every filter has its code [MQTT-3.8.4-7]. */
export function onSuback (host: SubscribeHost, frame: Frame, out: Buffer[]): void {
  const id = ackPacketId(frame)
  const state = host.subscribeState
  const part = state?.subParts.get(id)
  if (state === undefined || part === undefined) { out.push(frame.buf); return }
  state.subParts.delete(id)
  if (state.subParts.size === 0) host.retainedOrder?.subscriptionsAnswered()
  const packet = decodeFrame(frame, host.version) as ISubackPacket | Error
  const code = packet instanceof Error ? ReasonCode.UnspecifiedError : (packet.granted[0] as number | undefined) ?? ReasonCode.UnspecifiedError
  if (code < 0x80) host.expectRetained()
  if (part.pending.settle(part.index, code)) out.push(encodeSuback(host.version, part.pending))
}

export function encodeSuback (version: ProtocolVersion | undefined, pending: PendingSuback): Buffer {
  const packet: ISubackPacket = { cmd: 'suback', messageId: pending.messageId, granted: pending.codes.map(c => c ?? ReasonCode.UnspecifiedError) }
  return encode(packet, version)
}

/**
 * UNSUBSCRIBE (spec 3.10):
 * 1. the raw packet, as a SUBSCRIBE's (`checkSubscribeFrame`);
 * 2. [MQTT-3.10.3-2] an UNSUBSCRIBE without a Topic Filter is a Protocol Error;
 * 3. `$share/` filters leave their group here; the others go to aedes as
 *    one UNSUBSCRIBE, and the UNSUBACKs are merged (`onUnsuback`).
 */
export function onUnsubscribe (host: SubscribeHost, frame: Frame): Verdict {
  const packet = readRequest(host, frame, 'unsubscribe')
  if ('kind' in packet) return packet
  const shared = host.ctx.shared
  const sharedIndexes: number[] = []
  const rest: string[] = []
  const restIndexes: number[] = []
  packet.unsubscriptions.forEach((topic, i) => {
    if (shared && topic.startsWith('$share/')) sharedIndexes.push(i)
    else { rest.push(topic); restIndexes.push(i) }
  })
  if (shared === undefined || sharedIndexes.length === 0) {
    if (packet.unsubscriptions.length === 0) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'UNSUBSCRIBE without a topic filter' }
    return PASS
  }
  const codes = new Array<number>(packet.unsubscriptions.length).fill(ReasonCode.Success)
  const state = host.subscribeState ??= new SubscribeState()
  const id = rest.length > 0 ? state.allocateInternalId() : 0
  const merge = { messageId: packet.messageId ?? 0, codes, indexes: restIndexes }
  const leaves = sharedIndexes.map(async (i) => {
    const left = await shared.leave(host.client.id, packet.unsubscriptions[i] as string)
    codes[i] = left ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted
  })
  const decision = Promise.all(leaves).then((): Verdict => {
    if (rest.length === 0) {
      host.writeToClient(encodeUnsuback(host.version, merge.messageId, codes))
      return DROP
    }
    state.unsubParts.set(id, merge)
    const part: IUnsubscribePacket = { cmd: 'unsubscribe', messageId: id, unsubscriptions: rest }
    if (packet.properties) part.properties = packet.properties
    return { kind: 'replace', packets: [part] }
  })
  return { kind: 'defer', decision }
}

/** Step 1 of both: the raw packet checked (`checkSubscribeFrame`), then decoded; a closing verdict when it is not well-formed. */
function readRequest (host: SubscribeHost, frame: Frame, cmd: 'subscribe'): ISubscribePacket | Verdict
function readRequest (host: SubscribeHost, frame: Frame, cmd: 'unsubscribe'): IUnsubscribePacket | Verdict
function readRequest (host: SubscribeHost, frame: Frame, cmd: 'subscribe' | 'unsubscribe'): ISubscribePacket | IUnsubscribePacket | Verdict {
  const bad = checkSubscribeFrame(frame, host.version)
  if (bad !== undefined) return { kind: 'close', reasonCode: bad.reasonCode, reason: bad.reason }
  const packet = decodeFrame(frame, host.version)
  if (packet instanceof Error || packet.cmd !== cmd) {
    return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `malformed ${cmd.toUpperCase()}` }
  }
  return packet
}

/** aedes answered the rest of a split UNSUBSCRIBE: its codes go in their places among the group's. */
export function onUnsuback (host: SubscribeHost, frame: Frame, out: Buffer[]): void {
  const id = ackPacketId(frame)
  const state = host.subscribeState
  const merge = state?.unsubParts.get(id)
  if (state === undefined || merge === undefined) { out.push(frame.buf); return }
  state.unsubParts.delete(id)
  const packet = decodeFrame(frame, host.version) as IUnsubackPacket | Error
  const granted = packet instanceof Error ? [] : (packet.granted ?? [])
  merge.indexes.forEach((target, i) => { merge.codes[target] = (granted[i] as number | undefined) ?? ReasonCode.Success })
  out.push(encodeUnsuback(host.version, merge.messageId, merge.codes))
}

/** 3.1.1 UNSUBACKs carry no reason codes (spec 3.11.3). */
export function encodeUnsuback (version: ProtocolVersion | undefined, messageId: number, codes: number[]): Buffer {
  const packet: IUnsubackPacket = { cmd: 'unsuback', messageId, granted: version === 5 ? codes : [] }
  return encode(packet, version)
}

/**
 * aedes binds a QoS 0 subscription to `client.deliver0`; routed, a message
 * that also matches a higher-QoS subscription of the client goes out at that
 * QoS (lib/protocol/delivery.ts). Set up before aedes makes the client's
 * first subscription (a SUBSCRIBE, or a CONNECT resuming a session): until
 * then `deliver0` only carries QoS 0 messages, which it sends as they are.
 */
export function routeDeliveries (host: { readonly client: Client, deliveriesRouted: boolean, takeLiveQoS0 (packet: AedesPublishPacket): boolean }): void {
  if (host.deliveriesRouted) return
  host.deliveriesRouted = true
  const client = host.client
  // live QoS 0 messages the gateway can send now skip aedes' deliverQoS0 (Connection.takeLiveQoS0)
  routeQoS0Delivery(client, (packet) => shouldDeliverWithQoS(client, packet), (packet) => host.takeLiveQoS0(packet as AedesPublishPacket))
}
