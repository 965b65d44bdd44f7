/**
 * Where the cluster keeps its state in Redis. Every key starts with
 * `culex:`, so a Redis shared with other applications keeps them apart.
 */
const PREFIX = 'culex:'

/** the lease of a node: its instance token, expiring unless renewed */
export const leaseKey = (nodeId: string): string => `${PREFIX}node:${nodeId}`
/** the live nodes: node id scored by its lease's deadline (Redis time, ms) */
export const NODES_KEY = `${PREFIX}nodes`
/** Pub/Sub channel of "join {id}" and "leave {id}" notices */
export const NODES_CHANNEL = `${PREFIX}nodes`
/** the owner of a client id: a hash {node, epoch} */
export const ownerKey = (clientId: string): string => `${PREFIX}client:${clientId}`
/** Pub/Sub channel of one node: takeover notices for the client ids it owned */
export const nodeChannel = (nodeId: string): string => `${PREFIX}to:${nodeId}`
/**
 * The hash of a session, as the Redis store writes it
 * (`lib/persistence/redis-sessions.ts`, a layer above: named here too for
 * the scripts that end a session, `session-expiry.ts`).
 */
export const sessionHashKey = (clientId: string): string => `${PREFIX}session:{${clientId}}`
