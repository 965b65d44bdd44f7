/**
 * The packets the dispatcher sends: a message as one member gets it, and the
 * copy of a refused message for the dead-letter topic.
 */
import type { Member } from './group.js'
import type { SharedDelivery } from './member-link.js'
import type { StoredMessage } from './store.js'
import { groupName } from './strategies.js'

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

/**
 * The copy of a message its member refused, for `template` (`{group}` and
 * `{topic}` filled in), with user properties saying who refused it and how.
 */
export function deadLetter (template: string, groupKey: string, m: StoredMessage, clientId: string, reasonCode: number): DeadLetter {
  const name = groupName(groupKey)
  return {
    cmd: 'publish',
    topic: template.replaceAll('{group}', name).replaceAll('{topic}', m.topic),
    payload: m.payload,
    qos: 1,
    retain: false,
    dup: false,
    properties: {
      ...(m.properties as object),
      userProperties: {
        ...(m.properties?.userProperties as Record<string, string | string[]> | undefined),
        'culex-reason-code': '0x' + reasonCode.toString(16).padStart(2, '0'),
        'culex-client-id': clientId,
        'culex-group': name,
        'culex-original-topic': m.topic
      }
    }
  }
}
