/**
 * Corrections on the delivery path, applied in aedes' `authorizeForward`
 * hook (called for every message aedes is about to send to a client) and in
 * `authorizePublish` (every message entering the broker, wills included).
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

/**
 * [MQTT-3.8.4-6] [MQTT-3.3.4-2] a message goes to a subscriber at the minimum
 * of its QoS and the maximum QoS granted among the client's subscriptions that
 * match it. aedes looks the granted QoS up by exact topic, so wildcard
 * subscriptions were not downgraded; this finds every matching filter.
 * Returns the QoS to deliver at.
 */
export function grantedQoS (client: Client, packet: { topic: string, qos: number }): number {
  const subs = clientSubscriptions(client)
  const exact = subs[packet.topic]
  let best = exact ? exact.qos : -1
  if (best < packet.qos) {
    for (const filter in subs) {
      const sub = subs[filter]
      if (sub !== undefined && sub.qos > best && filter !== packet.topic && topicMatches(filter, packet.topic)) {
        best = sub.qos
        if (best >= packet.qos) break
      }
    }
  }
  // no matching subscription: a message aedes sends for another reason (a retained
  // copy, a redelivery) keeps its QoS
  return best < 0 ? packet.qos : Math.min(best, packet.qos)
}

export function forwardCorrections (client: Client, packet: AedesPublishPacket): AedesPublishPacket {
  const qos = packet.qos > 0 ? grantedQoS(client, packet) : 0
  const props = packet.properties as Properties | undefined
  if (qos === packet.qos && props?.willDelayInterval === undefined) return packet
  const copy: AedesPublishPacket = { ...packet, qos: qos as 0 | 1 | 2 }
  stripWillProperties(copy)
  return copy
}
