/**
 * Where a group's given-up messages go: a message a member refused
 * (PUBACK/PUBREC 0x80 or more, spec 4.8.2: never to another member) and a
 * poison message (delivered maxDeliveries times) are published to the
 * group's dead-letter topic with their cause, or dropped and counted when
 * the group has none.
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { repeatedLog } from '../repeated-log.js'
import type { Entry, Group } from './group.js'
import { deadLetter, type DeadLetterCause } from './delivery.js'

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
