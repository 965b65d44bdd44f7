/**
 * The flow of a shared group's messages (spec 4.8.2): a message into the
 * group's queue and log, from the queue to one member with room, and out of
 * the group when it is finished or taken back. The dispatcher
 * (dispatcher.ts) decides when, on joins, departures and acknowledgements;
 * this module owns what a delivery is made of: the delivery counters and
 * acknowledgement tracking (deliveries.ts), ack timeouts and abandons
 * (retries.ts) and dead letters (dead-letters.ts).
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import type { MemberSelector } from './strategies.js'
import type { ShareStore } from './store.js'
import { repeatedLog } from '../repeated-log.js'
import type { Entry, Group, Member } from './group.js'
import { chooseMember } from './selection.js'
import { sharedDelivery, storedMessage } from './delivery.js'
import { DeadLetters } from './dead-letters.js'
import { Retries, clearTimer } from './retries.js'
import type { MqPacket } from './filters.js'
import { Deliveries } from './deliveries.js'
import type { SessionQoS2 } from './session-held.js'

/** What the flow needs of the dispatcher's options. */
export interface FlowOptions {
  /** per group, like an offline session queue */
  maxQueued: number
  overflow: 'drop-oldest' | 'refuse'
  sessionQoS2?: SessionQoS2
}

export class Flow {
  readonly deliveries = new Deliveries()
  readonly deadLetters: DeadLetters
  readonly retries: Retries

  constructor (
    aedes: Aedes,
    private readonly store: ShareStore,
    private readonly opts: FlowOptions,
    private readonly selector: MemberSelector,
    private readonly log: Logger
  ) {
    this.deadLetters = new DeadLetters(aedes, log)
    this.retries = new Retries(store, {
      drain: (group) => { this.drain(group) },
      unassign: (group, member, entry, redelivery, requeue) => { this.unassign(group, member, entry, redelivery, requeue) },
      untrack: (client, packetId) => { this.deliveries.acknowledged(client, packetId) }
    }, log)
  }

  /**
   * One message, for every group on its filter. Returns a promise that
   * resolves once it is durable in each group's log (aedes then lets the
   * publisher's PUBACK go), or undefined when it already is: a store that
   * keeps the log in memory answers at once, so the usual case allocates
   * no promise.
   */
  route (groups: ReadonlySet<Group>, packet: MqPacket): Promise<void> | undefined {
    let writes: Array<Promise<void>> | undefined
    let touched: Group[] | undefined
    for (const group of groups) {
      if (group.members.size === 0) continue
      if (packet.qos === 0) {
        this.deliverQoS0(group, packet)
        continue
      }
      const message = storedMessage(packet, packet.qos)
      if (group.pending.length >= this.opts.maxQueued && !this.makeRoom(group)) continue
      const seq = group.nextSeq++
      group.pending.push(group.add(seq, message))
      const written = this.store.putMessage(group.key, seq, message)
      if (written === undefined) {
        this.drain(group)
        continue
      }
      (writes ??= []).push(written)
      ;(touched ??= []).push(group)
    }
    if (writes === undefined || touched === undefined) return undefined
    const stored = touched
    const all = writes.length === 1 ? writes[0] as Promise<void> : Promise.all(writes)
    return all.then(() => {
      for (const group of stored) this.drain(group)
    })
  }

  /** Applies the overflow policy to a full group queue; false when the new message is refused. */
  private makeRoom (group: Group): boolean {
    group.dropped++
    if (this.opts.overflow === 'refuse') {
      repeatedLog.log(this.log, 'warn', 'full ' + group.key, { group: group.key, limit: this.opts.maxQueued }, 'shared group queue full: message refused')
      return false
    }
    const oldest = group.pending.shift()
    if (oldest !== undefined) {
      group.remove(oldest)
      void this.forget(group, oldest.seq)
    }
    repeatedLog.log(this.log, 'warn', 'full ' + group.key, { group: group.key, limit: this.opts.maxQueued }, 'shared group queue full: oldest message dropped')
    return true
  }

  deliverQoS0 (group: Group, packet: MqPacket): void {
    const member = chooseMember(this.selector, group, packet.topic, packet.clientId, false)
    if (!member) return
    member.link?.publish(sharedDelivery(packet, member, 0, group.brokerId, this.deliveries.next()), noop)
    group.delivered++
  }

  /** Gives waiting messages to members with room, in order. */
  drain (group: Group): void {
    while (group.pending.length > 0) {
      const entry = group.pending[0] as Entry
      if (!entry.live) { group.pending.shift(); continue }
      if (entry.message.messageExpiry !== undefined && entry.message.messageExpiry <= Date.now()) {
        // [MQTT-3.3.2-5] expired while queued: never delivered
        group.pending.shift()
        group.dropped++
        void this.complete(group, entry)
        continue
      }
      if ((entry.message.deliveryCount ?? 0) >= group.policy.maxDeliveries) {
        // a poison message: delivering it again would take down yet another member
        group.pending.shift()
        this.deadLetters.giveUp(group, entry, { reason: 'max-deliveries', clientId: entry.message.lastMember, deliveryCount: entry.message.deliveryCount ?? 0 })
        void this.complete(group, entry)
        continue
      }
      const member = chooseMember(this.selector, group, entry.message.topic, entry.message.publisherId, true, entry.avoid)
      if (!member) return
      group.pending.shift()
      this.deliver(group, entry, member)
    }
  }

  private deliver (group: Group, entry: Entry, member: Member): void {
    const delivery = this.deliveries.next()
    entry.assignedTo = member.clientId
    entry.link = member.link
    entry.delivery = delivery
    entry.messageId = undefined
    member.assigned++
    const m = entry.message
    const qos = Math.min(m.qos, member.qos) as 0 | 1 | 2
    this.retries.count(group, entry, member)
    const out = sharedDelivery(m, member, qos, qos === 2 && this.opts.sessionQoS2 !== undefined ? this.opts.sessionQoS2.brokerIdFor(group.key, entry.seq) : group.brokerId, delivery)
    // QoS 1 only: a QoS 2 message once sent is never sent to another member [MQTT-4.8.2-4] [MQTT-4.8.2-5]
    if (qos === 1) this.retries.armAckTimeout(group, entry, delivery)
    if (qos === 1 && member.link?.sendShared !== undefined) {
      const sent = member.link.sendShared(out)
      if (typeof sent === 'number') {
        entry.forwardedTo = member.link.client
        this.deliveries.track(member.link.client, sent, entry)
        return
      }
      if (sent !== undefined) {
        this.discard(group, entry, sent === 'refused' ? 'shared message not readable by its member: discarded' : 'shared message expired before it was sent: discarded')
        return
      }
    }
    this.deliveries.delivering = entry
    try {
      // QoS 1/2: the member's acknowledgement finishes it (onAck), not the write
      member.link?.publish(out, qos > 0 ? noop : () => {
        // a member granted QoS 0 gets it once and has nothing to acknowledge
        if (entry.assignedTo === member.clientId && entry.delivery === delivery) {
          group.delivered++
          void this.complete(group, entry)
        }
      })
    } finally {
      this.deliveries.delivering = undefined
    }
    // aedes has not forwarded it yet (a session queue first): it will ask by delivery counter
    if (entry.forwardedTo === undefined && entry.live && entry.delivery === delivery) this.deliveries.await(delivery, entry)
  }

  unassign (group: Group, member: Member | undefined, entry: Entry, redelivery: boolean, requeue = true): void {
    if (entry.assignedTo === undefined) return
    clearTimer(entry)
    if (entry.delivery !== undefined) this.deliveries.end(entry.delivery)
    entry.assignedTo = undefined
    entry.link = undefined
    entry.forwardedTo = undefined
    entry.delivery = undefined
    entry.messageId = undefined
    if (member) member.assigned = Math.max(0, member.assigned - 1)
    if (redelivery) group.redelivered++
    if (requeue) group.requeue(entry)
  }

  /**
   * The message is finished for the group: gone from memory at once, so the
   * member's room can be used again; the returned promise, if any, settles
   * when the store has deleted it too (its failure is logged).
   */
  complete (group: Group, entry: Entry): Promise<void> | undefined {
    return this.detach(group, entry) ? this.forget(group, entry.seq) : undefined
  }

  /**
   * The message leaves the group's memory (its member's room freed, its
   * timer and delivery ended), not the store; false when it had left
   * already. `complete` then deletes it from the log; a message whose
   * member's session took it to another node stays there (session-held.ts).
   */
  detach (group: Group, entry: Entry): boolean {
    if (!group.remove(entry)) return false
    clearTimer(entry)
    if (entry.delivery !== undefined) this.deliveries.end(entry.delivery)
    if (entry.assignedTo !== undefined) {
      const member = group.members.get(entry.assignedTo)
      if (member) member.assigned = Math.max(0, member.assigned - 1)
    } else {
      // only a message not given to a member waits in `pending`
      const i = group.pending.indexOf(entry)
      if (i >= 0) group.pending.splice(i, 1)
    }
    return true
  }

  /** Deletes a message from the group's log in the store. */
  private forget (group: Group, seq: number): Promise<void> | undefined {
    let deleted: Promise<void> | undefined
    try {
      deleted = this.store.delMessage(group.key, seq)
    } catch (err) {
      this.forgetFailed(err, group)
      return undefined
    }
    return deleted?.catch((err: unknown) => this.forgetFailed(err, group))
  }

  private forgetFailed (err: unknown, group: Group): void {
    this.log.error({ err, group: group.key }, 'deleting a shared message from the store failed')
  }


  discard (group: Group, entry: Entry, why: string): void {
    group.dropped++
    repeatedLog.log(this.log, 'info', why + '\u0000' + group.key + '\u0000' + (entry.assignedTo ?? ''), { group: group.key, clientId: entry.assignedTo, topic: entry.message.topic }, why)
    void this.complete(group, entry)
  }
}

function noop (): void {}
