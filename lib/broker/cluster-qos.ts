/**
 * The broker's side of QoS 1/2 routing between nodes (lib/cluster/inbox.ts):
 * the QoS 1/2 filters of the persistent sessions this node's store holds
 * become the node's durable routes, and a message from this node's inbox is
 * published here only, with no client (so it is not routed again), through
 * the same delivery checks as any message (authorizeForward); the inbox
 * acknowledges it once aedes completed the publish, i.e. once it is queued
 * in Redis for every persistent session here that it matches.
 */
import type { Aedes, PublishPacket } from 'aedes'
import type { BrokerContext } from './context.js'

interface DurableFilters {
  watchDurableFilters: (listener: (filter: string, added: boolean) => void) => void
}

function watchesDurableFilters (store: unknown): store is DurableFilters {
  return typeof (store as Partial<DurableFilters> | undefined)?.watchDurableFilters === 'function'
}

export function wireClusterQos (aedes: Aedes, ctx: Pick<BrokerContext, 'cluster' | 'store'>): void {
  const cluster = ctx.cluster
  if (cluster === undefined) return
  const store = ctx.store()
  if (watchesDurableFilters(store)) store.watchDurableFilters((filter, added) => { cluster.durableChanged(filter, added) })
  cluster.attachInbox(async (packet) => {
    await new Promise<void>((resolve, reject) => {
      aedes.publish(packet as PublishPacket, (err) => { if (err) reject(err); else resolve() })
    })
  })
}
