/**
 * What culex's aedes hooks share: one context per broker (nothing in it is per
 * connection), built by createBroker (lib/broker.ts). Each hook takes only the
 * part it needs (a Pick of this), so it can be tested against a stub.
 */
import type { Client } from 'aedes'
import type { Logger } from 'pino'
import type { SecurityPolicy } from '../auth/policy.js'
import type { Connection } from '../protocol/connection.js'
import type { EncodeOnce } from '../protocol/outbound/encode-once.js'
import type { SessionOwnership } from '../protocol/session-claim.js'
import type { SharedSubscriptions } from '../shared/dispatcher.js'
import type { StoreExtras } from './store.js'
import type { ClusterView } from '../cluster/index.js'

/** What a session's claim, its takeover and its publishes ask of the cluster's shared groups (cluster-shared.ts). */
export interface ClusterSharedSessions {
  /** the claimed session's memberships become this node's (Clean Start deletes them) */
  adopt (clientId: string, clean: boolean): Promise<void>
  /** another node took the session: no member here any more */
  handOver (clientId: string): void
  /** the message of this payload was not stored for its groups: the error its publisher is answered with */
  refused (payload: unknown): Error | undefined
}

/** Every MQTT 5 client is sent elsewhere (spec 4.11). */
export interface Redirect {
  serverReference: string
  /** CONNACK 0x9D (Server moved) rather than 0x9C (Use another server) */
  moved: boolean
}

export interface BrokerContext {
  readonly logger: Logger
  /** password file, ACL, anonymous access; undefined lets every client in */
  readonly security: SecurityPolicy | undefined
  readonly redirect: Redirect | undefined
  readonly sessionOwnership: SessionOwnership
  /** live QoS 0 messages encoded once for all their subscribers */
  readonly encodeOnce: EncodeOnce
  /** shared subscriptions, once set up (they need aedes, which is made after its hooks) */
  shared: SharedSubscriptions | undefined
  /** the store aedes uses */
  store (): StoreExtras | undefined
  /** the gateway of an aedes client, from its stream (`client.conn`) */
  gatewayOf (client: { conn: unknown }): Connection | undefined
  /** the client aedes holds under this id (connecting or connected) */
  clientById (id: string): Client | undefined
  /** the cluster this node is part of; undefined for a single node */
  readonly cluster: ClusterView | undefined
  /** in a cluster, a session's shared memberships follow it to the node that claims it (cluster-shared.ts) */
  clusterShared?: ClusterSharedSessions
}
