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
 * acknowledgement comes back through `onAck` all the same. Each aedes delivery carries a marker
 * broker id (`SHARED_BROKER_ID`) and a delivery counter; the `authorizeForward`
 * hook hands them to `onForward`, which assigns the packet id and drops stale
 * copies (a retransmission of a message that meanwhile went to another member).
 */
import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import { isFailure } from '../protocol/reason-codes.js'
import { LocalSelector, strategyResolver, groupName, type Candidate, type MemberSelector, type Strategy, type StrategyRule } from './strategies.js'
import type { ShareStore, StoredMember, StoredMessage } from './store.js'
import { allocatePacketId } from '../aedes-internals.js'
import { topicMatches } from '../protocol/topic.js'
import { PacketIdTable } from '../protocol/packet-id-table.js'
import { repeatedLog } from '../repeated-log.js'

/** Broker id marking a shared delivery: `SHARED_BROKER_ID + group key`. */
export const SHARED_BROKER_ID = '$culex-share:'

/** What the dispatcher needs of a member's live connection (the protocol gateway). */
export interface MemberLink {
  readonly clientId: string
  /** the aedes Client of this connection (identity for acknowledgements) */
  readonly client: object
  /** free places for QoS 1/2 messages in its window */
  room (): number
  /** hands a message to aedes for this client */
  publish (packet: SharedDelivery, done: (err?: Error) => void): void
  /**
   * Sends a QoS 1 delivery without aedes when the client's session keeps
   * nothing: the packet id it went out with; 'refused' (no read right) or
   * 'expired' when it is not sent; undefined to use `publish`.
   */
  sendShared? (packet: SharedDelivery): DirectSend
}

export type DirectSend = number | 'refused' | 'expired' | undefined

export interface SharedDelivery {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
  properties?: Record<string, unknown>
  messageExpiry?: number
  brokerId: string
  brokerCounter: number
}

export interface SharedOptions {
  strategy: Strategy
  rules: readonly StrategyRule[]
  /** QoS 1 in flight to a member whose connection drops: to another member at once, or when its session ends */
  redelivery: 'immediate' | 'session-end'
  /** e.g. `$dlq/{group}/{topic}`; nacked messages are published there when set */
  deadLetterTopic: string | undefined
  /** per group, like an offline session queue */
  maxQueued: number
  overflow: 'drop-oldest' | 'refuse'
  selector?: MemberSelector
}

/** One group's figures (exported as metrics and $SYS by lib/metrics). */
export interface GroupStats {
  /** `$share/{ShareName}/{filter}` (spec 4.8.2) */
  group: string
  membersOnline: number
  membersOffline: number
  /** messages waiting for a member */
  queued: number
  /** messages given to a member and not yet acknowledged */
  inflight: number
  /** cumulative */
  delivered: number
  /** cumulative: messages sent again after a member left without acknowledging */
  redelivered: number
  /** cumulative: messages a member refused, published to the dead-letter topic */
  deadLettered: number
  /** cumulative: messages discarded (queue full, expired, refused without a dead-letter topic, not readable) */
  dropped: number
}

export type JoinResult = { ok: true, qos: 0 | 1 | 2 } | { ok: false, reasonCode: number }

interface Member {
  clientId: string
  qos: 0 | 1 | 2
  si: number | undefined
  rap: boolean
  persistent: boolean
  link: MemberLink | undefined
  /** messages assigned to it and not yet acknowledged */
  assigned: number
  /** what selectors see of it, refilled for every choice (no allocation per message) */
  readonly candidate: { clientId: string, room: number, inflight: number }
}

function newMember (clientId: string, qos: 0 | 1 | 2, si: number | undefined, rap: boolean, persistent: boolean, link: MemberLink | undefined, assigned: number): Member {
  return { clientId, qos, si, rap, persistent, link, assigned, candidate: { clientId, room: 0, inflight: 0 } }
}

interface Entry {
  readonly group: Group
  seq: number
  message: StoredMessage
  /** in its group's list of unfinished messages */
  live: boolean
  prev: Entry | undefined
  next: Entry | undefined
  assignedTo: string | undefined
  /** the connection it was given to */
  link: MemberLink | undefined
  /** the aedes Client that aedes wrote it to */
  forwardedTo?: object
  delivery: number | undefined
  messageId: number | undefined
}

class Group {
  readonly members = new Map<string, Member>()
  /** `SHARED_BROKER_ID + key`, built once: every delivery carries it */
  readonly brokerId: string
  /** reused for every choice of a member: see MemberSelector */
  readonly candidates: Candidate[] = []
  readonly selectInput: { group: string, topic: string, publisherId: string | undefined }
  /**
   * Unfinished QoS 1/2 messages, a list linked through the entries: one is
   * added and one removed per message, and a Map doing that churned out
   * hash tables that the young-generation collections had to keep copying.
   */
  private head: Entry | undefined
  private tail: Entry | undefined
  get first (): Entry | undefined { return this.head }
  /** messages waiting for a member, ascending seq */
  pending: Entry[] = []
  nextSeq = 1
  delivered = 0
  redelivered = 0
  deadLettered = 0
  dropped = 0

  constructor (readonly key: string, readonly filter: string) {
    this.brokerId = SHARED_BROKER_ID + key
    this.selectInput = { group: key, topic: '', publisherId: undefined }
  }

  add (seq: number, message: StoredMessage): Entry {
    const entry: Entry = { group: this, seq, message, live: true, prev: this.tail, next: undefined, assignedTo: undefined, link: undefined, delivery: undefined, messageId: undefined }
    if (this.tail) this.tail.next = entry
    else this.head = entry
    this.tail = entry
    return entry
  }

  /** false when it was not (or no longer) in the list */
  remove (entry: Entry): boolean {
    if (!entry.live) return false
    entry.live = false
    if (entry.prev) entry.prev.next = entry.next
    else this.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else this.tail = entry.prev
    entry.prev = undefined
    entry.next = undefined
    return true
  }

  /** A copy of the list, for loops that may finish entries or wait. */
  list (): Entry[] {
    const out: Entry[] = []
    for (let e = this.head; e; e = e.next) out.push(e)
    return out
  }

  requeue (entry: Entry): void {
    // keep seq order, so per-topic order holds for hash-topic groups
    let lo = 0
    let hi = this.pending.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((this.pending[mid] as Entry).seq < entry.seq) lo = mid + 1
      else hi = mid
    }
    this.pending.splice(lo, 0, entry)
  }
}

export class SharedSubscriptions {
  private readonly groups = new Map<string, Group>()
  private readonly filters = new Map<string, { groups: Set<Group>, listener: (packet: MqPacket, cb: () => void) => void }>()
  /**
   * delivery counter -> the message it carries, for aedes' calls to
   * onForward/refuse that come after the delivery call returned (a session
   * queue first, a retransmission after reconnecting). Most come during the
   * call, through `delivering`, and never touch this Map.
   */
  private readonly deliveries = new Map<number, Entry>()
  /** the message being handed to aedes right now */
  private delivering: Entry | undefined
  /** per aedes Client (one per connection): packet id -> message, for acknowledgements */
  private readonly byClient = new Map<object, PacketIdTable<Entry>>()
  private deliveryCounter = 0
  private readonly membershipListeners: Array<() => void> = []
  private readonly selector: MemberSelector

  constructor (
    private readonly aedes: Aedes,
    private readonly store: ShareStore,
    private readonly opts: SharedOptions,
    private readonly log: Logger
  ) {
    this.selector = opts.selector ?? new LocalSelector(strategyResolver(opts.strategy, opts.rules))
  }

  /** Loads memberships and group logs from the store (members start offline). */
  async setup (): Promise<void> {
    for await (const m of this.store.members()) {
      const group = this.group(m.group)
      group.members.set(m.clientId, newMember(m.clientId, m.qos, m.subscriptionIdentifier, m.retainAsPublished === true, true, undefined, 0))
    }
    let restored = 0
    for await (const { group: key, seq, message } of this.store.messages()) {
      const group = this.groups.get(key)
      if (!group || group.members.size === 0) {
        await this.store.delMessage(key, seq)
        continue
      }
      group.requeue(group.add(seq, message))
      if (seq >= group.nextSeq) group.nextSeq = seq + 1
      restored++
    }
    if (this.groups.size > 0) this.log.info({ groups: this.groups.size, queued: restored }, 'shared subscriptions restored')
  }

  // ------------------------------------------------------------ membership

  /**
   * A SUBSCRIBE to `$share/{name}/{filter}` (spec 4.8.2). A member of a
   * persistent session is stored so the group outlives its connection.
   */
  async join (link: MemberLink, key: string, filter: string, sub: { qos: 0 | 1 | 2, si: number | undefined, rap: boolean }, persistent: boolean): Promise<JoinResult> {
    const group = this.group(key, filter)
    const existing = group.members.get(link.clientId)
    const member = newMember(link.clientId, sub.qos, sub.si, sub.rap, persistent, link, existing?.assigned ?? 0)
    group.members.set(link.clientId, member)
    for (const l of this.membershipListeners) l()
    if (persistent) {
      const stored: StoredMember = { group: key, clientId: link.clientId, qos: sub.qos, retainAsPublished: sub.rap }
      if (sub.si !== undefined) stored.subscriptionIdentifier = sub.si
      await this.store.putMember(stored)
    }
    this.drain(group)
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
    for (const group of this.groupsOf(link.clientId)) {
      const member = group.members.get(link.clientId) as Member
      if (cleanStart) {
        await this.removeMember(group, member, 'session-ended')
        continue
      }
      member.link = link
      this.drain(group)
    }
  }

  /**
   * The client's connection closed. `sent` are the packet ids it was sent
   * and has not acknowledged; `sessionEnded` when its session ends with the
   * connection (Session Expiry 0).
   */
  async memberDisconnected (link: MemberLink, sent: ReadonlySet<number>, sessionEnded: boolean): Promise<void> {
    const clientId = link.clientId
    const inflight = this.byClient.get(link.client)
    const sentSeqs = new Set<string>()
    if (inflight) {
      inflight.forEach((entry, id) => { if (sent.has(id)) sentSeqs.add(entry.group.key + '\u0000' + entry.seq) })
      this.byClient.delete(link.client)
    }
    for (const group of this.groupsOf(clientId)) {
      const member = group.members.get(clientId) as Member
      // a newer connection of the same client (session takeover) keeps its place
      const superseded = member.link !== undefined && member.link !== link
      if (!superseded) member.link = undefined
      this.selector.forget(group.key, clientId)
      for (const entry of group.list()) {
        if (!entry.live || entry.link !== link) continue
        const wasSent = sentSeqs.has(group.key + '\u0000' + entry.seq)
        if (!wasSent) {
          this.unassign(group, member, entry, false)
        } else if (entry.message.qos === 1 && (this.opts.redelivery === 'immediate' || sessionEnded)) {
          this.unassign(group, member, entry, true)
        } else if (entry.message.qos === 2 && sessionEnded) {
          // spec 4.8.2: a QoS 2 message sent to a session that ended is never sent to another member
          repeatedLog.log(this.log, 'warn', 'qos2 lost ' + group.key, { group: group.key, clientId }, 'QoS 2 message lost with its member\'s session (spec 4.8.2)')
          group.dropped++
          await this.complete(group, entry)
        } else if (entry.delivery !== undefined) {
          // kept for the member: aedes re-sends it from the session when it returns
          this.deliveries.set(entry.delivery, entry)
        }
      }
      if ((sessionEnded || !member.persistent) && !superseded) await this.removeMember(group, member, 'session-ended')
      else this.drain(group)
    }
  }

  /** A persistent session expired or was discarded while offline. */
  async sessionEnded (clientId: string): Promise<void> {
    for (const group of this.groupsOf(clientId)) {
      const member = group.members.get(clientId) as Member
      for (const entry of group.list()) {
        if (!entry.live || entry.assignedTo !== clientId) continue
        if (entry.message.qos === 1) this.unassign(group, member, entry, true)
        else { group.dropped++; await this.complete(group, entry) }
      }
      await this.removeMember(group, member, 'session-ended')
    }
  }

  private async removeMember (group: Group, member: Member, why: string): Promise<void> {
    group.members.delete(member.clientId)
    for (const l of this.membershipListeners) l()
    this.selector.forget(group.key, member.clientId)
    for (let entry = group.first; entry; entry = entry.next) {
      if (entry.assignedTo === member.clientId) this.unassign(group, member, entry, true)
    }
    if (member.persistent) await this.store.delMember(group.key, member.clientId)
    this.log.debug({ group: group.key, clientId: member.clientId, why }, 'shared subscription member left')
    if (group.members.size === 0) await this.dropGroup(group)
    else this.drain(group)
  }

  /** The group and its queue are gone with its last member. */
  private async dropGroup (group: Group): Promise<void> {
    this.groups.delete(group.key)
    const discarded = group.list()
    for (const entry of discarded) group.remove(entry)
    group.pending.length = 0
    for (const entry of discarded) await this.store.delMessage(group.key, entry.seq)
    if (discarded.length > 0) this.log.info({ group: group.key, discarded: discarded.length }, 'shared group gone with its last member')
    const f = this.filters.get(group.filter)
    if (f) {
      f.groups.delete(group)
      if (f.groups.size === 0) {
        this.filters.delete(group.filter)
        this.aedes.unsubscribe(group.filter, f.listener as never, () => {})
      }
    }
  }

  private groupsOf (clientId: string): Group[] {
    const out: Group[] = []
    for (const g of this.groups.values()) if (g.members.has(clientId)) out.push(g)
    return out
  }

  private group (key: string, filter?: string): Group {
    let group = this.groups.get(key)
    if (!group) {
      const f = filter ?? key.slice(key.indexOf('/', 7) + 1)
      group = new Group(key, f)
      this.groups.set(key, group)
      this.listen(group)
    }
    return group
  }

  // --------------------------------------------------------------- routing

  private listen (group: Group): void {
    let f = this.filters.get(group.filter)
    if (!f) {
      const groups = new Set<Group>()
      const filter = group.filter
      const wildcardFirst = filter.startsWith('+') || filter.startsWith('#')
      const listener = (packet: MqPacket, cb: () => void): void => {
        // [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics
        if (wildcardFirst && packet.topic.startsWith('$')) { cb(); return }
        let durable: Promise<void> | undefined
        try {
          durable = this.route(groups, packet)
        } catch (err) {
          this.routeFailed(err, cb)
          return
        }
        if (durable === undefined) cb()
        else durable.then(cb, (err: unknown) => this.routeFailed(err, cb))
      }
      f = { groups, listener }
      this.filters.set(filter, f)
      this.aedes.subscribe(filter, listener as never, () => {})
    }
    f.groups.add(group)
  }

  private routeFailed (err: unknown, cb: () => void): void {
    this.log.error({ err }, 'shared subscription routing failed')
    cb()
  }

  /**
   * One message, for every group on its filter. Returns a promise that
   * resolves once it is durable in each group's log (aedes then lets the
   * publisher's PUBACK go), or undefined when it already is: a store that
   * keeps the log in memory answers at once, so the usual case allocates
   * no promise.
   */
  private route (groups: ReadonlySet<Group>, packet: MqPacket): Promise<void> | undefined {
    let writes: Array<Promise<void>> | undefined
    let touched: Group[] | undefined
    for (const group of groups) {
      if (group.members.size === 0) continue
      if (packet.qos === 0) {
        this.deliverQoS0(group, packet)
        continue
      }
      const message: StoredMessage = {
        topic: packet.topic,
        payload: packet.payload,
        qos: packet.qos,
        retain: packet.retain === true
      }
      if (packet.properties !== undefined) message.properties = packet.properties as Record<string, unknown>
      if (packet.messageExpiry !== undefined) message.messageExpiry = packet.messageExpiry
      if (packet.clientId !== undefined) message.publisherId = packet.clientId
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

  /**
   * The online members (with room, when `needRoom`), as the group's reused
   * candidate list: one choice per message, so nothing is allocated for it.
   */
  private candidates (group: Group, needRoom: boolean): Candidate[] {
    const out = group.candidates
    out.length = 0
    for (const m of group.members.values()) {
      if (!m.link) continue
      const room = m.link.room()
      if (needRoom && room <= 0) continue
      const c = m.candidate
      c.room = room
      c.inflight = m.assigned
      out.push(c)
    }
    return out
  }

  private choose (group: Group, topic: string, publisherId: string | undefined, needRoom: boolean): Member | undefined {
    const candidates = this.candidates(group, needRoom)
    if (candidates.length === 0) return undefined
    const input = group.selectInput
    input.topic = topic
    input.publisherId = publisherId
    const choice = this.selector.select(input, candidates)
    return choice === undefined ? undefined : group.members.get(choice.clientId)
  }

  private deliverQoS0 (group: Group, packet: MqPacket): void {
    const member = this.choose(group, packet.topic, packet.clientId, false)
    if (!member) return
    const out: SharedDelivery = {
      cmd: 'publish',
      topic: packet.topic,
      payload: packet.payload,
      qos: 0,
      retain: member.rap && packet.retain === true,
      dup: false,
      brokerId: group.brokerId,
      brokerCounter: this.nextDelivery()
    }
    const props = this.memberProperties(packet.properties as Record<string, unknown> | undefined, member)
    if (props) out.properties = props
    if (packet.messageExpiry !== undefined) out.messageExpiry = packet.messageExpiry
    member.link?.publish(out, noop)
    group.delivered++
  }

  /** Gives waiting messages to members with room, in order. */
  private drain (group: Group): void {
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
      const member = this.choose(group, entry.message.topic, entry.message.publisherId, true)
      if (!member) return
      group.pending.shift()
      this.deliver(group, entry, member)
    }
  }

  private nextDelivery (): number {
    this.deliveryCounter = this.deliveryCounter >= Number.MAX_SAFE_INTEGER ? 1 : this.deliveryCounter + 1
    return this.deliveryCounter
  }

  private memberProperties (props: Record<string, unknown> | undefined, member: Member): Record<string, unknown> | undefined {
    if (props === undefined && member.si === undefined) return undefined
    const out: Record<string, unknown> = { ...props }
    // [MQTT-3.3.4-3] the identifier of the subscription the message was sent for
    if (member.si !== undefined) out.subscriptionIdentifier = member.si
    else delete out.subscriptionIdentifier
    return out
  }

  private deliver (group: Group, entry: Entry, member: Member): void {
    const delivery = this.nextDelivery()
    entry.assignedTo = member.clientId
    entry.link = member.link
    entry.delivery = delivery
    entry.messageId = undefined
    member.assigned++
    const m = entry.message
    const qos = Math.min(m.qos, member.qos) as 0 | 1 | 2
    const out: SharedDelivery = {
      cmd: 'publish',
      topic: m.topic,
      payload: m.payload,
      qos,
      retain: member.rap && m.retain,
      dup: false,
      brokerId: group.brokerId,
      brokerCounter: delivery
    }
    const props = this.memberProperties(m.properties, member)
    if (props) out.properties = props
    if (m.messageExpiry !== undefined) out.messageExpiry = m.messageExpiry
    if (qos === 1 && member.link?.sendShared !== undefined) {
      const sent = member.link.sendShared(out)
      if (typeof sent === 'number') {
        entry.forwardedTo = member.link.client
        this.track(member.link.client, sent, entry)
        return
      }
      if (sent !== undefined) {
        this.discard(group, entry, sent === 'refused' ? 'shared message not readable by its member: discarded' : 'shared message expired before it was sent: discarded')
        return
      }
    }
    this.delivering = entry
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
      this.delivering = undefined
    }
    // aedes has not forwarded it yet (a session queue first): it will ask by delivery counter
    if (entry.forwardedTo === undefined && entry.live && entry.delivery === delivery) this.deliveries.set(delivery, entry)
  }

  /** The message a delivery counter stands for, while it is assigned. */
  private delivery (counter: number): Entry | undefined {
    const current = this.delivering
    if (current !== undefined && current.delivery === counter) return current
    return this.deliveries.get(counter)
  }

  private unassign (group: Group, member: Member, entry: Entry, redelivery: boolean): void {
    if (entry.assignedTo === undefined) return
    if (entry.delivery !== undefined) this.deliveries.delete(entry.delivery)
    entry.assignedTo = undefined
    entry.link = undefined
    entry.forwardedTo = undefined
    entry.delivery = undefined
    entry.messageId = undefined
    member.assigned = Math.max(0, member.assigned - 1)
    if (redelivery) group.redelivered++
    group.requeue(entry)
  }

  /**
   * The message is finished for the group: gone from memory at once, so the
   * member's room can be used again; the returned promise, if any, settles
   * when the store has deleted it too (its failure is logged).
   */
  private complete (group: Group, entry: Entry): Promise<void> | undefined {
    if (!group.remove(entry)) return undefined
    if (entry.delivery !== undefined) this.deliveries.delete(entry.delivery)
    if (entry.assignedTo !== undefined) {
      const member = group.members.get(entry.assignedTo)
      if (member) member.assigned = Math.max(0, member.assigned - 1)
    } else {
      // only a message not given to a member waits in `pending`
      const i = group.pending.indexOf(entry)
      if (i >= 0) group.pending.splice(i, 1)
    }
    return this.forget(group, entry.seq)
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

  // ------------------------------------------------------- aedes and gateway

  /**
   * From aedes' authorizeForward: a shared delivery about to be written.
   * Returns null for a stale copy (aedes retransmitting, from a member's
   * session, a message that went to another member or was finished).
   */
  onForward (client: Client, packet: { qos: number, messageId?: number, brokerCounter: number }): boolean {
    if (packet.qos === 0) return true
    const entry = this.delivery(packet.brokerCounter)
    if (!entry || !entry.live || entry.assignedTo !== client.id || entry.delivery !== packet.brokerCounter) return false
    // one delivery goes out once per connection (aedes may re-read a queue it just filled)
    if (entry.forwardedTo === client) return false
    entry.forwardedTo = client
    // aedes would pick the id later; culex picks it now to match the acknowledgement
    if (packet.messageId === undefined) packet.messageId = allocatePacketId(client)
    this.track(client, packet.messageId, entry)
    return true
  }

  /** The member's acknowledgement of `packetId` finishes `entry` (onAck). */
  private track (client: object, packetId: number, entry: Entry): void {
    entry.messageId = packetId
    let ids = this.byClient.get(client)
    if (!ids) this.byClient.set(client, ids = new PacketIdTable())
    ids.set(packetId, entry)
  }

  /** A delivery its member may not read (ACL): discarded for the group, counted as dropped. */
  refuse (delivery: number): void {
    const entry = this.delivery(delivery)
    if (!entry || !entry.live) return
    const group = entry.group
    this.discard(group, entry, 'shared message not readable by its member: discarded')
    // called from inside aedes' delivery to the member: the next one goes out after it
    queueMicrotask(() => this.drain(group))
  }

  private discard (group: Group, entry: Entry, why: string): void {
    group.dropped++
    repeatedLog.log(this.log, 'info', why + '\u0000' + group.key + '\u0000' + (entry.assignedTo ?? ''), { group: group.key, clientId: entry.assignedTo, topic: entry.message.topic }, why)
    void this.complete(group, entry)
  }

  /**
   * A PUBACK or PUBREC from a member (PUBREC completes a QoS 2 message for
   * the group). The gateway has already freed the place in the member's
   * window, so the next waiting message can go out at once.
   */
  onAck (client: { id: string }, packetId: number, reasonCode: number): void {
    const clientId = client.id
    const ids = this.byClient.get(client)
    const entry = ids?.get(packetId)
    if (!ids || !entry) return
    ids.delete(packetId)
    const group = entry.group
    if (!entry.live || entry.assignedTo !== clientId) return
    if (isFailure(reasonCode)) {
      // [spec 4.8.2] MUST discard it and not send it to another member
      this.deadLetter(group, entry, clientId, reasonCode)
    } else {
      group.delivered++
    }
    void this.complete(group, entry)
    this.drain(group)
  }

  private deadLetter (group: Group, entry: Entry, clientId: string, reasonCode: number): void {
    const template = this.opts.deadLetterTopic
    if (!template) {
      group.dropped++
      repeatedLog.log(this.log, 'info', 'refused ' + group.key + '\u0000' + clientId, { group: group.key, clientId, reasonCode }, 'shared message refused by its member: discarded')
      return
    }
    group.deadLettered++
    const name = groupName(group.key)
    const m = entry.message
    const topic = template.replaceAll('{group}', name).replaceAll('{topic}', m.topic)
    this.aedes.publish({
      cmd: 'publish',
      topic,
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
    } as never, (err?: Error) => {
      if (err) repeatedLog.log(this.log, 'error', 'dead-letter failed ' + group.key, { err, topic }, 'dead-letter publish failed')
    })
  }

  /** Is there a group whose filter matches `topic`? (its listener is also a live aedes subscription) */
  hasGroupFor (topic: string): boolean {
    for (const filter of this.filters.keys()) if (topicMatches(filter, topic)) return true
    return false
  }

  /** How many groups the client is a member of. */
  membershipCount (clientId: string): number {
    let n = 0
    for (const g of this.groups.values()) if (g.members.has(clientId)) n++
    return n
  }

  /** Is the client a member of any group (a session with shared subscriptions)? */
  isMember (clientId: string): boolean {
    for (const g of this.groups.values()) if (g.members.has(clientId)) return true
    return false
  }

  /** `listener` runs whenever a group gains or loses a member. */
  onMembershipChange (listener: () => void): void {
    this.membershipListeners.push(listener)
  }

  stats (): GroupStats[] {
    const out: GroupStats[] = []
    for (const g of this.groups.values()) {
      let online = 0
      let inflight = 0
      for (const m of g.members.values()) if (m.link) online++
      for (let e = g.first; e; e = e.next) if (e.assignedTo !== undefined) inflight++
      out.push({
        group: g.key,
        membersOnline: online,
        membersOffline: g.members.size - online,
        queued: g.pending.length,
        inflight,
        delivered: g.delivered,
        redelivered: g.redelivered,
        deadLettered: g.deadLettered,
        dropped: g.dropped
      })
    }
    return out
  }

  close (): void {
    for (const [filter, f] of this.filters) this.aedes.unsubscribe(filter, f.listener as never, () => {})
    this.filters.clear()
  }
}

function noop (): void {}

/** A message as aedes' emitter hands it to listeners. */
interface MqPacket {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain?: boolean
  properties?: object
  messageExpiry?: number
  clientId?: string
}
