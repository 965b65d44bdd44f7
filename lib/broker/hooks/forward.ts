/**
 * aedes' authorizeForward hook: called for every message aedes is about to
 * write to one client (live, retained at subscribe, queued while offline).
 * Its steps depend on their order, so they are a numbered list: each step
 * returns the packet, corrected in place, or null to drop the delivery.
 */
import type { AedesPublishPacket, Client } from 'aedes'
import type { SecurityPolicy } from '../../auth/policy.js'
import type { Connection } from '../../protocol/connection.js'
import { forwardCorrections } from '../../protocol/delivery.js'
import type { ProtocolVersion } from '../../protocol/codec.js'
import type { EncodeOnce } from '../../protocol/outbound/encode-once.js'
import { SHARED_BROKER_ID, type SharedSubscriptions } from '../../shared/dispatcher.js'
import type { StoreExtras } from '../store.js'

/** What the steps use of the client's gateway. */
export type ForwardGateway = Pick<Connection, 'isRepeat' | 'authenticatedAs' | 'usesSubscriptionIds' | 'version' | 'sendEncoded' | 'sealEncoded' | 'qos0Batch'>

export interface ForwardContext {
  readonly security: Pick<SecurityPolicy, 'hasAcl' | 'mayReceive'> | undefined
  readonly shared: Pick<SharedSubscriptions, 'refuse' | 'onForward'> | undefined
  readonly encodeOnce: Pick<EncodeOnce, 'frame' | 'append'>
  store (): Pick<StoreExtras, 'wasInFlight' | 'routedDuplicate' | 'routedOffered'> | undefined
  gatewayOf (client: { conn: unknown }): ForwardGateway | undefined
}

/**
 * One step for one delivery. `shared`: a delivery of a shared subscription,
 * whose member, QoS and identifier the dispatcher chose (lib/shared). The
 * arguments are positional so that no object is made per delivery.
 */
export type ForwardStep = (packet: AedesPublishPacket, client: Client, conn: ForwardGateway | undefined, shared: boolean, ctx: ForwardContext) => AedesPublishPacket | null

/**
 * 1. [MQTT-3.3.4-2] one copy per client of a live message that matches
 *    several of its subscriptions. Only live copies repeat: a message queued
 *    while offline comes from the store once, and the dispatcher sends a
 *    shared message to one member once.
 */
export const dropRepeatedCopy: ForwardStep = (packet, _client, conn, shared) =>
  conn !== undefined && !shared && typeof packet.brokerId === 'string' && packet.messageId === undefined &&
  conn.isRepeat(packet.brokerId, packet.brokerCounter)
    ? null
    : packet

/**
 * 1b. [MQTT-4.3.3-10] A routed QoS 2 message (lib/cluster/routed-id.ts) goes
 *     out once: not a copy the session had already (published again: the
 *     store did not queue it again), nor the same message offered twice to
 *     one connection (from the session's queue as the connection resumes,
 *     with the packet id aedes gave it there, and live).
 */
export const dropRoutedRepeat: ForwardStep = (packet, client, _conn, shared, ctx) => {
  if (packet.qos !== 2 || shared) return packet
  const store = ctx.store()
  if (packet.messageId === undefined && store?.routedDuplicate?.(client.id, packet) === true) return null
  return store?.routedOffered?.(client, packet) === true ? null : packet
}

/**
 * 2. With an ACL, delivery is checked too: a client whose read right went
 *    away stops receiving. A refused shared delivery goes back to its group.
 */
export const checkReadRight: ForwardStep = (packet, client, conn, shared, ctx) => {
  const security = ctx.security
  if (security?.hasAcl !== true || security.mayReceive({ clientId: client.id, username: conn?.authenticatedAs }, packet.topic)) return packet
  if (shared) ctx.shared?.refuse(packet.brokerCounter)
  return null
}

/** 3. [MQTT-3.3.1-1] a message re-sent from the session's queue with its old packet id is a duplicate. */
export const markResentAsDuplicate: ForwardStep = (packet, client, _conn, _shared, ctx) => {
  if (packet.qos > 0 && packet.messageId !== undefined && ctx.store()?.wasInFlight?.(client.id, packet.brokerId, packet.brokerCounter) === true) {
    packet.dup = true
  }
  return packet
}

/** 4. A shared delivery goes out only if the dispatcher still assigns it to this client (not a stale copy). */
export const confirmSharedDelivery: ForwardStep = (packet, client, _conn, shared, ctx) =>
  shared && ctx.shared?.onForward(client, packet) !== true ? null : packet

/**
 * 5. The corrections of protocol/delivery.ts: expiry, QoS downgrade,
 *    Subscription Identifiers (of the member's subscription for a shared
 *    delivery, which carries its own), no will properties. The clock is read
 *    only for a message with an expiry: this runs for every delivery.
 */
export const applyCorrections: ForwardStep = (packet, client, conn, shared) =>
  shared
    ? forwardCorrections(client, packet, { subscriptionIdentifiers: false, shared: true })
    : forwardCorrections(client, packet, { subscriptionIdentifiers: conn?.usesSubscriptionIds === true })

/**
 * 6. A live QoS 0 delivery, corrected: encoded once for all its subscribers
 *    and written by the gateway (protocol/outbound/encode-once.ts); aedes
 *    writes it when the gateway cannot take it now.
 */
export const sendEncodedOnce: ForwardStep = (packet, _client, conn, shared, ctx) =>
  !shared && conn !== undefined && packet.qos === 0 && typeof packet.brokerId === 'string' && conn.version !== undefined &&
  conn.sendEncoded(ctx.encodeOnce.frame(packet, conn.version))
    ? null
    : packet

/** 7. aedes writes this one: QoS 0 messages encoded after it wait for it. */
export const sealEncoded: ForwardStep = (packet, _client, conn) => {
  conn?.sealEncoded()
  return packet
}

/** The steps, in the order they run. */
export const FORWARD_STEPS: readonly ForwardStep[] = [
  dropRepeatedCopy,
  dropRoutedRepeat,
  checkReadRight,
  markResentAsDuplicate,
  confirmSharedDelivery,
  applyCorrections,
  sendEncodedOnce,
  sealEncoded
]

export function authorizeForward (ctx: ForwardContext, client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
  const conn = ctx.gatewayOf(client)
  const shared = ctx.shared !== undefined && packet.brokerId?.startsWith(SHARED_BROKER_ID) === true
  return throughSteps(FORWARD_STEPS, ctx, client, conn, shared, packet)
}

/** `packet` through `steps` in order; null once one drops it. */
function throughSteps (steps: readonly ForwardStep[], ctx: ForwardContext, client: Client, conn: ForwardGateway | undefined, shared: boolean, packet: AedesPublishPacket): AedesPublishPacket | null {
  let forwarded = packet
  for (const step of steps) {
    const next = step(forwarded, client, conn, shared, ctx)
    if (next === null) return null
    forwarded = next
  }
  return forwarded
}

/** The steps before step 6's send: what a live QoS 0 delivery the gateway takes whole goes through (`forwardLiveQoS0`). */
const LIVE_STEPS: readonly ForwardStep[] = FORWARD_STEPS.slice(0, FORWARD_STEPS.indexOf(sendEncodedOnce))

/**
 * A live QoS 0 delivery the gateway takes whole, instead of aedes asking
 * `authorizeForward` (lib/aedes-internals.ts `routeQoS0Delivery`, the gateway's
 * flows/fast-paths.ts `takeLiveQoS0`, which has checked that it can send an
 * encoded message now): the steps before step 6, then the message encoded once for all
 * its subscribers (step 6's encoding), written into the client's batch of
 * the turn, which goes out as step 6's would have. true: taken; undefined:
 * not for this path (a shared delivery, whose member the dispatcher chose),
 * aedes delivers it; null: a step dropped it.
 */
export function forwardLiveQoS0 (ctx: ForwardContext, client: Client, conn: ForwardGateway, version: ProtocolVersion, packet: AedesPublishPacket): true | null | undefined {
  if (ctx.shared !== undefined && packet.brokerId.startsWith(SHARED_BROKER_ID)) return undefined
  const forwarded = throughSteps(LIVE_STEPS, ctx, client, conn, false, packet)
  if (forwarded === null) return null
  ctx.encodeOnce.append(forwarded, version, conn.qos0Batch())
  return true
}
