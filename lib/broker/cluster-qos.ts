/**
 * The broker's side of QoS 1/2 routing between nodes (lib/cluster/inbox.ts):
 * - a client's QoS 1/2 message goes to the other nodes' inboxes before aedes
 *   publishes it here, so its PUBACK/PUBREC (held until aedes' `published`
 *   hook) means every node that must get it has it; a refusal fails the
 *   publish before any delivery (broker/publish-refusal.ts answers 0x80);
 * - a client's messages stay in its order: one waiting for its inbox writes
 *   holds the client's next ones back (any QoS), so a message with no
 *   remote subscriber never overtakes an earlier one;
 * - the QoS 1/2 filters of the persistent sessions this node's store holds
 *   become the node's durable routes;
 * - a dead node's sessions adopted here (lib/cluster/adoption.ts) are
 *   loaded as a claim loads them, and the messages left in its inbox are
 *   queued for them only (this node's own subscribers got them directly);
 * - a session that moved to another node gets what still reaches this
 *   node for it, forwarded (cluster-moves.ts);
 * - a message from this node's inbox is published here only, with no client
 *   (so it is not routed again), through the same delivery checks as any
 *   (authorizeForward); the inbox acknowledges it once aedes completed the
 *   publish, i.e. once it is queued in Redis for every persistent session
 *   here that it matches.
 */
import type { Aedes, Client, PublishPacket } from 'aedes'
import { beforeClientPublish } from '../aedes-internals.js'
import { clusterSessionsOf } from './store.js'
import type { BrokerContext } from './context.js'
import { remainingLifetimeMs } from '../cluster/session-expiry.js'
import { routedBrokerId } from './cluster-shared.js'
import { windowedPublish } from './routed-publish.js'
import { enqueueFor, sessionMoves } from './cluster-moves.js'
import { routedPacket } from '../cluster/routes.js'
import { nameByRoutedId } from '../cluster/routed-id.js'
import { adoptStoredWill } from './cluster-wills.js'

const NONE: readonly string[] = []

interface DurableFilters {
  watchDurableFilters: (listener: (filter: string, added: boolean) => void) => void
}

function watchesDurableFilters (store: unknown): store is DurableFilters {
  return typeof (store as Partial<DurableFilters> | undefined)?.watchDurableFilters === 'function'
}

/** Installed before wirePublishRefusals, whose handler then answers a refused inbox write. */
export function wireClusterQos (aedes: Aedes, ctx: Pick<BrokerContext, 'cluster' | 'store' | 'clientById' | 'logger'>): void {
  const cluster = ctx.cluster
  if (cluster === undefined) return
  // a message forwarded for one session goes to it alone; one for a session that just left goes on to it (cluster-moves.ts)
  const moves = sessionMoves(aedes, { ...ctx, cluster })
  /** per client, its last message still waiting for its inbox writes */
  const waiting = new WeakMap<Client, Promise<void>>()
  beforeClientPublish(aedes, (packet, client) => {
    const previous = waiting.get(client)
    if (previous === undefined && packet.qos === 0) return undefined
    // sent at once: Redis gets a client's inbox writes in its order (one connection), several in flight
    const sent = packet.qos === 0 ? undefined : cluster.routeDurable(packet)
    // a QoS 2 message published here carries its routed id into the sessions here too: a node a session moves to skips
    // the copy it gets again (cluster/routed-id.ts) [MQTT-4.3.3-10]
    const routed = packet.qos !== 2 || sent === undefined ? sent : sent.then((id) => { nameByRoutedId(packet as { qos: number, brokerId?: string }, aedes.id, id); return id })
    // a session that just left this node no longer matches here, and its new node's route may not be known here yet:
    // forwarded to it, with the id of its routed copy (that node skips one it had) [MQTT-4.3.2-4] [MQTT-4.3.3-8]
    const absent = routed === undefined ? NONE : moves.absentFor(packet.topic)
    const routing = absent.length === 0 ? routed : routed?.then(async (id) => { await moves.forward(absent, routedPacket(packet, packet.qos === 2 ? 2 : 1) as PublishPacket, id) })
    // published after the client's earlier message (whose refusal is its own publisher's answer, not this one's;
    // `previous` never rejects)
    const step: Promise<unknown> = previous === undefined ? routing as Promise<unknown> : routing === undefined ? previous : previous.then<unknown>(() => routing)
    const release = (): void => { if (waiting.get(client) === settled) waiting.delete(client) }
    const settled: Promise<void> = step.then(release, release)
    waiting.set(client, settled)
    return step
  })
  const store = ctx.store()
  // a filter of a session that moved to another node stays a route here a moment longer (cluster-moves.ts)
  if (watchesDurableFilters(store)) store.watchDurableFilters((filter, added) => { sessionMoves(aedes, { ...ctx, cluster }).durableChanged(filter, added) })
  cluster.attachAdoption({
    async hydrate (clientId, epoch, reconnect) {
      await clusterSessionsOf(ctx.store())?.hydrate(clientId, epoch, { clean: false })
      // the dead connection's will is the cluster's to publish, to every node (cluster-wills.ts)
      await adoptStoredWill(ctx, clientId, epoch, reconnect === true).catch((err: unknown) => {
        ctx.logger.warn({ clientId, err }, 'cluster: handing an adopted session\'s will to the cluster failed')
      })
    },
    async enqueueFor (clientIds, packet, id) {
      await enqueueFor(aedes, clientIds, packet as PublishPacket, id)
    },
    async lifetimeMs (clientId) {
      return remainingLifetimeMs(await clusterSessionsOf(ctx.store())?.sessionRecord(clientId), Date.now())
    }
  })
  // marked as routed: the node where it was published added it to the shared groups' streams (cluster-shared.ts)
  const brokerId = routedBrokerId(aedes)
  const publish = windowedPublish(aedes)
  clusterSessionsOf(store)?.redirectQueued?.(async (clientId, packets) => { await moves.redirect(clientId, packets) })
  // the session left, even when the store learns it (a refused write) before the takeover's notice comes
  clusterSessionsOf(store)?.watchRefusedCopies?.((clientId) => { moves.leaving(clientId).catch(() => {}) })
  cluster.attachInbox((packet, meta, done) => {
    if (meta.forClient !== undefined) {
      moves.deliverTo(meta.forClient, packet as PublishPacket, meta.id).then(() => { done() }, done)
      return
    }
    const absent = moves.absentFor(packet.topic)
    // before the publish: a forwarded copy in the same batch is delivered alongside
    moves.published(meta.id)
    // the inbox's own decoded packet: marked in place (a copy per message was a twentieth of the receiving node's time)
    ;(packet as PublishPacket & { brokerId?: string }).brokerId = brokerId
    // a QoS 2 message by its id: a session that had it (this read again, or a copy forwarded) skips it [MQTT-4.3.3-10]
    if (packet.qos === 2) nameByRoutedId(packet as PublishPacket, brokerId, meta.id)
    // no session left lately (nearly always): no promise for this message
    if (absent.length === 0) {
      publish(packet as PublishPacket, done)
      return
    }
    publish(packet as PublishPacket, (err) => {
      if (err) done(err)
      else moves.forward(absent, packet as PublishPacket, meta.id).then(() => { done() }, done)
    })
  })
}
