/**
 * Corrections on the delivery path, applied in aedes' `authorizeForward`
 * hook (called for every message aedes is about to send to a client: live,
 * retained at subscribe, and queued while offline) and in `authorizePublish`
 * (every message entering the broker, wills included).
 */
import type { Client } from 'aedes'
import type { AedesPublishPacket, PublishPacket } from 'aedes'
import { clientSubscriptions } from '../aedes-internals.js'
import { topicMatches } from './topic.js'

type Properties = NonNullable<PublishPacket['properties']> & { willDelayInterval?: number }

/**
 * A Will's `willDelayInterval` belongs to CONNECT only (spec 3.1.3.2.2); aedes
 * 2.0.0-beta.1 publishes the will with it (aedes #1098), and strict clients
 * reject a PUBLISH carrying it. Stripped where the will enters the broker, so
 * neither the delivered nor the retained copy carries it.
 */
export function stripWillProperties (packet: PublishPacket): void {
  const props = packet.properties as Properties | undefined
  if (props?.willDelayInterval !== undefined) {
    const { willDelayInterval: _drop, ...rest } = props
    packet.properties = rest
  }
}

export interface MatchingSubscriptions {
  /** the highest QoS granted among the matching subscriptions, -1 if none */
  qos: number
  /** their Subscription Identifiers */
  identifiers: number[]
}

/** Every subscription of the client that matches `topic`. */
const NO_IDENTIFIERS: number[] = []

export function matchingSubscriptions (client: Client, topic: string, wantIdentifiers: boolean): MatchingSubscriptions {
  const subs = clientSubscriptions(client)
  let qos = -1
  let identifiers = NO_IDENTIFIERS
  for (const filter in subs) {
    const sub = subs[filter]
    if (sub === undefined || !topicMatches(filter, topic)) continue
    if (sub.qos > qos) qos = sub.qos
    if (wantIdentifiers && sub.si !== undefined) {
      if (identifiers === NO_IDENTIFIERS) identifiers = []
      identifiers.push(sub.si)
    }
  }
  return { qos, identifiers }
}

export interface ForwardOptions {
  /** the client has (or may have) subscriptions with identifiers */
  subscriptionIdentifiers: boolean
  /** the time; read from the clock when left out, only for a message with an expiry (the one step that uses it) */
  now?: number
  /** a shared delivery: QoS and identifier were chosen for the group member (lib/shared) */
  shared?: boolean
}

/**
 * The Message Expiry Interval a message still has at `now`, in whole seconds
 * rounded up: what a server passes on instead of the one it received
 * [MQTT-3.3.2-6]. Zero or less: expired [MQTT-3.3.2-5].
 */
export function expiryIntervalLeft (messageExpiry: number, now: number): number {
  return Math.ceil((messageExpiry - now) / 1000)
}

/**
 * Steps, per message and client:
 * 1. [MQTT-3.3.2-5] a message whose Message Expiry Interval has passed is
 *    not delivered; otherwise the interval sent is what remains
 *    [MQTT-3.3.2-6], for live delivery too (spec 3.3.2.3.3);
 * 2. [MQTT-3.8.4-8] [MQTT-3.3.4-2] the QoS is the minimum of the message's
 *    and the highest granted among the client's matching subscriptions
 *    (aedes looked the grant up by exact topic only, missing wildcards);
 * 3. [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5] the message carries the
 *    Subscription Identifiers of every matching subscription (aedes sent one
 *    on live delivery and none on queued messages); a retained message sent
 *    because of a new subscription keeps that subscription's identifier;
 * 4. no `willDelayInterval`.
 * The packet is per delivery (aedes copies it per subscription), so it is
 * corrected in place; its `properties` object is shared, so it is replaced.
 */
export function forwardCorrections (client: Client, packet: AedesPublishPacket, opts: ForwardOptions): AedesPublishPacket | null {
  const props = packet.properties as Properties | undefined
  let newProps: Properties | undefined

  if (packet.messageExpiry !== undefined) {
    const now = opts.now ?? Date.now()
    if (packet.messageExpiry <= now) return null
    newProps = { ...props, messageExpiryInterval: expiryIntervalLeft(packet.messageExpiry, now) }
  }

  const retainedAtSubscribe = packet.brokerId === null
  const needIdentifiers = opts.subscriptionIdentifiers && !retainedAtSubscribe
  if (opts.shared !== true && (packet.qos > 0 || needIdentifiers)) {
    const match = matchingSubscriptions(client, packet.topic, needIdentifiers)
    if (match.qos >= 0 && match.qos < packet.qos) packet.qos = match.qos as 0 | 1 | 2
    if (needIdentifiers) {
      newProps ??= { ...props }
      if (match.identifiers.length === 0) delete newProps.subscriptionIdentifier
      else newProps.subscriptionIdentifier = match.identifiers.length === 1 ? match.identifiers[0] as number : match.identifiers
    }
  }

  if (props?.willDelayInterval !== undefined) {
    newProps ??= { ...props }
    delete newProps.willDelayInterval
  }
  if (newProps !== undefined) packet.properties = newProps
  return packet
}

/**
 * [MQTT-3.3.4-2] with overlapping subscriptions aedes delivers once, through
 * whichever matching subscription its matcher lists first; if that is a QoS 0
 * subscription, a QoS 1 or 2 subscription of the same client would be
 * ignored. This tells the QoS 0 path to hand such messages to the QoS path.
 */
export function shouldDeliverWithQoS (client: Client, packet: { topic: string, qos: number }): boolean {
  if (packet.qos === 0) return false
  return matchingSubscriptions(client, packet.topic, false).qos > 0
}
