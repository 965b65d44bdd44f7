/**
 * The broker's side of the cluster's client-id registry (lib/cluster/):
 * which epoch each connection claimed its id at, the check each connection
 * makes once live, the fenced release when an id's last connection here
 * ends, and the DISCONNECT 0x8E when another node takes the id; QoS 0
 * routing between nodes (wireRoutes), QoS 1/2 (cluster-qos.ts); retained messages cluster-wide
 * (wireRetained); a session another node took over leaves this node's store
 * (the Redis store's handOver); wills cluster-wide (cluster-wills.ts); the
 * session clocks of Session Expiry cluster-wide (lib/cluster/session-expiry.ts).
 */
import type { Aedes, Client } from 'aedes'
import { clientSubscriptions } from '../aedes-internals.js'
import type { StoredPacket } from '../persistence/types.js'
import { ReasonCode } from '../protocol/reason-codes.js'
import type { BrokerContext } from './context.js'
import { wirePublishRefusals } from './publish-refusal.js'
import { clusterSessionsOf } from './store.js'
import { wireClusterWills } from './cluster-wills.js'
import { sessionLifetimeMs } from '../cluster/session-expiry.js'
import { wireClusterQos } from './cluster-qos.js'
import { isRouted, routedBrokerId } from './cluster-shared.js'
import { windowedPublish } from './routed-publish.js'
import { mirrorRemoteSys } from './cluster-sys.js'
import { sysTopicNode } from '../protocol/topic.js'
import { sessionMoves } from './cluster-moves.js'

/** the epoch at which each client claimed its id */
const epochs = new WeakMap<Client, number>()
/** per client id, the registration in aedes of its latest claimant on this node */
const registering = new Map<string, Promise<void>>()
/** ends a client's wait in `registering` */
const registered = new WeakMap<Client, () => void>()
/** a claimant whose registration never comes (its connection failed) holds the next one back this long at most */
const REGISTRATION_WAIT_MS = 5000

/**
 * Remembers the epoch of a claim and resolves once the previous claimant of
 * the same id on this node is registered in aedes (or failed). aedes 2.0.0
 * takes over an id in two steps (close the old client, then register the new
 * one), and a third connection registering in between is left out of its
 * client table; claims answered by Redis in one burst would do just that, so
 * they enter aedes one at a time, in epoch order.
 */
export async function claimed (client: Client, epoch: number): Promise<void> {
  epochs.set(client, epoch)
  const id = client.id
  const previous = registering.get(id)
  let done!: () => void
  const mine = new Promise<void>((resolve) => { done = resolve })
  registering.set(id, mine)
  const timer = setTimeout(done, REGISTRATION_WAIT_MS)
  timer.unref()
  registered.set(client, () => { clearTimeout(timer); done() })
  void mine.then(() => { if (registering.get(id) === mine) registering.delete(id) })
  if (previous !== undefined) await previous
}

/** each client's live, non-shared filters, for the node's route table */
const filtersOf = new WeakMap<Client, Set<string>>()

/**
 * The node's route table follows its clients' live subscriptions, and a
 * client's QoS 0 message goes to the other nodes that subscribe to it
 * (lib/cluster/routes.ts). Shared subscriptions stay per node for now.
 */
function wireRoutes (aedes: Aedes, cluster: NonNullable<BrokerContext['cluster']>): void {
  const track = (client: Client, topics: Iterable<string>): void => {
    let filters = filtersOf.get(client)
    for (const topic of topics) {
      if (topic.startsWith('$share/')) continue
      if (filters === undefined) filtersOf.set(client, filters = new Set())
      if (filters.has(topic)) continue
      filters.add(topic)
      cluster.subscribed(topic)
    }
  }
  aedes.on('subscribe', (subscriptions, client) => { track(client, subscriptions.map((s) => s.topic)) })
  // a resumed session's subscriptions are restored without a 'subscribe' event
  aedes.on('clientReady', (client) => { track(client, Object.keys(clientSubscriptions(client))) })
  aedes.on('unsubscribe', (topics, client) => {
    const filters = filtersOf.get(client)
    for (const topic of topics) if (filters?.delete(topic) === true) cluster.unsubscribed(topic)
  })
  aedes.on('clientDisconnect', (client) => {
    const filters = filtersOf.get(client)
    if (filters === undefined) return
    filtersOf.delete(client)
    for (const topic of filters) cluster.unsubscribed(topic)
  })
  aedes.on('publish', (packet, client) => {
    if (client !== null && client !== undefined && packet.qos === 0) cluster.route(packet)
  })
}

/** the store's retained entry point, as aedes calls it */
interface RetainedStore {
  storeRetained: (packet: StoredPacket) => Promise<void> | void
  /** culex's stores report a retained message their limits refused, synchronously within storeRetained */
  onDrop?: (listener: (event: { reason: string }) => void) => unknown
}

function hasRetained (store: unknown): store is RetainedStore {
  return typeof (store as Partial<RetainedStore> | undefined)?.storeRetained === 'function'
}

/**
 * The node's own store becomes a read cache of the cluster's retained
 * messages (lib/cluster/retained.ts): a retained PUBLISH here is stored here
 * first (so this node's notice, applied later, comes after it), then in
 * Redis, and aedes acknowledges it once both have it; a change made on any
 * node reaches this store by notice. '$' topics ($SYS) stay out of Redis:
 * another node's `$SYS/brokers/{node}/` values, routed here, are kept here
 * only (cluster-sys.ts).
 */
function wireRetained (store: unknown, cluster: NonNullable<BrokerContext['cluster']>): void {
  if (!hasRetained(store)) return
  const local = store.storeRetained.bind(store)
  let refused = false
  store.onDrop?.((event) => { if (event.reason === 'retained-limit') refused = true })
  cluster.attachRetained(async (packet) => { await local(packet) })
  store.storeRetained = (packet: StoredPacket): Promise<void> => {
    // a message another node routed here with RETAIN 1: that node wrote it to Redis, whose notice brings it to this store
    if (isRouted(packet)) return Promise.resolve(typeof packet.topic === 'string' && sysTopicNode(packet.topic) !== undefined ? local(packet) : undefined)
    refused = false
    const here = local(packet)
    // over this node's retained limits: refused here, so not written for the cluster either
    if (refused || typeof packet.topic !== 'string' || packet.topic.startsWith('$')) return Promise.resolve(here)
    const there = cluster.storeRetained(packet)
    return Promise.all([here, there]).then(() => {})
  }
}

export function wireCluster (aedes: Aedes, ctx: Pick<BrokerContext, 'cluster' | 'clientById' | 'gatewayOf' | 'logger' | 'store' | 'security' | 'clusterShared'>): void {
  const cluster = ctx.cluster
  if (cluster === undefined) return
  wireRetained(ctx.store(), cluster)
  wireClusterQos(aedes, ctx)
  wirePublishRefusals(aedes, ctx)
  const publishRouted = windowedPublish(aedes)
  const remoteSysChanged = mirrorRemoteSys(aedes, cluster, (err, topic) => { ctx.logger.debug({ err, topic }, 'cluster: clearing a node\'s $SYS value failed') })
  cluster.attachClients({
    takenOver (clientId, byNode) {
      const client = ctx.clientById(clientId)
      const conn = client === undefined ? undefined : ctx.gatewayOf(client)
      // one not yet answered is closed by its own check once live (verify)
      if (conn?.isAccepted === true) conn.disconnect(ReasonCode.SessionTakenOver, `session taken over on node ${byNode}`)
      // the session is the other node's now: this node's copy goes (its later writes would be refused),
      // once the messages already in this node's inbox are in it (the claiming node waits for them: cluster/inbox.ts)
      const sessions = clusterSessionsOf(ctx.store())
      const epoch = sessions?.epochOf?.(clientId)
      const handOver = (): void => { sessions?.handOver(clientId, epoch) }
      // what still reaches this node for it goes on to its new node (cluster-moves.ts)
      sessionMoves(aedes, ctx).leaving(clientId).catch(() => {}).then(async () => { await cluster.inboxCaughtUp() }).then(handOver, handOver)
      ctx.clusterShared?.handOver(clientId)
    },
    sessionEnded (clientId, epoch) {
      clusterSessionsOf(ctx.store())?.handOver(clientId, epoch)
      ctx.clusterShared?.handOver(clientId)
    },
    deliver (message) {
      if (!remoteSysChanged(message.topic, message.payload)) return
      // published with no client: aedes' 'publish' event below does not route it back
      // RETAIN as published on its node, for Retain As Published subscriptions here [MQTT-3.3.1-12] [MQTT-3.3.1-13]
      const packet = { cmd: 'publish' as const, topic: message.topic, payload: message.payload, qos: 0 as const, retain: message.retain === true, dup: false, brokerId: routedBrokerId(aedes), ...(message.properties !== undefined ? { properties: message.properties } : {}) }
      publishRouted(packet, (err) => { if (err) ctx.logger.debug({ err, topic: message.topic }, 'cluster: a routed message was not published') })
    }
  })
  wireRoutes(aedes, cluster)
  aedes.on('client', (client) => { registered.get(client)?.() })
  aedes.on('connectionError', (client) => { registered.get(client)?.() })
  aedes.on('clientReady', (client) => {
    const epoch = epochs.get(client)
    if (epoch === undefined) return
    // should this node die, the session's clock starts then (lib/cluster/session-expiry.ts)
    cluster.sessionLive(client.id, epoch, sessionLifetimeMs(client))
    cluster.verify(client.id).catch((err: unknown) => {
      ctx.logger.warn({ clientId: client.id, err }, 'cluster: checking the owner of a client id failed')
    })
  })
  aedes.on('clientDisconnect', (client) => {
    const epoch = epochs.get(client)
    if (epoch === undefined) return
    const current = ctx.clientById(client.id)
    if (current !== undefined && current !== client) return
    // the interval as the DISCONNECT left it (spec 3.14.2.2.2)
    cluster.release(client.id, epoch, sessionLifetimeMs(client)).catch((err: unknown) => {
      ctx.logger.debug({ clientId: client.id, err }, 'cluster: releasing a client id failed (a later claim overrides it)')
    })
  })
  wireClusterWills(aedes, ctx, (client) => epochs.get(client))
}
