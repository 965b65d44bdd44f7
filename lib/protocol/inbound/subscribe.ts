/**
 * SUBSCRIBE (spec 3.8) as the gateway handles it: every filter is checked
 * here and answered with its own reason code, so one bad filter never closes
 * the connection; the accepted filters go to aedes one per SUBSCRIBE, and
 * their SUBACKs are merged back into one (flows/subscribe.ts).
 */
import type { ISubscribePacket, ISubscription } from 'mqtt-packet'
import { ReasonCode } from '../reason-codes.js'
import { isValidTopicFilter, topicLevels, hasWildcard } from '../topic.js'
import { PacketType, type Frame } from '../frame.js'
import { isWellFormedString } from '../utf8.js'
import { checkProperties } from '../property-rules.js'
import { validFixedHeaderFlags } from './ack.js'

/**
 * A SUBSCRIBE or UNSUBSCRIBE on its raw bytes, before mqtt-packet decodes
 * it (which would turn ill-formed UTF-8 into U+FFFD). Steps:
 * 1. [MQTT-3.8.1-1] [MQTT-3.10.1-1] fixed header flags 0010: else malformed;
 * 2. [MQTT-2.2.1-3] packet identifier 0: Protocol Error;
 * 3. MQTT 5 properties (property-rules.ts): a repeated Subscription
 *    Identifier, or one of 0, is a Protocol Error (spec 3.8.2.1.2), an
 *    ill-formed User Property is malformed;
 * 4. [MQTT-1.5.4-1] [MQTT-1.5.4-2] every Topic Filter well-formed UTF-8
 *    without U+0000: else the packet is malformed (not a per-filter 0x8F,
 *    which is for a filter that is a valid string but not a valid filter).
 */
export function checkSubscribeFrame (frame: Frame, version: number | undefined): { reasonCode: number, reason: string } | undefined {
  const { buf, headerLength, type } = frame
  const name = type === PacketType.SUBSCRIBE ? 'SUBSCRIBE' : 'UNSUBSCRIBE'
  if (!validFixedHeaderFlags(type, frame.flags, version)) return { reasonCode: ReasonCode.MalformedPacket, reason: `invalid fixed header flags on ${name}` }
  if (buf.length < headerLength + 2) return { reasonCode: ReasonCode.MalformedPacket, reason: `${name} without a packet identifier` }
  if (buf.readUInt16BE(headerLength) === 0) return { reasonCode: ReasonCode.ProtocolError, reason: `${name} with packet identifier 0` }
  let at = headerLength + 2
  if (version === 5) {
    const props = checkProperties(buf, at, buf.length, type === PacketType.SUBSCRIBE ? 'subscribe' : 'unsubscribe')
    if (typeof props !== 'number') return props
    at = props
  }
  const options = type === PacketType.SUBSCRIBE ? 1 : 0
  while (at < buf.length) {
    if (at + 2 > buf.length) return { reasonCode: ReasonCode.MalformedPacket, reason: `${name} payload cut short` }
    const start = at + 2
    const end = start + buf.readUInt16BE(at)
    if (end + options > buf.length) return { reasonCode: ReasonCode.MalformedPacket, reason: `${name} payload cut short` }
    if (!isWellFormedString(buf, start, end)) return { reasonCode: ReasonCode.MalformedPacket, reason: 'topic filter is not a well-formed UTF-8 string' }
    at = end + options
  }
  return undefined
}

export interface SubscribePolicy {
  maximumQoS: 0 | 1 | 2
  maxTopicLevels: number
  maxTopicLength: number
  wildcardSubscriptionAvailable: boolean
  subscriptionIdentifierAvailable: boolean
}

export type FilterVerdict =
  | { kind: 'forward', subscription: ISubscription }
  | { kind: 'reject', code: number }

/**
 * Steps, per filter:
 * 1. [MQTT-3.8.3-1] [MQTT-4.7.1-2] [MQTT-4.7.1-3] a malformed filter gets 0x8F
 *    (0x80 for 3.1.1, which has no finer code);
 * 2. a filter over the length or level limits gets 0x8F;
 * 3. a wildcard filter when wildcards are off gets 0xA2 (spec 3.2.2.3.11, 3.9.3);
 * 4. a Subscription Identifier when identifiers are off gets 0xA1 (spec 3.2.2.3.12, 3.9.3);
 * 5. the requested QoS is capped at the server's Maximum QoS (3.2.2.3.4);
 * 6. the rest is forwarded.
 */
export function checkSubscription (
  packet: ISubscribePacket,
  sub: ISubscription,
  version: number,
  policy: SubscribePolicy
): FilterVerdict {
  const failure = version === 5 ? ReasonCode.TopicFilterInvalid : ReasonCode.UnspecifiedError
  const topic = sub.topic
  if (!isValidTopicFilter(topic)) return { kind: 'reject', code: failure }
  if (Buffer.byteLength(topic) > policy.maxTopicLength || topicLevels(topic) > policy.maxTopicLevels) {
    return { kind: 'reject', code: failure }
  }
  if (!policy.wildcardSubscriptionAvailable && hasWildcard(topic)) {
    return { kind: 'reject', code: version === 5 ? ReasonCode.WildcardSubscriptionsNotSupported : ReasonCode.UnspecifiedError }
  }
  if (!policy.subscriptionIdentifierAvailable && packet.properties?.subscriptionIdentifier !== undefined) {
    return { kind: 'reject', code: ReasonCode.SubscriptionIdentifiersNotSupported }
  }
  const qos = Math.min(sub.qos, policy.maximumQoS) as 0 | 1 | 2
  return { kind: 'forward', subscription: qos === sub.qos ? sub : { ...sub, qos } }
}

/** A SUBSCRIBE split into parts, waiting for aedes' SUBACKs to be merged. */
export class PendingSuback {
  readonly codes: Array<number | undefined>
  private remaining: number

  constructor (readonly messageId: number, size: number) {
    this.codes = new Array<number | undefined>(size).fill(undefined)
    this.remaining = size
  }

  /** Records the code of filter `index`; true once every filter has one. */
  settle (index: number, code: number): boolean {
    if (this.codes[index] === undefined) this.remaining--
    this.codes[index] = code
    return this.remaining === 0
  }

  get complete (): boolean { return this.remaining === 0 }
}
