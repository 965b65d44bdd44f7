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
 * - a message from this node's inbox is published here only, with no client
 *   (so it is not routed again), through the same delivery checks as any
 *   (authorizeForward); the inbox acknowledges it once aedes completed the
 *   publish, i.e. once it is queued in Redis for every persistent session
 *   here that it matches.
 */
import type { Aedes, Client, PublishPacket } from 'aedes'
import { beforeClientPublish, persistenceOf, queuedPacket } from '../aedes-internals.js'
import { clusterSessionsOf } from './store.js'
import type { BrokerContext } from './context.js'
import { remainingLifetimeMs } from '../cluster/session-expiry.js'
import { routedBrokerId } from './cluster-shared.js'
import { windowedPublish } from './routed-publish.js'

interface DurableFilters {
  watchDurableFilters: (listener: (filter: string, added: boolean) => void) => void
}

function watchesDurableFilters (store: unknown): store is DurableFilters {
  return typeof (store as Partial<DurableFilters> | undefined)?.watchDurableFilters === 'function'
}

/** the store's side of aedes' queueing for offline sessions */
interface Enqueue {
  subscriptionsByTopic (topic: string): Promise<Array<{ clientId: string }>>
  outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: Record<string, unknown>): Promise<void>
}

/** Installed before wirePublishRefusals, whose handler then answers a refused inbox write. */
export function wireClusterQos (aedes: Aedes, ctx: Pick<BrokerContext, 'cluster' | 'store'>): void {
  const cluster = ctx.cluster
  if (cluster === undefined) return
  /** per client, its last message still waiting for its inbox writes */
  const waiting = new WeakMap<Client, Promise<void>>()
  beforeClientPublish(aedes, (packet, client) => {
    const previous = waiting.get(client)
    if (previous === undefined && packet.qos === 0) return undefined
    // sent at once: Redis gets a client's inbox writes in its order (one connection), several in flight
    const routing = packet.qos === 0 ? undefined : cluster.routeDurable(packet)
    // published after the client's earlier message (whose refusal is its own publisher's answer, not this one's;
    // `previous` never rejects)
    const step = previous === undefined ? routing as Promise<void> : routing === undefined ? previous : previous.then(() => routing)
    const release = (): void => { if (waiting.get(client) === settled) waiting.delete(client) }
    const settled: Promise<void> = step.then(release, release)
    waiting.set(client, settled)
    return step
  })
  const store = ctx.store()
  if (watchesDurableFilters(store)) store.watchDurableFilters((filter, added) => { cluster.durableChanged(filter, added) })
  cluster.attachAdoption({
    async hydrate (clientId, epoch) {
      await clusterSessionsOf(ctx.store())?.hydrate(clientId, epoch, { clean: false })
    },
    async enqueueFor (clientIds, packet) {
      const persistence = persistenceOf(aedes) as unknown as Enqueue
      const subs = (await persistence.subscriptionsByTopic(packet.topic)).filter((s) => clientIds.has(s.clientId))
      if (subs.length > 0) await persistence.outgoingEnqueueCombi(subs, queuedPacket(aedes, { ...packet, payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload) }))
    },
    async lifetimeMs (clientId) {
      return remainingLifetimeMs(await clusterSessionsOf(ctx.store())?.sessionRecord(clientId), Date.now())
    }
  })
  // marked as routed: the node where it was published added it to the shared groups' streams (cluster-shared.ts)
  const brokerId = routedBrokerId(aedes)
  const publish = windowedPublish(aedes)
  cluster.attachInbox((packet, done) => {
    // the inbox's own decoded packet: marked in place (a copy per message was a twentieth of the receiving node's time)
    ;(packet as PublishPacket & { brokerId?: string }).brokerId = brokerId
    publish(packet as PublishPacket, done)
  })
}
