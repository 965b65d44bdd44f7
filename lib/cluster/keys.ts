/**
 * Where the cluster keeps its state in Redis. The coordination state (leases,
 * live set, registry, routes, inboxes, wills, expiry clocks, markers, locks)
 * and the Pub/Sub channels start with `{culex}:`: one Redis Cluster hash tag,
 * so every script that touches several of them runs in one slot. The data of
 * one entity (a session, a retained topic, a shared group's stream) starts
 * with `culex:` and carries the entity's own tag (`culex:session:{<id>}`), so
 * it spreads over a Redis Cluster's masters; no script touches both kinds
 * (lib/cluster/README.md, "Keys and channels"). Either prefix keeps culex's
 * keys apart in a Redis shared with other applications.
 */
export const CLUSTER_PREFIX = '{culex}:'
/** the prefix of the per-entity keys, each followed by its entity's hash tag */
export const ENTITY_PREFIX = 'culex:'
const PREFIX = CLUSTER_PREFIX

/** the lease of a node: its instance token, expiring unless renewed */
export const leaseKey = (nodeId: string): string => `${PREFIX}node:${nodeId}`
/** the live nodes: node id scored by its lease's deadline (Redis time, ms) */
export const NODES_KEY = `${PREFIX}nodes`
/** Pub/Sub channel of "join {id}" and "leave {id}" notices */
export const NODES_CHANNEL = `${PREFIX}nodes`
/** the owner of a client id: a hash {node, epoch, ...} */
export const ownerKey = (clientId: string): string => `${PREFIX}client:${clientId}`
/** Pub/Sub channel of one node: takeover notices for the client ids it owned */
export const nodeChannel = (nodeId: string): string => `${PREFIX}to:${nodeId}`
/**
 * The hash of a session, as the Redis store writes it
 * (`lib/persistence/redis-sessions.ts`, a layer above: named here too for
 * the scripts that end a session, `session-expiry.ts`).
 */
export const sessionHashKey = (clientId: string): string => `${ENTITY_PREFIX}session:{${clientId}}`
/** the registry record's field naming the epoch at which the id's session last expired (session-expiry.ts) */
export const ENDED_FIELD = 'ended'
