/**
 * A dead node's persistent sessions and inbox, taken over so that no message
 * acknowledged to its publisher is lost (README "Cluster", lib/cluster/README.md
 * "QoS 1/2: why nothing acknowledged is lost"). Once a node's lease is gone,
 * one survivor (a lock per dead node) adopts it:
 * 1. `{culex}:adopted:{dead}` names the survivor: from then on every inbox
 *    write meant for the dead node lands in the survivor's inbox (the ROUTE
 *    script follows it), so the dead inbox gets nothing more;
 * 2. each client id the dead node held (its registry record names it as
 *    `node`, or as `last` once released) with a persistent session in Redis
 *    (its record) is claimed
 *    here, its session loaded at the new epoch (the dead node, should it
 *    come back, is fenced) and released again: held here offline, its QoS
 *    1/2 filters become this node's durable routes, and a client that
 *    reconnects anywhere takes it over as usual;
 * 3. every entry left in the dead inbox (read or not before the death) is
 *    queued in the adopted sessions it matches only (this node's own
 *    subscribers got it directly), then the inbox is deleted;
 * 4. the dead node's durable routes go (`d! {node}` on `{culex}:routes`).
 * A node restarting under the same id does steps 2 and 3 for its previous
 * run itself, before it reads its inbox, and clears `{culex}:adopted:{id}`.
 */
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { CLUSTER_PREFIX, leaseKey, ownerKey, sessionHashKey } from './keys.js'
import { compareIds, inboxKey } from './inbox.js'
import { decodeEntry } from './inbox-entry.js'
import { forwardToHolder, movedFrom, movedKey } from './forward.js'
import type { RedisPair } from './redis.js'
import { durableKey, DURABLE_NODES_KEY, ROUTES_CHANNEL } from './routes.js'

export const adoptedKey = (nodeId: string): string => `${CLUSTER_PREFIX}adopted:{${nodeId}}`
/** the adoption lock of a node; a claim of one of its sessions takes it too (orphans.ts) */
export const adoptionLockKey = (nodeId: string): string => `${CLUSTER_PREFIX}adopting:{${nodeId}}`
const lockKey = adoptionLockKey
/**
 * milliseconds a node's lease must have been gone before a survivor adopts
 * it: a node paused, or cut from Redis, for less comes back with its live
 * connections and their wills (an adoption claims every session the node
 * held, live ones included), and after an outage of Redis, when every lease
 * may have run out, the nodes take theirs again before any adopts another.
 * Nothing a client waits for depends on the adoption: a reconnecting client
 * takes its session's entries itself (orphans.ts), and messages for the
 * others wait in the dead inbox, durable.
 */
export const ADOPT_GRACE_MS = 5000
/** milliseconds an adoption may take before another node may start it again */
const LOCK_MS = 30000
const OWNER_PREFIX = ownerKey('')

/** What the broker does for an adoption. */
export interface AdoptionHost {
  /**
   * loads the session of `clientId` here at `epoch` (the Redis store's
   * hydrate); `reconnect`: claimed by its client's own CONNECT
   * (orphans.ts), not adopted for it
   */
  hydrate (clientId: string, epoch: number, reconnect?: boolean): Promise<void>
  /** queues `packet` for those of `clientIds` held here whose subscriptions match it */
  enqueueFor (clientIds: ReadonlySet<string>, packet: IPublishPacket, id: string): Promise<void>
  /** what is left of an adopted session's life (session-expiry.ts' `remainingLifetimeMs` of its record), -1 for never */
  lifetimeMs? (clientId: string): Promise<number>
}

export interface AdoptionRegistry {
  /** 0 when the id's record no longer names `dead` (a client claimed it meanwhile) */
  adoptClaim (clientId: string, dead: string): Promise<number>
  release (clientId: string, epoch: number): Promise<boolean>
}

export class Adoption {
  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly registry: AdoptionRegistry,
    private readonly host: AdoptionHost,
    private readonly logger: Logger
  ) {}

  /**
   * Adopts `dead` (this node's own previous run when it is this node's id);
   * false when another node is at it or the node is alive again.
   */
  async adopt (dead: string): Promise<boolean> {
    const commands = this.redis.commands
    const self = dead === this.nodeId
    // a restarting node waits for a survivor that is adopting its previous run to finish
    const deadline = Date.now() + (self ? LOCK_MS : 0)
    while (await commands.set(lockKey(dead), this.nodeId, 'PX', LOCK_MS, 'NX') === null) {
      if (Date.now() >= deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    try {
      if (!self && await commands.exists(leaseKey(dead)) === 1) return false
      if (!self) await commands.set(adoptedKey(dead), this.nodeId)
      const ids = await this.adoptSessions(dead)
      const drained = await this.drain(dead, ids)
      if (self) {
        await commands.del(adoptedKey(dead))
      } else {
        await commands.del(durableKey(dead))
        await commands.srem(DURABLE_NODES_KEY, dead)
        await this.redis.publish(ROUTES_CHANNEL, `d! ${dead} *`)
      }
      if (ids.size > 0 || drained > 0) this.logger.info({ node: dead, sessions: ids.size, messages: drained }, `cluster: adopted the sessions and inbox of ${self ? 'this node\'s previous run' : `node ${dead}`}`)
      return true
    } finally {
      await commands.del(lockKey(dead)).catch(() => {})
    }
  }

  /** Claims, loads and releases every session `dead` held; returns their ids. */
  private async adoptSessions (dead: string): Promise<Set<string>> {
    const commands = this.redis.commands
    const ids = new Set<string>()
    // the records share one slot, so one master holds them; a SCAN answers for its own server only, so each is asked
    for (const master of this.redis.masters()) {
      let cursor = '0'
      do {
        const [next, keys] = await master.scan(cursor, 'MATCH', `${OWNER_PREFIX}*`, 'COUNT', 1000)
        cursor = next
        const pipeline = master.pipeline()
        for (const key of keys) pipeline.hmget(key, 'node', 'last')
        const owners = await pipeline.exec() ?? []
        keys.forEach((key, i) => {
          const [node, last] = (owners[i]?.[1] ?? []) as Array<string | null>
          if (node === dead || (node === null && last === dead)) ids.add(key.slice(OWNER_PREFIX.length))
        })
      } while (cursor !== '0')
    }
    const adopted = new Set<string>()
    for (const id of ids) {
      // a persistent session has its record (`x:`); a clean one has none to keep
      if (await commands.hexists(sessionHashKey(id), `x:${encodeURIComponent(id)}`) === 0) continue
      // no reconnect: the will of the dead node's connection stays due (wills.ts TAKE)
      const epoch = await this.registry.adoptClaim(id, dead)
      // a client took the session meanwhile, with its entries (orphans.ts)
      if (epoch === 0) continue
      try {
        await this.host.hydrate(id, epoch)
        adopted.add(id)
      } catch (err) {
        // a later claim adopted it in Redis first: its node loads it, and this adoption goes on with the others
        this.logger.info({ clientId: id, err: err instanceof Error ? err.message : String(err) }, 'cluster: a dead node\'s session was claimed by a client during its adoption')
      } finally {
        await this.registry.release(id, epoch)
      }
    }
    return adopted
  }

  /**
   * Queues every entry of `dead`'s inbox in the adopted sessions, and
   * forwards those after what their claims took to the sessions claimed
   * away from it lately (lib/broker/cluster-moves.ts delivers each to its
   * session if it matches, unless it had it), then deletes the inbox;
   * returns how many entries.
   */
  private async drain (dead: string, ids: ReadonlySet<string>): Promise<number> {
    const key = inboxKey(dead)
    const entries = await this.redis.commands.xrangeBuffer(key, '-', '+')
    const moved = [...await movedFrom(this.redis, dead)].filter(([clientId]) => !ids.has(clientId))
    // sent in the inbox's order on one connection, answers awaited together
    const forwards: Array<Promise<unknown>> = []
    for (const [id, fields] of entries) {
      for (const { packet, forClient, id: messageId } of decodeEntry(Buffer.from(id), fields, this.logger)) {
        // a message forwarded for one session goes to it alone
        const into = forClient === undefined ? ids : ids.has(forClient) ? new Set([forClient]) : new Set<string>()
        // with its id: a session that had it (the dead node published it there) skips it
        if (into.size > 0) await this.host.enqueueFor(into, packet, messageId)
        for (const [clientId, taken] of moved) {
          if ((forClient === undefined || forClient === clientId) && compareIds(id.toString(), taken) > 0) forwards.push(forwardToHolder(this.redis, clientId, packet, messageId))
        }
      }
    }
    await Promise.all(forwards)
    await this.redis.commands.del(movedKey(dead))
    if (dead !== this.nodeId) await this.redis.commands.del(key)
    else if (entries.length > 0) await this.redis.commands.xtrim(key, 'MAXLEN', 0)
    return entries.length
  }
}
