/**
 * Shared subscription groups cluster-wide (lib/cluster/shared-stream.ts):
 * the broker's side. Every node subscribes in aedes to the filters of the
 * cluster's groups and adds each message once to its group's stream,
 * holding the publisher's PUBACK until Redis has it; the node's dispatcher
 * (lib/shared, unchanged in its rules) is fed from the streams of the groups
 * it has members of, as its members have room (`GroupQueue`), and its store
 * turns a finished message into the entry's acknowledgement in Redis.
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import type { ClusterShareStreams, StreamEntry } from '../cluster/shared-stream.js'
import { decodePacket, encodePacket } from '../persistence/codec.js'
import type { StoredPacket } from '../persistence/types.js'
import type { SharedSubscriptions } from '../shared/dispatcher.js'
import type { GroupQueue } from '../shared/intake.js'
import { parseSessionBrokerId, sessionBrokerId, type SessionQoS2 } from '../shared/session-held.js'
import type { MqPacket } from '../shared/filters.js'
import { storedMessage } from '../shared/delivery.js'
import type { ShareStore, StoredMember, StoredMessage } from '../shared/store.js'
import { topicMatches } from '../protocol/topic.js'
import { clusterWriteRefused, type ClusterWriteRefused } from '../cluster/refusal.js'
import { MemoryShareStore } from '../shared/store.js'
import type { BrokerContext, ClusterSharedSessions } from './context.js'
import type { SharedSettings } from './shared.js'
import { sharedStoreOf } from './store.js'

/** Broker ids of messages another node routed here start so: they were added to the groups' streams where they were published. */
const ROUTED_PREFIX = '$culex-routed:'

/**
 * The broker id a node gives a message another node routed to it (QoS 0 by
 * Pub/Sub, QoS 1/2 from its inbox): unique to this process, as aedes' own
 * id, so a queued message's broker id and counter name it alone in a session
 * that moves between nodes.
 */
export function routedBrokerId (aedes: Pick<Aedes, 'id'>): string {
  return ROUTED_PREFIX + aedes.id
}

export function isRouted (packet: { brokerId?: string }): boolean {
  return packet.brokerId?.startsWith(ROUTED_PREFIX) === true
}

/**
 * entries a read takes at most per online member here: the nodes then read
 * in proportion to their members, not to their windows, so a strategy that
 * spreads (round-robin, random) spreads across nodes too
 */
const READ_PER_MEMBER = 10

/** ms between two looks for messages waiting here beyond the room of the members here */
const HAND_BACK_MS = 500

type Listener = (packet: MqPacket & { brokerId?: string }, cb: () => void) => void

interface Held { id: string, message: StoredMessage }

/** before the join no client connects, so no group opens: a call here is a bug, said loudly */
const notJoined = new Proxy({}, { get () { throw new Error('cluster: shared groups used before the join') } }) as ClusterShareStreams

export class ClusterShared implements GroupQueue, ClusterSharedSessions, SessionQoS2 {
  private shared: SharedSubscriptions | undefined
  /** per group here, the stream entry of each seq the dispatcher holds */
  private readonly held = new Map<string, Map<number, Held>>()
  /** aedes subscriptions, one per filter of the cluster's groups */
  private readonly subscribed = new Map<string, Listener>()
  private timer: NodeJS.Timeout | undefined
  /** the payloads of messages Redis did not take for their groups, until the publish's `published` hook asks */
  private readonly failed = new WeakMap<object, ClusterWriteRefused>()
  /** clients whose session another node took: their memberships in Redis are that node's now */
  private readonly handingOver = new Set<string>()
  private streams: ClusterShareStreams = notJoined

  constructor (private readonly aedes: Aedes, private readonly log: Logger) {}

  /** The node joined: its groups' streams are read and written from now on. */
  use (streams: ClusterShareStreams): void {
    this.streams = streams
    streams.onGroups(() => { this.follow() })
    this.follow()
    this.timer = setInterval(() => { this.handBackExcess() }, HAND_BACK_MS)
    this.timer.unref()
  }

  /** The dispatcher fed by the streams (made with this as its queue and `store` as its store). */
  attach (shared: SharedSubscriptions): void {
    this.shared = shared
    shared.onMembershipChange(() => { for (const key of this.held.keys()) this.streams.poke(key) })
  }

  /**
   * A client id claimed here: its persistent session's memberships, held by
   * whichever node it was on, become this node's (before its connection is
   * ready, so the dispatcher knows it as a member); Clean Start ends that
   * session: its memberships go, and the QoS 2 messages it held, on any
   * node, are settled and sent to no other member [MQTT-4.8.2-5].
   */
  async adopt (clientId: string, clean: boolean): Promise<void> {
    const shared = this.shared
    if (shared === undefined || this.streams === notJoined) return
    if (clean) {
      await this.streams.sessionRestarted(clientId)
      return
    }
    for (const record of await this.streams.members(clientId)) {
      let member: StoredMember
      try {
        member = JSON.parse(record) as StoredMember
      } catch {
        continue
      }
      if (typeof member.group === 'string' && member.clientId === clientId) shared.adopt(member)
    }
  }

  /**
   * Another node took the client's session: it is no member here any more
   * (its memberships in Redis stay, for that node); what it held here goes
   * back to the groups as at the end of a session.
   */
  handOver (clientId: string): void {
    const shared = this.shared
    if (shared === undefined || !shared.isMember(clientId)) return
    this.handingOver.add(clientId)
    shared.sessionMoved(clientId).catch((err: unknown) => {
      this.log.warn({ err, clientId }, 'cluster: leaving the shared groups of a session taken over failed')
    }).finally(() => { this.handingOver.delete(clientId) })
  }

  /** The dispatcher's store: memberships in `base` and in Redis (for any node), messages in the streams. */
  store (base: ShareStore): ShareStore {
    return {
      putMember: async (member: StoredMember) => {
        await base.putMember(member)
        await this.streams.putMember(member.clientId, member.group, JSON.stringify(member))
      },
      delMember: async (group: string, clientId: string) => {
        await base.delMember(group, clientId)
        if (!this.handingOver.has(clientId)) await this.streams.delMember(clientId, group)
      },
      members: () => base.members(),
      putMessage: (group: string, seq: number, message: StoredMessage) => {
        const h = this.held.get(group)?.get(seq)
        // a delivery counted: handed back, the entry carries the count
        if (h !== undefined) h.message = message
        return undefined
      },
      delMessage: (group: string, seq: number) => {
        const groupHeld = this.held.get(group)
        const h = groupHeld?.get(seq)
        if (h === undefined || groupHeld === undefined) return undefined
        groupHeld.delete(seq)
        this.streams.ack(group, h.id)
        this.streams.poke(group)
        return undefined
      },
      messages: async function * () {}
    }
  }

  // ------------------------------------------------- QoS 2 held by sessions

  brokerIdFor (key: string, seq: number): string {
    return sessionBrokerId(key, this.held.get(key)?.get(seq)?.id ?? '')
  }

  sent (key: string, seq: number, clientId: string): void {
    const h = this.held.get(key)?.get(seq)
    if (h !== undefined) this.streams.holdForSession(key, h.id, clientId)
  }

  release (key: string, seq: number): void {
    this.held.get(key)?.delete(seq)
  }

  settle (brokerId: string): void {
    const named = parseSessionBrokerId(brokerId)
    if (named !== undefined) this.streams.settle(named.key, named.name)
  }

  // ---------------------------------------------------------- GroupQueue

  opened (key: string, filter: string): void {
    this.held.set(key, new Map())
    this.streams.openGroup(key, filter, {
      room: () => this.shared?.roomFor(key, READ_PER_MEMBER) ?? 0,
      held: () => this.held.get(key)?.size ?? 0,
      take: (entries) => { this.take(key, entries) }
    })
  }

  closed (key: string, unfinished: readonly number[]): void {
    const groupHeld = this.held.get(key)
    this.held.delete(key)
    const back = this.entries(groupHeld, unfinished)
    this.streams.closeGroup(key, back).catch((err: unknown) => {
      this.log.warn({ err, group: key }, 'cluster: leaving a shared group failed; its entries go back when this node\'s lease ends')
    })
  }

  matches (topic: string): boolean {
    for (const filter of this.subscribed.keys()) if (topicMatches(filter, topic)) return true
    return false
  }

  close (): void {
    clearInterval(this.timer)
    for (const [filter, listener] of this.subscribed) this.aedes.unsubscribe(filter, listener as never, () => {})
    this.subscribed.clear()
  }

  // ------------------------------------------------------------ reading

  private take (key: string, entries: StreamEntry[]): void {
    const shared = this.shared
    const groupHeld = this.held.get(key)
    if (shared === undefined || groupHeld === undefined) {
      this.streams.handBack(key, entries.map((e) => ({ id: e.id, message: undefined }))).catch(() => {})
      return
    }
    for (const e of entries) {
      let message: StoredMessage
      try {
        message = decodePacket(e.message) as unknown as StoredMessage
      } catch (err) {
        this.log.error({ err, group: key, id: e.id }, 'cluster: a shared group entry that cannot be read: dropped')
        this.streams.ack(key, e.id)
        continue
      }
      if ((message.qos as number) === 0) {
        shared.offer(key, message as unknown as MqPacket)
        this.streams.ack(key, e.id)
        continue
      }
      if (e.uncounted > 0) message.deliveryCount = (message.deliveryCount ?? 0) + e.uncounted
      const seq = shared.enqueue(key, message)
      if (seq === undefined) {
        this.streams.handBack(key, [{ id: e.id, message: undefined }]).catch(() => {})
        continue
      }
      groupHeld.set(seq, { id: e.id, message })
    }
    shared.dispatch(key)
  }

  /** Messages waiting here that the members here have no room for go back to the stream, for other nodes. */
  private handBackExcess (): void {
    const shared = this.shared
    if (shared === undefined) return
    for (const [key, groupHeld] of this.held) {
      const seqs = shared.handBack(key)
      if (seqs.length === 0) continue
      this.streams.handBack(key, this.entries(groupHeld, seqs)).catch((err: unknown) => {
        this.log.warn({ err, group: key }, 'cluster: handing shared messages back failed; they go back when this node\'s lease ends')
      })
    }
  }

  private entries (groupHeld: Map<number, Held> | undefined, seqs: readonly number[]): Array<{ id: string, message: Buffer }> {
    const out: Array<{ id: string, message: Buffer }> = []
    if (groupHeld === undefined) return out
    for (const seq of seqs) {
      const h = groupHeld.get(seq)
      if (h === undefined) continue
      groupHeld.delete(seq)
      out.push({ id: h.id, message: encodePacket(h.message as unknown as StoredPacket) })
    }
    return out
  }

  // ---------------------------------------------------------- publishing

  /** The message of this payload was not stored for its groups: the error its publisher is answered with (once). */
  refused (payload: unknown): ClusterWriteRefused | undefined {
    if (typeof payload !== 'object' || payload === null) return undefined
    const err = this.failed.get(payload)
    if (err !== undefined) this.failed.delete(payload)
    return err
  }

  /** One aedes subscription per filter of the cluster's groups. */
  private follow (): void {
    const filters = new Set(this.streams.groups().values())
    for (const [filter, listener] of this.subscribed) {
      if (filters.has(filter)) continue
      this.subscribed.delete(filter)
      this.aedes.unsubscribe(filter, listener as never, () => {})
    }
    for (const filter of filters) {
      if (this.subscribed.has(filter)) continue
      const listener = this.listenerFor(filter)
      this.subscribed.set(filter, listener)
      this.aedes.subscribe(filter, listener as never, () => {})
    }
  }

  private listenerFor (filter: string): Listener {
    const wildcardFirst = filter.startsWith('+') || filter.startsWith('#')
    return (packet, cb) => {
      // [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics
      if ((wildcardFirst && packet.topic.startsWith('$')) || isRouted(packet)) { cb(); return }
      const adds: Array<Promise<void>> = []
      let encoded: Buffer | undefined
      for (const [key, f] of this.streams.groups()) {
        if (f !== filter) continue
        encoded ??= encodeEntry(packet)
        adds.push(this.streams.add(key, encoded))
      }
      if (adds.length === 0) { cb(); return }
      const stored = adds.length === 1 ? adds[0] as Promise<void> : Promise.all(adds)
      stored.then(() => { cb() }, (err: unknown) => {
        const refused = clusterWriteRefused(err, 'message for shared subscription groups')
        this.log.warn({ err: refused.message, topic: packet.topic }, 'cluster: a message for shared groups was not stored in Redis: its publisher is told')
        // aedes hands the listeners a copy of the packet but keeps its payload: the `published` hook finds it by that
        if (typeof packet.payload === 'object') this.failed.set(packet.payload, refused)
        cb()
      })
    }
  }
}

/** A message as its group's stream holds it: the group log's form, QoS 0 included. */
function encodeEntry (packet: MqPacket): Buffer {
  const m = storedMessage(packet, packet.qos === 0 ? 1 : packet.qos) as unknown as StoredPacket
  m.qos = packet.qos
  return encodePacket(m)
}

/**
 * The shared settings of a broker in a cluster: its groups fed by the
 * cluster's streams (a single node's settings are returned as they are);
 * `attach` gives the dispatcher, once made, to the streams' side.
 */
export function clusterSharedSettings (aedes: Aedes, o: SharedSettings, ctx: Pick<BrokerContext, 'cluster' | 'store'>, logger: Logger): { settings: SharedSettings, attach: (shared: SharedSubscriptions | undefined) => void, close: () => void, sessions?: ClusterSharedSessions } {
  const cluster = ctx.cluster
  if (cluster === undefined) return { settings: o, attach: () => {}, close: () => {} }
  const queue = new ClusterShared(aedes, logger.child({ module: 'cluster-shared' }))
  cluster.attachShared((streams) => { queue.use(streams) })
  const store = queue.store(o.store ?? sharedStoreOf(ctx.store()) ?? new MemoryShareStore())
  return {
    settings: { ...o, store, queue, sessionQoS2: queue },
    attach: (shared) => { if (shared !== undefined) queue.attach(shared) },
    close: () => { queue.close() },
    sessions: queue
  }
}
