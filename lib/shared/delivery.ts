/**
 * The packets the dispatcher sends: a message as one member gets it, and the
 * copy of a refused message for the dead-letter topic.
 */
import type { Member } from './group.js'
import type { SharedDelivery } from './member-link.js'
import type { StoredMessage } from './store.js'
import { groupName } from './strategies.js'
import type { DeadLetterReason } from './group.js'

type UserProperties = Record<string, string | string[]>

/** The user property of a delivery after the first: how often the message was delivered, this one included. */
export const DELIVERY_COUNT = 'culex-delivery-count'

/** A message's own properties with the member's Subscription Identifier, or undefined when it has neither. */
export function memberProperties (props: Record<string, unknown> | undefined, member: Pick<Member, 'si'>): Record<string, unknown> | undefined {
  if (props === undefined && member.si === undefined) return undefined
  const out: Record<string, unknown> = { ...props }
  // [MQTT-3.3.4-3] the identifier of the subscription the message was sent for
  if (member.si !== undefined) out.subscriptionIdentifier = member.si
  else delete out.subscriptionIdentifier
  return out
}

/** A message as the group's log or aedes' emitter holds it. */
export interface Source {
  topic: string
  payload: Buffer
  retain?: boolean
  properties?: object
  messageExpiry?: number
  deliveryCount?: number
}

/** The PUBLISH for `member`: its QoS, the retain flag as its Retain As Published option says, its subscription's identifier. */
export function sharedDelivery (m: Source, member: Pick<Member, 'rap' | 'si'>, qos: 0 | 1 | 2, brokerId: string, brokerCounter: number): SharedDelivery {
  const out: SharedDelivery = {
    cmd: 'publish',
    topic: m.topic,
    payload: m.payload,
    qos,
    retain: member.rap && m.retain === true,
    dup: false,
    brokerId,
    brokerCounter
  }
  const props = memberProperties(m.properties as Record<string, unknown> | undefined, member)
  if (props) out.properties = props
  const count = m.deliveryCount
  // every delivery after the first says how often the message was delivered
  if (count !== undefined && count > 1) {
    const with_ = out.properties ?? {}
    with_.userProperties = { ...(with_.userProperties as UserProperties | undefined), [DELIVERY_COUNT]: String(count) }
    out.properties = with_
  }
  if (m.messageExpiry !== undefined) out.messageExpiry = m.messageExpiry
  return out
}

/** A QoS 1/2 message as the group's log keeps it. */
export function storedMessage (packet: Source & { clientId?: string }, qos: 1 | 2): StoredMessage {
  const message: StoredMessage = {
    topic: packet.topic,
    payload: packet.payload,
    qos,
    retain: packet.retain === true
  }
  if (packet.properties !== undefined) message.properties = packet.properties as Record<string, unknown>
  if (packet.messageExpiry !== undefined) message.messageExpiry = packet.messageExpiry
  if (packet.clientId !== undefined) message.publisherId = packet.clientId
  return message
}

export interface DeadLetter {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 1
  retain: false
  dup: false
  properties: Record<string, unknown>
}

/** Why a message is dead-lettered, as its dead letter's user properties say. */
export interface DeadLetterCause {
  reason: DeadLetterReason
  /** the member that refused it, or got it last */
  clientId: string | undefined
  deliveryCount: number
  /** the refusing PUBACK/PUBREC's Reason Code and Reason String */
  reasonCode?: number
  reasonString?: string | undefined
}

/**
 * The copy of a message given up on for `template` (`{group}` and `{topic}`
 * filled in): its topic, payload and MQTT 5 properties, with user
 * properties saying why, how often it was delivered and to whom last.
 */
export function deadLetter (template: string, groupKey: string, m: StoredMessage, cause: DeadLetterCause): DeadLetter {
  const name = groupName(groupKey)
  const why: Record<string, string> = {
    'culex-reason': cause.reason,
    'culex-delivery-count': String(cause.deliveryCount),
    'culex-group': name,
    'culex-original-topic': m.topic
  }
  if (cause.reasonCode !== undefined) why['culex-reason-code'] = '0x' + cause.reasonCode.toString(16).padStart(2, '0')
  if (cause.reasonString !== undefined) why['culex-reason-string'] = cause.reasonString
  if (cause.clientId !== undefined) why['culex-client-id'] = cause.clientId
  return {
    cmd: 'publish',
    topic: template.replaceAll('{group}', name).replaceAll('{topic}', m.topic),
    payload: m.payload,
    qos: 1,
    retain: false,
    dup: false,
    properties: {
      ...(m.properties as object),
      userProperties: { ...(m.properties?.userProperties as UserProperties | undefined), ...why }
    }
  }
}
