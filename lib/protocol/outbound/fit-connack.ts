/**
 * A CONNACK within the client's Maximum Packet Size [MQTT-3.1.2-24]. The
 * Reason String and User Properties go first [MQTT-3.2.2-19]
 * [MQTT-3.2.2-20]; then properties whose absence tells the client the same
 * thing (spec 3.2.2.3: an absent Retain / Wildcard / Subscription Identifier
 * / Shared Subscription Available means 1); then offers the client may do
 * without (a Topic Alias Maximum left out means 0, spec 3.2.2.3.8: the client
 * sends no aliases; Response Information is optional, spec 3.2.2.3.15). What
 * limits the client (Maximum QoS, Receive Maximum, Maximum Packet Size,
 * Server Keep Alive) or names it (Assigned Client Identifier) is never dropped.
 */
import type { IConnackPacket } from 'mqtt-packet'
import { decodeBuffer, encode } from '../codec.js'

type ConnackProperties = NonNullable<IConnackPacket['properties']>

/** Each step removes what may go when the step before was not enough. */
const STEPS: ReadonlyArray<(p: ConnackProperties) => void> = [
  (p) => { delete p.reasonString; delete p.userProperties },
  (p) => {
    if (p.retainAvailable === true) delete p.retainAvailable
    if (p.wildcardSubscriptionAvailable === true) delete p.wildcardSubscriptionAvailable
    if (p.subscriptionIdentifiersAvailable === true) delete p.subscriptionIdentifiersAvailable
    if (p.sharedSubscriptionAvailable === true) delete p.sharedSubscriptionAvailable
  },
  (p) => { delete p.topicAliasMaximum; delete p.responseInformation }
]

/** The MQTT 5 CONNACK `buf` made to fit `max` bytes, or undefined when it cannot. */
export function fitConnack (buf: Buffer, max: number): Buffer | undefined {
  if (buf.length <= max) return buf
  const packet = decodeBuffer(buf, 5)
  if (packet instanceof Error || packet.cmd !== 'connack' || packet.properties === undefined) return undefined
  const props: ConnackProperties = { ...packet.properties }
  for (const step of STEPS) {
    step(props)
    const smaller = encode({ ...packet, properties: props }, 5)
    if (smaller.length <= max) return smaller
  }
  return undefined
}
