/**
 * Messages for a persistent session that is moving between nodes
 * (lib/cluster/forward.ts). Another node claimed a session this node held:
 * until every publishing node has seen the new node's route, a QoS 1/2
 * message for the session may still come to this node's inbox only, and
 * this node no longer holds the session. So, for a while after a session
 * left (MOVE_WINDOW_MS: the longest a claim waits for the old holder, plus
 * one full reload of the routes on every node, plus a margin), every entry
 * this node's inbox publishes is also forwarded, for that session only, to
 * the node holding it now, when the session's QoS 1/2 filters match and
 * the session was not held here when it was published. The node holding
 * the session delivers it to that session alone, once its claim there has
 * loaded the session (until then the session's subscriptions are not in
 * memory, and a message queued for it would match none of them): to its
 * live connection (with the subscription's QoS and identifiers), or into
 * its queue in Redis, unless the session had it already: every routed message has an id
 * (lib/cluster/forward.ts). A QoS 2 message carries it into the session
 * (lib/cluster/routed-id.ts), whose store queues and delivers it once
 * (persistence/routed-ids.ts) [MQTT-4.3.3-10]. For QoS 1 the node remembers
 * for SEEN_MS the ids it published since a session's connection arrived
 * here; at least once: a QoS 1 message published here between the
 * session's load and its connection's arrival, and forwarded too, arrives
 * twice.
 */
import type { Aedes, Client, PublishPacket } from 'aedes'
import { clientSubscriptions, persistenceOf, queuedPacket } from '../aedes-internals.js'
import { expiryIntervalLeft } from '../protocol/delivery.js'
import { topicMatches } from '../protocol/topic.js'
import { RELOAD_MS, routedPacket } from '../cluster/routes.js'
import type { StoredPacket } from '../persistence/types.js'
import { nameByRoutedId, routedIdOf } from '../cluster/routed-id.js'
import type { BrokerContext } from './context.js'
import { clusterSessionsOf } from './store.js'

/** milliseconds a node forwards a session's messages after it left: a claim's waits (15 s + 5 s at most) and one reload of the routes (10 s) */
export const MOVE_WINDOW_MS = 35000
/**
 * milliseconds a QoS 1/2 filter of a session that left stays this node's
 * durable route: the new node announces its own once it loaded the
 * session (milliseconds after this node handed it over); until the
 * publishers have seen that, this node's route brings the messages here,
 * to be forwarded, rather than nowhere (PUBACK 0x10). A publisher that
 * missed the announcement (a lost notice) sees the new route at its next
 * full reload of the routes, at most RELOAD_MS later: the route stays that
 * long, and a margin for a reload on a loaded node
 */
export const LINGER_MS = RELOAD_MS + 5000
/** milliseconds the ids of the routed messages published here are remembered (a forwarded copy comes within the moment it takes the old node to read its inbox) */
export const SEEN_MS = 10000
/** milliseconds a forwarded message waits for a claim here to load its session, or for its connection to be accepted */
const HOLD_WAIT_MS = 5000
const STEP_MS = 20
const NONE: readonly string[] = []

interface Left {
  /** the session's QoS 1/2 filters when it left */
  filters: string[]
  since: number
  until: number
}

interface SessionStore {
  subscriptionsByClient (client: { id: string }): Promise<Array<{ topic: string, qos: number }>>
  subscriptionsByTopic (topic: string): Promise<Array<{ clientId: string }>>
  outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: Record<string, unknown>): Promise<void>
}

type MovesContext = Pick<BrokerContext, 'cluster' | 'store' | 'clientById' | 'logger'>

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

const movesOf = new WeakMap<Aedes, SessionMoves>()

/** The broker's one SessionMoves (made at first use). */
export function sessionMoves (aedes: Aedes, ctx: MovesContext): SessionMoves {
  let moves = movesOf.get(aedes)
  if (moves === undefined) movesOf.set(aedes, moves = new SessionMoves(aedes, ctx))
  return moves
}

/** Queues `packet` in those of `clientIds` held here whose QoS 1/2 subscriptions match it (as aedes queues for an offline session). */
export async function enqueueFor (aedes: Aedes, clientIds: ReadonlySet<string>, packet: PublishPacket, id = ''): Promise<void> {
  const persistence = persistenceOf(aedes) as unknown as SessionStore
  const subs = (await persistence.subscriptionsByTopic(packet.topic)).filter((s) => clientIds.has(s.clientId))
  if (subs.length === 0) return
  const queued = queuedPacket(aedes, { ...packet, payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload) })
  // a QoS 2 message by its routed id: not queued again for a session that had it [MQTT-4.3.3-10]
  nameByRoutedId(queued as { qos: number }, aedes.id, id)
  await persistence.outgoingEnqueueCombi(subs, queued)
}

/** A queued message as it travels between nodes; undefined once expired [MQTT-3.3.2-5]. */
function asRouted (stored: StoredPacket, now: number): PublishPacket | undefined {
  if (typeof stored.topic !== 'string') return undefined
  const payload = Buffer.isBuffer(stored.payload) ? stored.payload : Buffer.from(stored.payload ?? '')
  let properties = stored.properties as PublishPacket['properties']
  if (typeof stored.messageExpiry === 'number') {
    const left = expiryIntervalLeft(stored.messageExpiry, now)
    if (left <= 0) return undefined
    // the interval left, as a message passed on is sent [MQTT-3.3.2-6]
    properties = { ...properties, messageExpiryInterval: left }
  }
  return routedPacket({ topic: stored.topic, payload, properties, retain: stored.retain === true }, stored.qos === 2 ? 2 : 1) as PublishPacket
}

export class SessionMoves {
  private readonly left = new Map<string, Left>()
  /** persistent sessions whose connection arrived here within MOVE_WINDOW_MS, and when */
  private readonly arrivals = new Map<string, number>()
  /** ids of routed messages published here (while arrivals is not empty), and when */
  private readonly seen = new Map<string, number>()

  constructor (private readonly aedes: Aedes, private readonly ctx: MovesContext) {
    aedes.on('client', (client) => {
      if (client.clean) return
      // kept in time order, for the pruning in published()
      this.arrivals.delete(client.id)
      this.arrivals.set(client.id, Date.now())
    })
  }

  /** Another node claimed `clientId`: its QoS 1/2 filters are remembered (call before the copy here goes). */
  async leaving (clientId: string): Promise<void> {
    const persistence = persistenceOf(this.aedes) as unknown as SessionStore
    const filters = (await persistence.subscriptionsByClient({ id: clientId })).filter((s) => s.qos > 0 && !s.topic.startsWith('$share/')).map((s) => s.topic)
    const now = Date.now()
    this.arrivals.delete(clientId)
    if (filters.length > 0) this.left.set(clientId, { filters, since: now, until: now + MOVE_WINDOW_MS })
  }

  /** A routed message `id` was published here: remembered while a session that arrived recently could get it forwarded too. */
  published (id: string): void {
    const now = Date.now()
    for (const [clientId, at] of this.arrivals) {
      if (now - at <= MOVE_WINDOW_MS) break
      this.arrivals.delete(clientId)
    }
    for (const [seenId, at] of this.seen) {
      if (now - at <= SEEN_MS) break
      this.seen.delete(seenId)
    }
    if (id !== '' && this.arrivals.size > 0) this.seen.set(id, now)
  }

  /** The store's QoS 1/2 filters changed: to the node's durable routes, a removal for a session that just left LINGER_MS later. */
  durableChanged (filter: string, added: boolean): void {
    const cluster = this.ctx.cluster
    if (cluster === undefined) return
    const now = Date.now()
    const lingers = !added && [...this.left.values()].some((l) => now - l.since < LINGER_MS && l.filters.includes(filter))
    if (!lingers) {
      cluster.durableChanged(filter, added)
      return
    }
    setTimeout(() => { cluster.durableChanged(filter, false) }, LINGER_MS).unref()
  }

  /** The sessions that left recently, are not held here and match `topic`: those to forward a message to, decided before it is published here. */
  absentFor (topic: string): readonly string[] {
    // nearly always: no allocation per message
    if (this.left.size === 0) return NONE
    const now = Date.now()
    const out: string[] = []
    for (const [clientId, left] of this.left) {
      if (left.until < now) {
        this.left.delete(clientId)
        continue
      }
      if (this.holds(clientId)) continue
      if (left.filters.some((f) => topicMatches(f, topic))) out.push(clientId)
    }
    return out
  }

  /** Forwards `packet` (its id `id`) to the node holding each of `clientIds`; rejects when Redis did not take one: the entry is read again. */
  async forward (clientIds: readonly string[], packet: PublishPacket, id: string): Promise<void> {
    const cluster = this.ctx.cluster
    if (cluster === undefined || clientIds.length === 0) return
    await Promise.all(clientIds.map(async (clientId) => { await cluster.forwardTo(clientId, packet, id) }))
  }

  /**
   * Messages queued here for `clientId` whose write the store could not make
   * (another node took the session while they were on their way: its copy
   * here refused or dropped): to the node holding it, for it alone. Their
   * publishers' PUBACK/PUBREC wait for this [MQTT-4.3.2-4] [MQTT-4.3.3-8].
   */
  async redirect (clientId: string, packets: StoredPacket[]): Promise<void> {
    const cluster = this.ctx.cluster
    if (cluster === undefined) return
    const now = Date.now()
    await Promise.all(packets.map(async (stored) => {
      const packet = asRouted(stored, now)
      if (packet === undefined) return
      const to = await cluster.forwardTo(clientId, packet, routedIdOf(stored.brokerId) ?? '')
      if (to === undefined) this.ctx.logger.debug({ clientId, topic: packet.topic }, 'cluster: a message queued for a session no node holds (it ended); dropped')
    }))
  }

  /** A message forwarded for `clientId`: to that session alone, live or queued; on again when it left here too. */
  async deliverTo (clientId: string, packet: PublishPacket, id: string): Promise<void> {
    const cluster = this.ctx.cluster
    const deadline = Date.now() + HOLD_WAIT_MS
    // a claim here may still be loading the session: queued before its subscriptions are in memory, it would match none of them
    while (!this.holds(clientId) && cluster?.claimedHere(clientId) === true && Date.now() < deadline) await sleep(STEP_MS)
    if (!this.holds(clientId)) {
      // it moved on meanwhile: on to its holder
      const to = cluster === undefined || cluster.claimedHere(clientId) ? undefined : await cluster.forwardTo(clientId, packet, id)
      if (to === undefined || to === cluster?.nodeId) this.ctx.logger.warn({ clientId, topic: packet.topic }, 'cluster: a message forwarded for a session found no node holding it; dropped')
      return
    }
    // QoS 1: published here after the session's connection arrived, so the session had it (a guess: a QoS 2 message is
    // skipped by the store only if the session has its id)
    const seenAt = packet.qos === 2 ? undefined : this.seen.get(id)
    const arrivedAt = this.arrivals.get(clientId)
    if (seenAt !== undefined && arrivedAt !== undefined && seenAt >= arrivedAt) return
    let client = this.ctx.clientById(clientId)
    while (client !== undefined && !client.connected && !client.closed && Date.now() < deadline) {
      await sleep(STEP_MS)
      client = this.ctx.clientById(clientId)
    }
    if (client !== undefined && client.connected && !client.closed) await this.toLive(client, packet, id)
    else await enqueueFor(this.aedes, new Set([clientId]), packet, id)
  }

  /** Whether the session is in this node's memory: held here, and not still being loaded by a claim here. */
  private holds (clientId: string): boolean {
    const sessions = clusterSessionsOf(this.ctx.store())
    return sessions?.loaded?.(clientId) ?? sessions?.epochOf?.(clientId) !== undefined
  }

  /** To a live connection, as its subscriptions that match grant it: their highest QoS, their identifiers. */
  private async toLive (client: Client, packet: PublishPacket, id: string): Promise<void> {
    const matching = Object.entries(clientSubscriptions(client)).filter(([filter]) => !filter.startsWith('$share/') && topicMatches(filter, packet.topic))
    if (matching.length === 0) return
    const qos = Math.min(packet.qos, Math.max(...matching.map(([, s]) => s.qos))) as 0 | 1 | 2
    const ids = matching.flatMap(([, s]) => s.si === undefined ? [] : [s.si])
    const properties = { ...packet.properties, ...(ids.length > 0 ? { subscriptionIdentifier: ids.length === 1 ? ids[0] : ids } : {}) }
    // RETAIN as published, as a routed message keeps it, for a Retain As Published subscription only [MQTT-3.3.1-12] [MQTT-3.3.1-13];
    // sent to the connection, never to the retained store (the publisher's node wrote it to the cluster's)
    const retain = packet.retain && matching.some(([, s]) => s.rap === true || s.rap === 1)
    const message = { cmd: 'publish' as const, topic: packet.topic, payload: packet.payload, qos, retain, dup: false, ...(Object.keys(properties).length > 0 ? { properties } : {}) }
    // queued by its routed id first (aedes' client.publish for a persistent session): not sent when the session had it
    nameByRoutedId(message, this.aedes.id, id)
    await new Promise<void>((resolve, reject) => {
      client.publish(message as PublishPacket, (err?: Error) => { if (err !== undefined && err !== null) reject(err); else resolve() })
    })
  }
}
