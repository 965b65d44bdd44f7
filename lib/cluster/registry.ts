/**
 * The client-id registry: one owner per client id across the cluster, a hash
 * `{node, epoch}` per id. A CONNECT claims the id (CLAIM: the epoch goes up
 * by one per claim, atomically); the node that owned it before is told on its
 * own channel and closes its connection (DISCONNECT 0x8E Session taken over;
 * 3.1.1: closed). Claims are ordered by Redis, so the last claim wins
 * everywhere:
 * - a connection that was live when the next claim ran is closed by that
 *   claim's notice (its node was the previous owner);
 * - one that became live after it is closed by the check each connection
 *   makes once it is live (`verify`: the owner is another node).
 * A node's writes to the registry name the epoch it holds and are refused by
 * the script when a later claim exists (FENCED_RELEASE), so a node paused past
 * its lease cannot undo a newer owner; when it notices (its lease had
 * expired) it re-checks every id it holds and closes the stale connections,
 * as it does when its notice connection comes back (a notice may be lost).
 */
import type { Logger } from 'pino'
import { nodeChannel, ownerKey } from './keys.js'
import type { RedisPair } from './redis.js'
import { Script } from './script.js'
import type { RoutedMessage } from './routes.js'

/**
 * KEYS: owner hash. ARGV: node id, client id, channel prefix.
 * Returns the new epoch; tells the previous owner (another node), or the
 * last one when the id was released (it still holds the offline session),
 * "{epoch} {node} {client id}".
 */
const CLAIM_BODY = `
local previous = redis.call('HGET', KEYS[1], 'node') or redis.call('HGET', KEYS[1], 'last')
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[1])
if previous and previous ~= ARGV[1] then
  redis.call('PUBLISH', ARGV[3] .. previous, epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
end
return epoch
`
const CLAIM = new Script(CLAIM_BODY)

/**
 * CLAIM for a survivor adopting a dead node's session (adoption.ts): no
 * reconnect, so it must not cancel the dead connection's will; only while
 * the record still names the dead node (ARGV[4]), else 0: a client claimed
 * it meanwhile (orphans.ts), and its node has it. `carries`
 * keeps the epoch of the claim before the first of consecutive adoptions,
 * `adopted` how many followed; TAKE (wills.ts) publishes a will of epoch
 * `carries` while the epoch is `carries + adopted`. A client's claim moves
 * the epoch alone, which ends that.
 */
const ADOPT_CLAIM = new Script(`
if (redis.call('HGET', KEYS[1], 'node') or redis.call('HGET', KEYS[1], 'last')) ~= ARGV[4] then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local carries = tonumber(redis.call('HGET', KEYS[1], 'carries') or '-1')
local adopted = tonumber(redis.call('HGET', KEYS[1], 'adopted') or '0')
if carries < 0 or current ~= carries + adopted then
  carries = current
  adopted = 0
end
redis.call('HSET', KEYS[1], 'carries', carries, 'adopted', adopted + 1)
` + CLAIM_BODY)

/**
 * A node gives the id up at disconnect, only if it still owns it at the
 * epoch its connection claimed; `last` names it for the next claim's notice.
 * KEYS: owner hash. ARGV: node id, epoch.
 * Returns {1}, or {0, owner node} when refused (a later claim owns it: the
 * caller is stale).
 */
const FENCED_RELEASE = new Script(`
local owner = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if owner[1] ~= ARGV[1] or owner[2] ~= ARGV[2] then return {0, owner[1] or ''} end
redis.call('HDEL', KEYS[1], 'node')
redis.call('HSET', KEYS[1], 'last', ARGV[1])
return {1}
`)

/**
 * After a lost lease: who owns the id now. An id whose record is gone (Redis
 * lost its data) is claimed back for the node asking. KEYS: owner hash.
 * ARGV: node id. Returns {node, epoch}.
 */
const OWNER_OR_RECLAIM = new Script(`
local owner = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if owner[1] then return {owner[1], tonumber(owner[2])} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[1])
return {ARGV[1], epoch}
`)

const CHANNEL_PREFIX = nodeChannel('')

/** What the cluster needs of the node's own broker. */
export interface LocalClients {
  /** Closes the live connection holding this id, if any: DISCONNECT 0x8E (3.1.1: close). */
  takenOver (clientId: string, byNode: string): void
  /** Publishes a QoS 0 message routed from another node to this node's subscribers. */
  deliver (message: RoutedMessage): void
  /** The session this node held at `epoch` (or before) expired cluster-wide (session-expiry.ts): its copy goes. */
  sessionEnded? (clientId: string, epoch: number): void
}

export class Registry {
  /** the epoch of each id this node holds: the highest it claimed */
  private readonly epochs = new Map<string, number>()
  private local: LocalClients | undefined
  private started = false

  constructor (private readonly redis: RedisPair, readonly nodeId: string, private readonly logger: Logger) {}

  async start (local: LocalClients): Promise<void> {
    this.local = local
    this.redis.notices.on('message', this.onNotice)
    this.redis.notices.on('ready', this.onReconnect)
    await this.redis.notices.subscribe(nodeChannel(this.nodeId))
    this.started = true
  }

  stop (): void {
    this.redis.notices.off('message', this.onNotice)
    this.redis.notices.off('ready', this.onReconnect)
    this.started = false
  }

  /** ids held, for tests and figures */
  held (): number {
    return this.epochs.size
  }

  epochOf (clientId: string): number | undefined {
    return this.epochs.get(clientId)
  }

  /** Claims the id for this node; rejects when Redis does not answer. */
  async claim (clientId: string): Promise<number> {
    const epoch = Number(await CLAIM.run(this.redis.commands, [ownerKey(clientId)], [this.nodeId, clientId, CHANNEL_PREFIX]))
    if (epoch > (this.epochs.get(clientId) ?? 0)) this.epochs.set(clientId, epoch)
    return epoch
  }

  /** A survivor's claim of a session of the dead node `dead` (ADOPT_CLAIM): its will stays due; 0 when the record no longer names `dead`. */
  async adoptClaim (clientId: string, dead: string): Promise<number> {
    const epoch = Number(await ADOPT_CLAIM.run(this.redis.commands, [ownerKey(clientId)], [this.nodeId, clientId, CHANNEL_PREFIX, dead]))
    if (epoch > (this.epochs.get(clientId) ?? 0)) this.epochs.set(clientId, epoch)
    return epoch
  }

  /** Once a connection is live: closes it when another node claimed its id meanwhile. */
  async verify (clientId: string): Promise<void> {
    const [node, epoch] = await this.redis.commands.hmget(ownerKey(clientId), 'node', 'epoch')
    if (node === null || node === undefined || node === this.nodeId) return
    this.supersede(clientId, Number(epoch), node)
  }

  /**
   * The id's last connection here, which claimed it at `epoch`, ended: gives
   * the id up unless a later claim owns it. Returns false when the script
   * refused the write (stale epoch).
   */
  async release (clientId: string, epoch: number): Promise<boolean> {
    if (this.epochs.get(clientId) === epoch) this.epochs.delete(clientId)
    const [done, owner] = await FENCED_RELEASE.run(this.redis.commands, [ownerKey(clientId)], [this.nodeId, epoch]) as [number, string?]
    if (done === 1) return true
    // a refusal between two connections of this node is routine (a local takeover); one by another node is fencing
    const level = owner !== undefined && owner !== '' && owner !== this.nodeId ? 'info' : 'debug'
    this.logger[level]({ clientId, epoch, owner }, 'registry write refused: a later claim owns this client id (stale epoch)')
    return false
  }

  /**
   * After this node's lease had expired (it was paused, or Redis restarted):
   * every id it holds is checked, and the connections another node took
   * meanwhile are closed. Returns how many were closed.
   */
  async recheckAll (): Promise<number> {
    const ids = [...this.epochs.keys()]
    let closed = 0
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500)
      const owners = await Promise.all(batch.map(async (id) => await OWNER_OR_RECLAIM.run(this.redis.commands, [ownerKey(id)], [this.nodeId]) as [string, number]))
      batch.forEach((id, k) => {
        const [node, epoch] = owners[k] as [string, number]
        if (node === this.nodeId) {
          this.epochs.set(id, epoch)
        } else if (this.supersede(id, epoch, node)) {
          closed++
        }
      })
    }
    if (ids.length > 0) this.logger.info({ checked: ids.length, closed }, 'client ids re-checked after the lease was lost')
    return closed
  }

  /**
   * The notice connection came back (a Redis restart, a network cut): a
   * takeover notice published meanwhile was lost, and this node's lease may
   * have survived (Redis' AOF), so no lease loss re-checks the ids. Once
   * its channel is subscribed again (ioredis subscribes again right after
   * 'ready'; the PING's answer comes after that SUBSCRIBE's), every id held
   * is re-checked.
   */
  private readonly onReconnect = (): void => {
    if (!this.started) return
    setImmediate(() => {
      this.redis.notices.ping()
        .then(async () => await this.recheckAll())
        .catch((err: unknown) => { this.logger.warn({ err }, 'cluster: re-checking client ids after a reconnect failed; the next lease loss or reconnect retries') })
    })
  }

  private readonly onNotice = (channel: string, message: string): void => {
    if (!this.started || channel !== nodeChannel(this.nodeId)) return
    const first = message.indexOf(' ')
    const second = message.indexOf(' ', first + 1)
    if (first < 0 || second < 0) return
    const epoch = Number(message.slice(0, first))
    const node = message.slice(first + 1, second)
    const clientId = message.slice(second + 1)
    if (node === this.nodeId) return
    this.supersede(clientId, epoch, node)
  }

  /** A claim at `epoch` by `node` supersedes this node's, unless a later local claim exists. */
  private supersede (clientId: string, epoch: number, node: string): boolean {
    const mine = this.epochs.get(clientId)
    if (mine !== undefined && mine > epoch) return false
    this.epochs.delete(clientId)
    this.logger.debug({ clientId, epoch, node }, 'client id taken over by another node')
    this.local?.takenOver(clientId, node)
    return true
  }
}
