/**
 * A routed QoS 1/2 message for one session, forwarded to the node that
 * holds the session now: an inbox entry of that one message (`m`), then the
 * client id in a field `c` and the message's id (`u`, as ROUTE gave it:
 * route-batch.ts), which that node delivers to that session only
 * (lib/broker/cluster-moves.ts). A node forwards what reaches its inbox, in
 * the moments after a session left it, for that session: the publisher's
 * node had not seen the session's new node's route yet.
 */
import type { IPublishPacket } from 'mqtt-packet'
import { CLUSTER_PREFIX, ownerKey } from './keys.js'
import type { RedisPair } from './redis.js'
import { clusterWriteRefused } from './refusal.js'
import { Script } from './script.js'
import { encodeRouted } from './wire.js'

/**
 * the sessions claimed away from a node within MOVED_TTL_MS: client id →
 * the last entry of that node's inbox the claim took itself ('0-0': none).
 * Should the node die before it forwarded what still came for them, its
 * adoption forwards its inbox's later entries to them (adoption.ts).
 */
export const movedKey = (nodeId: string): string => `${CLUSTER_PREFIX}moved:{${nodeId}}`
/** milliseconds a node's record of the sessions claimed away from it lasts after the last one: beyond its lease and the adoption's grace */
const MOVED_TTL_MS = 60000

/** The session `clientId` was claimed away from `from` (now by `to`, which no longer is a node it moved away from). */
export async function recordMove (redis: RedisPair, from: string, to: string, clientId: string, taken = '0-0'): Promise<void> {
  await redis.commands.multi().hset(movedKey(from), clientId, taken).pexpire(movedKey(from), MOVED_TTL_MS).hdel(movedKey(to), clientId).exec()
}

/** The sessions claimed away from `nodeId` lately, each with the last entry its claim took. */
export async function movedFrom (redis: RedisPair, nodeId: string): Promise<Map<string, string>> {
  return new Map(Object.entries(await redis.commands.hgetall(movedKey(nodeId))))
}

/** the field of an inbox entry naming the one session it is for */
export const TARGET_FIELD = 'c'
/** the field of an entry with the message's id, the same in every inbox it went to and when forwarded */
export const ID_FIELD = 'u'

/**
 * KEYS: the client id's registry record. ARGV: the message, the client id,
 * the message's id. The session's holder (`node`, or `last` once
 * released), followed through `{culex}:adopted:{node}` as ROUTE does; its
 * inbox gets the entry. Returns that node, or false when no node holds the
 * session.
 */
const FORWARD = new Script(`
local to = redis.call('HGET', KEYS[1], 'node') or redis.call('HGET', KEYS[1], 'last')
if not to then return false end
for _ = 1, 3 do
  local by = redis.call('GET', '${CLUSTER_PREFIX}adopted:{' .. to .. '}')
  if not by then break end
  to = by
end
redis.call('XADD', '${CLUSTER_PREFIX}inbox:{' .. to .. '}', '*', 'm', ARGV[1], '${TARGET_FIELD}', ARGV[2], '${ID_FIELD}', ARGV[3])
return to
`)

/**
 * Adds `packet` (its id `id`) for `clientId` to the inbox of the node
 * holding its session; resolves with that node (undefined: none holds it),
 * rejects with a ClusterWriteRefused when Redis did not take it.
 */
export async function forwardToHolder (redis: RedisPair, clientId: string, packet: IPublishPacket, id: string): Promise<string | undefined> {
  try {
    const to = await FORWARD.run(redis.commands, [ownerKey(clientId)], [encodeRouted(packet), clientId, id])
    return typeof to === 'string' ? to : undefined
  } catch (err) {
    throw clusterWriteRefused(err, 'forwarded message')
  }
}

/** What an inbox entry says of one of its messages besides the message: its id, the one session it was forwarded for. */
export interface EntryMeta {
  forClient?: string
  /** '' for a message written before ids (an older node) */
  id: string
}
