/**
 * The store as the broker uses it: aedes' persistence interface, plus what
 * culex's own stores (lib/persistence) offer beyond it, each optional so that
 * aedes' in-memory store works too.
 */
import type { ClusterSessions, CulexPersistence } from '../persistence/index.js'
import type { ShareStore } from '../shared/store.js'

/** The parts of the store culex calls beyond what aedes does. */
export interface StoreExtras {
  /** where shared subscriptions keep memberships and group logs */
  sharedStore?: () => ShareStore
  /** drops a client's inbound QoS 2 state (aedes 1.2.0's name for it) */
  cleanIncoming?: (client: { id: string }) => Promise<void>
  incomingGetPacket?: (client: { id: string }, packet: { messageId: number }) => Promise<unknown>
  subscriptionsByTopic?: (topic: string) => Promise<unknown[]>
  /** culex's stores answer synchronously whether subscriptionsByTopic would find anything */
  hasSubscriptionsFor?: (topic: string) => boolean
  /** ... and whether it could find anything for any topic */
  holdsSubscriptions?: () => boolean
  /** was this message re-sent from a session queue with the packet id it had? (DUP) */
  wasInFlight?: (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined) => boolean
  /** is this a routed QoS 2 message the session already had, which its enqueue skipped? (the Redis store) */
  routedDuplicate?: (clientId: string, packet: { brokerId?: string }) => boolean
  /** was this routed QoS 2 message offered to this connection before? (the Redis store; true: not to be sent again) */
  routedOffered?: (client: object, packet: { brokerId?: string }) => boolean
}

export function isCulexStore (store: unknown): store is CulexPersistence {
  return typeof (store as { putSession?: unknown } | undefined)?.putSession === 'function'
}

/** A store whose sessions are the cluster's (the Redis store), loaded at each claim. */
export function clusterSessionsOf (store: unknown): ClusterSessions | undefined {
  const s = store as Partial<ClusterSessions> | undefined
  return typeof s?.hydrate === 'function' && typeof s.sessionRecord === 'function' && typeof s.handOver === 'function' ? s as ClusterSessions : undefined
}

export function sharedStoreOf (store: StoreExtras | undefined): ShareStore | undefined {
  return typeof store?.sharedStore === 'function' ? store.sharedStore() : undefined
}

/**
 * Whether the store still holds the client's inbound QoS 2 message `packetId`
 * (from an earlier connection: a PUBREL for an id it does not hold gets
 * PUBCOMP 0x92); true when the store cannot tell.
 */
export async function holdsIncoming (store: StoreExtras | undefined, clientId: string, packetId: number): Promise<boolean> {
  if (!store?.incomingGetPacket) return true
  try {
    return (await store.incomingGetPacket({ id: clientId }, { messageId: packetId })) != null
  } catch {
    return false
  }
}
