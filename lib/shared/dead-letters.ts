/**
 * Where a group's given-up messages go: a message a member refused
 * (PUBACK/PUBREC 0x80 or more, [MQTT-4.8.2-6]: never to another member) and a
 * poison message (delivered maxDeliveries times) are published to the
 * group's dead-letter topic with their cause, or dropped and counted when
 * the group has none. A dead letter held by another group (e.g. a durable
 * `$share/dlq/$dlq/#`) can be replayed into the group it came from
 * (`replayable`, the dispatcher's `replayDeadLetters`).
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { repeatedLog } from '../repeated-log.js'
import type { Entry, Group } from './group.js'
import { deadLetter, type DeadLetterCause } from './delivery.js'
import type { StoredMessage } from './store.js'

export class DeadLetters {
  constructor (private readonly aedes: Pick<Aedes, 'publish'>, private readonly log: Logger) {}

  /** Counts and publishes (or drops) `entry`; the caller finishes it for the group. */
  giveUp (group: Group, entry: Entry, cause: DeadLetterCause): void {
    if (cause.reason === 'max-deliveries') group.poison++
    const template = group.policy.deadLetterTopic
    if (!template) {
      group.dropped++
      const why = cause.reason === 'rejected' ? 'shared message refused by its member: discarded' : 'poison shared message (maxDeliveries reached): discarded'
      repeatedLog.log(this.log, 'info', why + '\u0000' + group.key + '\u0000' + (cause.clientId ?? ''), { group: group.key, clientId: cause.clientId, reasonCode: cause.reasonCode, deliveries: cause.deliveryCount }, why)
      return
    }
    group.deadLettered++
    group.deadLetteredBy[cause.reason]++
    const packet = deadLetter(template, group.key, entry.message, cause)
    this.aedes.publish(packet as never, (err?: Error) => {
      if (err) repeatedLog.log(this.log, 'error', 'dead-letter failed ' + group.key, { err, topic: packet.topic }, 'dead-letter publish failed')
    })
  }
}

/** A dead letter read back: the group it came from and the message as it was first published. */
export interface Replayable {
  /** the group's share name (`culex-group`) */
  group: string
  message: StoredMessage
}

/**
 * The original message of a dead letter (one that `DeadLetters` published):
 * its topic from `culex-original-topic`, its payload and properties without
 * the `culex-*` user properties culex added; undefined for a message that is
 * no dead letter of culex's.
 */
export function replayable (dead: StoredMessage): Replayable | undefined {
  const props = dead.properties
  const user = props?.userProperties as Record<string, string | string[]> | undefined
  const group = user?.['culex-group']
  const topic = user?.['culex-original-topic']
  if (typeof group !== 'string' || typeof topic !== 'string') return undefined
  const kept: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(user ?? {})) if (!k.startsWith('culex-')) kept[k] = v
  const properties: Record<string, unknown> = { ...props }
  delete properties.userProperties
  delete properties.subscriptionIdentifier
  if (Object.keys(kept).length > 0) properties.userProperties = kept
  const message: StoredMessage = { topic, payload: dead.payload, qos: 1, retain: false }
  if (Object.keys(properties).length > 0) message.properties = properties
  if (dead.messageExpiry !== undefined) message.messageExpiry = dead.messageExpiry
  return { group, message }
}
