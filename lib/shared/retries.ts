/**
 * A work queue's retries (policy.ts): each delivery counted and the count
 * kept in the group's log, a message handed back (`culex-settle: abandon`)
 * offered again after its backoff, and a QoS 1 delivery held past the
 * group's ackTimeout taken back. The dispatcher decides when; this module
 * keeps the count, the deadlines and their timers.
 */
import type { Logger } from 'pino'
import type { Entry, Group, Member } from './group.js'
import { backoffDelay } from './policy.js'
import type { ShareStore } from './store.js'

/** What retries need of the dispatcher. */
export interface RetryHost {
  /** gives waiting messages to members with room */
  drain (group: Group): void
  /** takes a message back from its member; `requeue`: waiting again at once */
  unassign (group: Group, member: Member | undefined, entry: Entry, redelivery: boolean, requeue: boolean): void
  /** the member's acknowledgement of this delivery no longer stands for the message */
  untrack (client: object, packetId: number): void
}

export class Retries {
  constructor (private readonly store: ShareStore, private readonly host: RetryHost, private readonly log: Logger) {}

  /**
   * A delivery more of the message: its count, and who got it last, go to
   * the store with every delivery after the first (the first costs no extra
   * write), so a restart continues the count.
   */
  count (group: Group, entry: Entry, member: Member): void {
    const m = entry.message
    m.deliveryCount = (m.deliveryCount ?? 0) + 1
    m.lastMember = member.clientId
    entry.avoid = undefined
    if (m.deliveryCount > 1) this.rewrite(group, entry)
  }

  /** The entry's message as it is now, to the group's log. */
  private rewrite (group: Group, entry: Entry): void {
    try {
      this.store.putMessage(group.key, entry.seq, entry.message)?.catch((err: unknown) => this.writeFailed(err, group))
    } catch (err) {
      this.writeFailed(err, group)
    }
  }

  private writeFailed (err: unknown, group: Group): void {
    this.log.error({ err, group: group.key }, 'writing a shared message to the store failed')
  }

  /** Waiting in the group now, or once its backoff (`notBefore`) has passed. */
  offerLater (group: Group, entry: Entry): void {
    const wait = (entry.message.notBefore ?? 0) - Date.now()
    if (wait <= 0) {
      entry.message.notBefore = undefined
      group.requeue(entry)
      return
    }
    group.delayed++
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      if (!entry.live) return
      group.delayed--
      entry.message.notBefore = undefined
      group.requeue(entry)
      this.host.drain(group)
    }, wait).unref()
  }

  /**
   * The member handed the message back (`culex-settle: abandon`): finished
   * for it in MQTT's terms, offered again to any member after the group's
   * backoff or the delay it asked for.
   */
  abandon (group: Group, entry: Entry, delay: number | undefined): void {
    group.abandoned++
    this.host.unassign(group, group.members.get(entry.assignedTo as string), entry, false, false)
    entry.message.notBefore = Date.now() + (delay ?? backoffDelay(group.policy.retryBackoff, entry.message.deliveryCount ?? 1))
    this.rewrite(group, entry)
    this.offerLater(group, entry)
  }

  /** A QoS 1 delivery just went out: its ack timeout starts, if the group has one. */
  armAckTimeout (group: Group, entry: Entry, delivery: number): void {
    const ms = group.policy.ackTimeout
    if (ms !== undefined) entry.timer = setTimeout(() => { this.timedOut(group, entry, delivery) }, ms).unref()
  }

  /**
   * A member held a QoS 1 delivery past the group's ackTimeout: it goes to
   * another member as a new delivery; a late PUBACK from the first is
   * accepted and changes nothing (it no longer stands for the message).
   */
  private timedOut (group: Group, entry: Entry, delivery: number): void {
    entry.timer = undefined
    if (!entry.live || entry.delivery !== delivery || entry.assignedTo === undefined) return
    if (entry.forwardedTo !== undefined && entry.messageId !== undefined) this.host.untrack(entry.forwardedTo, entry.messageId)
    group.timedOut++
    const holder = entry.assignedTo
    this.host.unassign(group, group.members.get(holder), entry, true, true)
    entry.avoid = holder
    this.host.drain(group)
  }
}

/** The entry's timer stops (it was finished or taken back); a message waiting for its backoff no longer does. */
export function clearTimer (entry: Entry): void {
  if (entry.timer === undefined) return
  clearTimeout(entry.timer)
  entry.timer = undefined
  if (entry.assignedTo === undefined && entry.live) entry.group.delayed--
}
