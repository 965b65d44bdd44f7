/**
 * Shared subscriptions as competing-consumer queues (spec 4.8.2).
 *
 * A group is one `$share/{name}/{filter}`. culex subscribes once per filter
 * to aedes' emitter and, for each group on it, gives every message to exactly
 * one member. QoS 1/2 messages go to the group's log in the store before the
 * publisher is acknowledged, and leave it only when a member acknowledges
 * them, so:
 * - a member that dies keeps nothing hostage: what it had not acknowledged
 *   goes back to the group (QoS 1) [spec 4.8.2: MAY as soon as the connection
 *   is lost]; what it had not been sent goes back in any case;
 * - a QoS 2 message whose PUBREC did not arrive stays with its member and is
 *   never sent to another once it was sent [spec 4.8.2, MUST NOT];
 * - a group whose members are all offline (persistent sessions) queues its
 *   messages for the first that returns, across restarts;
 * - a PUBACK/PUBREC of 0x80 or more discards the message for the group
 *   [spec 4.8.2, MUST NOT send to another], optionally to a dead-letter topic.
 *
 * Deliveries to a member with a session go through aedes (`client.publish`)
 * so sessions, in-flight state and retransmission stay aedes'. A QoS 1
 * delivery to a member whose session keeps nothing (aedes would store it
 * nowhere) is sent by its gateway instead (`MemberLink.sendShared`), which
 * saves aedes' copy, encoding and stream hand-over per message; its
 * acknowledgement comes back through `onAck` all the same. Each aedes
 * delivery carries a marker broker id (`SHARED_BROKER_ID`) and a delivery
 * counter; the `authorizeForward` hook hands them to `onForward`, which
 * assigns the packet id and drops stale copies (a retransmission of a
 * message that meanwhile went to another member).
 *
 * This module decides what happens to each message on joins, departures
 * and acknowledgements; a message's way through its group (queue, log,
 * delivery, completion) is flow.ts; the other parts (README) keep the
 * state, and a group's queue policy (policy.ts: counts, poison, abandon,
 * ack timeout) is carried out by retries.ts, dead-letters.ts and replay.ts.
 */
import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import { isFailure } from '../protocol/reason-codes.js'
import { LocalSelector, groupName, strategyResolver, type MemberSelector, type Strategy } from './strategies.js'
import type { ShareStore, StoredMember, StoredMessage } from './store.js'
import { allocatePacketId } from '../aedes-internals.js'
import { repeatedLog } from '../repeated-log.js'
import { newMember, type Group, type Member } from './group.js'
import { Groups, type Membership } from './groups.js'
import type { MemberLink } from './member-link.js'
import { fateOnDisconnect, fateOnSessionEnd } from './departure.js'
import { replayDeadLetters, type ReplayResult } from './replay.js'
import { policyOf, type GroupRule } from './policy.js'
import { clearTimer } from './retries.js'
import { restoreGroups } from './restore.js'
import { settleOf, type AckProperties } from './settle.js'
import { groupStats, type GroupStats } from './stats.js'
import { FilterSubscriptions, type MqPacket } from './filters.js'
import { Flow } from './flow.js'
import { adoptMember, enqueueIn, roomOf, takeExcess, type GroupQueue } from './intake.js'
import { ForeignDeliveries, type SessionQoS2 } from './session-held.js'

export { SHARED_BROKER_ID, type MemberLink, type DirectSend, type SharedDelivery } from './member-link.js'
export type { GroupStats } from './stats.js'
export type { AckProperties } from './settle.js'
export type { GroupQueue } from './intake.js'

export interface SharedOptions {
  strategy: Strategy
  /** per group name pattern: strategy and queue policy (policy.ts), first match wins */
  rules: readonly GroupRule[]
  /** QoS 1 in flight to a member whose connection drops: to another member at once, or when its session ends */
  redelivery: 'immediate' | 'session-end'
  /** e.g. `$dlq/{group}/{topic}`, for groups whose rule sets none; given-up messages are published there when set */
  deadLetterTopic: string | undefined
  /** per group, like an offline session queue */
  maxQueued: number
  overflow: 'drop-oldest' | 'refuse'
  selector?: MemberSelector
  /** a queue several brokers share feeds the groups instead of aedes (intake.ts) */
  queue?: GroupQueue
  /** with such a queue: QoS 2 messages a member's session holds, wherever it resumes (session-held.ts) */
  sessionQoS2?: SessionQoS2
}

export type JoinResult = { ok: true, qos: 0 | 1 | 2 } | { ok: false, reasonCode: number }

export class SharedSubscriptions {
  private readonly groups: Groups
  private readonly filters: FilterSubscriptions
  private readonly membershipListeners: Array<() => void> = []
  private readonly selector: MemberSelector
  private readonly flow: Flow
  private readonly foreign: ForeignDeliveries | undefined

  constructor (
    private readonly aedes: Aedes,
    private readonly store: ShareStore,
    private readonly opts: SharedOptions,
    private readonly log: Logger
  ) {
    this.selector = opts.selector ?? new LocalSelector(strategyResolver(opts.strategy, opts.rules))
    this.flow = new Flow(aedes, store, opts, this.selector, log)
    this.filters = new FilterSubscriptions(aedes, (groups, packet) => this.flow.route(groups, packet), log)
    this.foreign = opts.sessionQoS2 === undefined ? undefined : new ForeignDeliveries(opts.sessionQoS2)
    this.groups = new Groups(group => {
      group.policy = policyOf(opts.rules, groupName(group.key), opts.deadLetterTopic)
      if (opts.queue !== undefined) opts.queue.opened(group.key, group.filter)
      else this.filters.add(group)
    })
  }

  /** Loads memberships and group logs from the store (restore.ts). */
  async setup (): Promise<void> {
    await restoreGroups(this.store, this.groups, this.flow.retries, this.log)
  }

  // ------------------------------------------------------------ membership

  /**
   * A SUBSCRIBE to `$share/{name}/{filter}` (spec 4.8.2). A member of a
   * persistent session is stored so the group outlives its connection.
   */
  async join (link: MemberLink, key: string, filter: string, sub: { qos: 0 | 1 | 2, si: number | undefined, rap: boolean }, persistent: boolean): Promise<JoinResult> {
    const group = this.groups.ensure(key, filter)
    const existing = group.members.get(link.clientId)
    const member = newMember(link.clientId, sub.qos, sub.si, sub.rap, persistent, link, existing?.assigned ?? 0)
    group.members.set(link.clientId, member)
    for (const l of this.membershipListeners) l()
    if (persistent) {
      const stored: StoredMember = { group: key, clientId: link.clientId, qos: sub.qos, retainAsPublished: sub.rap }
      if (sub.si !== undefined) stored.subscriptionIdentifier = sub.si
      await this.store.putMember(stored)
    }
    this.flow.drain(group)
    return { ok: true, qos: sub.qos }
  }

  /** An UNSUBSCRIBE of `$share/...`; false when the client was not a member. */
  async leave (clientId: string, key: string): Promise<boolean> {
    const group = this.groups.get(key)
    const member = group?.members.get(clientId)
    if (!group || !member) return false
    await this.removeMember(group, member, 'unsubscribed')
    return true
  }

  /** The client's connection was accepted; `cleanStart` discards its previous session [MQTT-3.1.2-4]. */
  async memberConnected (link: MemberLink, cleanStart: boolean): Promise<void> {
    for (const group of this.groups.of(link.clientId)) {
      const member = group.members.get(link.clientId) as Member
      if (cleanStart) {
        // the previous session ended with this connection: what it held is settled as at its expiry [MQTT-4.8.2-5]
        await this.endSession(group, member)
        continue
      }
      member.link = link
      this.flow.drain(group)
    }
  }

  /**
   * The client's connection closed. `sent` are the packet ids it was sent
   * and has not acknowledged; `sessionEnded` when its session ends with the
   * connection (Session Expiry 0).
   */
  async memberDisconnected (link: MemberLink, sent: ReadonlySet<number>, sessionEnded: boolean): Promise<void> {
    const clientId = link.clientId
    const sentSeqs = this.flow.deliveries.closed(link.client, sent)
    this.foreign?.closed(link.client)
    for (const group of this.groups.of(clientId)) {
      const member = group.members.get(clientId) as Member
      // a newer connection of the same client (session takeover) keeps its place
      const superseded = member.link !== undefined && member.link !== link
      if (!superseded) member.link = undefined
      this.selector.forget(group.key, clientId)
      for (const entry of group.list()) {
        if (!entry.live || entry.link !== link) continue
        const wasSent = sentSeqs.has(group.key + '\u0000' + entry.seq)
        const fate = fateOnDisconnect(entry.message.qos, wasSent, this.opts.redelivery, sessionEnded)
        if (fate === 'requeue' || fate === 'redeliver') {
          this.flow.unassign(group, member, entry, fate === 'redeliver')
        } else if (fate === 'lose') {
          repeatedLog.log(this.log, 'warn', 'qos2 lost ' + group.key, { group: group.key, clientId }, 'QoS 2 message lost with its member\'s session (spec 4.8.2)')
          group.dropped++
          await this.flow.complete(group, entry)
        } else if (entry.delivery !== undefined) {
          // kept for the member: aedes re-sends it from the session when it returns
          this.flow.deliveries.await(entry.delivery, entry)
        }
      }
      if ((sessionEnded || !member.persistent) && !superseded) await this.removeMember(group, member, 'session-ended')
      else this.flow.drain(group)
    }
  }

  /** A persistent session expired or was discarded while offline. */
  async sessionEnded (clientId: string): Promise<void> {
    for (const group of this.groups.of(clientId)) await this.endSession(group, group.members.get(clientId) as Member)
  }

  /** The member's session ended: a QoS 1 message it held goes to another member, a QoS 2 one to none [MQTT-4.8.2-5]; it leaves the group. */
  private async endSession (group: Group, member: Member): Promise<void> {
    for (const entry of group.list()) {
      if (!entry.live || entry.assignedTo !== member.clientId) continue
      if (fateOnSessionEnd(entry.message.qos) === 'redeliver') this.flow.unassign(group, member, entry, true)
      else { group.dropped++; await this.flow.complete(group, entry) }
    }
    await this.removeMember(group, member, 'session-ended')
  }

  /**
   * The client's persistent session moved to another node (a shared queue's):
   * as at its end, but a QoS 2 message it was sent stays with the session
   * [MQTT-4.8.2-4], which the other node finishes (session-held.ts); this
   * node forgets it without finishing it.
   */
  async sessionMoved (clientId: string): Promise<void> {
    const held = this.opts.sessionQoS2
    if (held !== undefined) {
      for (const group of this.groups.of(clientId)) {
        for (const entry of group.list()) {
          if (!entry.live || entry.assignedTo !== clientId || entry.message.qos !== 2 || entry.forwardedTo === undefined) continue
          if (this.flow.detach(group, entry)) held.release(group.key, entry.seq)
        }
      }
    }
    await this.sessionEnded(clientId)
  }

  private async removeMember (group: Group, member: Member, why: string): Promise<void> {
    group.members.delete(member.clientId)
    for (const l of this.membershipListeners) l()
    this.selector.forget(group.key, member.clientId)
    for (let entry = group.first; entry; entry = entry.next) {
      if (entry.assignedTo === member.clientId) this.flow.unassign(group, member, entry, true)
    }
    if (member.persistent) await this.store.delMember(group.key, member.clientId)
    this.log.debug({ group: group.key, clientId: member.clientId, why }, 'shared subscription member left')
    if (group.members.size === 0) await this.dropGroup(group)
    else this.flow.drain(group)
  }

  /** The group and its queue are gone with its last member. */
  private async dropGroup (group: Group): Promise<void> {
    this.groups.delete(group)
    const discarded = group.list()
    for (const entry of discarded) { clearTimer(entry); group.remove(entry) }
    group.pending.length = 0
    if (this.opts.queue !== undefined) {
      // the group lives on in the shared queue: what it held here goes back there
      this.opts.queue.closed(group.key, discarded.map((e) => e.seq))
      return
    }
    for (const entry of discarded) await this.store.delMessage(group.key, entry.seq)
    if (discarded.length > 0) this.log.info({ group: group.key, discarded: discarded.length }, 'shared group gone with its last member')
    this.filters.remove(group)
  }

  // ------------------------------------------------- a shared queue (intake.ts)

  /** A persistent member whose session another node held (a shared queue's): a member here, offline until its connection is ready. */
  adopt (stored: StoredMember): void {
    if (adoptMember(this.groups, stored)) for (const l of this.membershipListeners) l()
  }

  /** Free places of the group's online members here (each counted up to `perMember`), less the messages already waiting for them. */
  roomFor (key: string, perMember = Infinity): number {
    return roomOf(this.groups.get(key), perMember)
  }

  /** A QoS 1/2 message the queue read for the group, waiting until `dispatch`: its seq, or undefined when the group is not here. */
  enqueue (key: string, message: StoredMessage): number | undefined {
    const group = this.groups.get(key)
    return group === undefined ? undefined : enqueueIn(group, message)
  }

  /** Gives the group's waiting messages to its members with room. */
  dispatch (key: string): void {
    const group = this.groups.get(key)
    if (group !== undefined) this.flow.drain(group)
  }

  /** A QoS 0 message the queue read for the group: to one online member, or to none. */
  offer (key: string, packet: MqPacket): void {
    const group = this.groups.get(key)
    if (group !== undefined) this.flow.deliverQoS0(group, packet)
  }

  /** The messages waiting here beyond the room of the members here: out of the group, their seqs for the queue. */
  handBack (key: string): number[] {
    return takeExcess(this.groups.get(key))
  }

  // ------------------------------------------------------- aedes and gateway

  /**
   * From aedes' authorizeForward: a shared delivery about to be written.
   * Returns null for a stale copy (aedes retransmitting, from a member's
   * session, a message that went to another member or was finished).
   */
  onForward (client: Client, packet: { qos: number, messageId?: number, brokerId?: string, brokerCounter: number }): boolean {
    if (packet.qos === 0) return true
    const entry = this.flow.deliveries.byCounter(packet.brokerCounter)
    const held = this.opts.sessionQoS2
    if (!entry || !entry.live || entry.assignedTo !== client.id || entry.delivery !== packet.brokerCounter ||
      (held !== undefined && packet.qos === 2 && packet.brokerId !== held.brokerIdFor(entry.group.key, entry.seq))) {
      // a QoS 2 message another node sent to this session, re-sent by it here [MQTT-4.8.2-4]
      return this.foreign?.accept(client, packet) === true
    }
    // one delivery goes out once per connection (aedes may re-read a queue it just filled)
    if (entry.forwardedTo === client) return false
    if (held !== undefined && packet.qos === 2 && entry.forwardedTo === undefined && entry.group.members.get(client.id)?.persistent === true) held.sent(entry.group.key, entry.seq, client.id)
    entry.forwardedTo = client
    // aedes would pick the id later; culex picks it now to match the acknowledgement
    if (packet.messageId === undefined) packet.messageId = allocatePacketId(client)
    this.flow.deliveries.track(client, packet.messageId, entry)
    return true
  }

  /** A delivery its member may not read (ACL): discarded for the group, counted as dropped. */
  refuse (delivery: number): void {
    const entry = this.flow.deliveries.byCounter(delivery)
    if (!entry || !entry.live) return
    const group = entry.group
    this.flow.discard(group, entry, 'shared message not readable by its member: discarded')
    // called from inside aedes' delivery to the member: the next one goes out after it
    queueMicrotask(() => this.flow.drain(group))
  }

  /**
   * A PUBACK or PUBREC from a member (PUBREC completes a QoS 2 message for
   * the group). The gateway has already freed the place in the member's
   * window, so the next waiting message can go out at once.
   */
  onAck (client: { id: string }, packetId: number, reasonCode: number, props?: AckProperties): void {
    const clientId = client.id
    const entry = this.flow.deliveries.acknowledged(client, packetId)
    if (!entry) {
      const key = this.foreign?.acknowledged(client, packetId)
      const group = key === undefined ? undefined : this.groups.get(key)
      if (group !== undefined) {
        if (isFailure(reasonCode)) group.dropped++
        else group.delivered++
      }
      return
    }
    const group = entry.group
    if (!entry.live || entry.assignedTo !== clientId) return
    if (isFailure(reasonCode)) {
      // [MQTT-4.8.2-6] MUST discard it and not send it to another member
      this.flow.deadLetters.giveUp(group, entry, { reason: 'rejected', clientId, deliveryCount: entry.message.deliveryCount ?? 1, reasonCode, reasonString: props?.reasonString })
    } else {
      const settle = settleOf(props?.userProperties)
      if (settle.invalid !== undefined) {
        group.invalidSettles++
        repeatedLog.log(this.log, 'info', 'settle ' + group.key + '\u0000' + clientId, { group: group.key, clientId, why: settle.invalid }, 'acknowledgement with a culex-settle property that makes no sense: ignored')
      }
      if (settle.kind === 'abandon') {
        this.flow.retries.abandon(group, entry, settle.delay)
        this.flow.drain(group)
        return
      }
      group.delivered++
    }
    void this.flow.complete(group, entry)
    this.flow.drain(group)
  }

  /** Replays the dead letters waiting in group `from` into the groups they came from (replay.ts). */
  async replayDeadLetters (from: string, limit?: number): Promise<ReplayResult | undefined> {
    return await replayDeadLetters({
      group: (key) => this.groups.get(key),
      groups: () => this.groups.values(),
      enqueue: async (group, message) => {
        const seq = group.nextSeq++
        group.pending.push(group.add(seq, message))
        await this.store.putMessage(group.key, seq, message)
        this.flow.drain(group)
      },
      complete: async (group, entry) => { await this.flow.complete(group, entry) }
    }, from, limit, this.log)
  }

  /** Is there a group whose filter matches `topic`? (its listener is also a live aedes subscription) */
  hasGroupFor (topic: string): boolean {
    return this.opts.queue?.matches(topic) ?? this.filters.matches(topic)
  }

  /** How many groups the client is a member of. */
  membershipCount (clientId: string): number {
    return this.groups.count(clientId)
  }

  /** Is the client a member of any group (a session with shared subscriptions)? */
  isMember (clientId: string): boolean {
    return this.groups.hasMember(clientId)
  }

  /** The groups `clientId` belongs to, with what it subscribed with (for the admin API). */
  membershipsOf (clientId: string): Membership[] {
    return this.groups.memberships(clientId)
  }

  /** `listener` runs whenever a group gains or loses a member. */
  onMembershipChange (listener: () => void): void {
    this.membershipListeners.push(listener)
  }

  stats (): GroupStats[] {
    return Array.from(this.groups.values(), groupStats)
  }

  close (): void {
    this.filters.close()
  }
}

