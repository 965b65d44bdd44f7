/**
 * A culex node's part in a cluster on Redis (README "Cluster (in progress)"):
 * the Redis connections, the node's lease and the view of the other nodes
 * (membership.ts), the client-id registry with takeover and fencing
 * (registry.ts), routing between nodes (routes.ts; QoS 1/2 through each
 * node's inbox, inbox.ts; a dead node's sessions adopted, adoption.ts), retained
 * messages cluster-wide (retained.ts), the wills of dead nodes and Will Delay
 * on one node (wills.ts), Session Expiry on one node (session-expiry.ts). Made before the broker (so an unreachable Redis stops the
 * start), joined once the listeners are bound (the default node id names the
 * MQTT port).
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { describeDurability, losesNothing, readDurability, requireFsync } from './durability.js'
import { Figures, type NodeFigures } from './figures.js'
import { ownerKey } from './keys.js'
import { Membership } from './membership.js'
import { openRedis, redactUrl, type RedisPair } from './redis.js'
import { Registry, type LocalClients } from './registry.js'
import { ClusterRetained, type ApplyRetained } from './retained.js'
import type { StoredPacket } from '../persistence/types.js'
import { DURABLE_NODES_KEY, RELOAD_MS, Routes, routedPacket, type RoutedMessage } from './routes.js'
import { Inbox, type DeliverQueued } from './inbox.js'
import { ADOPT_GRACE_MS, Adoption, type AdoptionHost } from './adoption.js'
import { OrphanClaims } from './orphans.js'
import { forwardToHolder, recordMove } from './forward.js'
import { ClusterWills, type ClusterWill, type WillsHost } from './wills.js'
import { ClusterShareStreams } from './shared-stream.js'
import { ClusterSessionExpiry } from './session-expiry.js'

/** milliseconds a claim waits at most for a session's holder's inbox (or its lease to end) before claiming */
const ADOPTION_WAIT_MS = 15000

export { redactUrl } from './redis.js'
export type { LocalClients } from './registry.js'
export type { RoutedMessage } from './routes.js'
export type { DeliverQueued } from './inbox.js'
export type { AdoptionHost } from './adoption.js'
export type { ApplyRetained } from './retained.js'
export type { NodeFigures } from './figures.js'
export type { ClusterWill, PublishWill, WillsHost } from './wills.js'
export type { ClusterShareStreams } from './shared-stream.js'

/** What the broker and the edge see of the cluster. */
export interface ClusterView {
  /** '' until joined */
  readonly nodeId: string
  /** false while Redis cannot be reached (or before the join): new CONNECTs are refused */
  available (): boolean
  /** why it is unavailable, for /readyz */
  problem (): string | undefined
  /** the live nodes, this one included */
  nodes (): string[]
  /** Claims a client id for this node (the previous owner is told); resolves with the claim's epoch. */
  claim (clientId: string): Promise<number>
  /** Once a connection is live: closes it (LocalClients.takenOver) if another node claimed its id meanwhile. */
  verify (clientId: string): Promise<void>
  /**
   * The id's last connection here, claimed at `epoch`, ended: a write the
   * registry refuses when the epoch is stale. Taken, it starts the session's
   * clock (`lifetimeMs` as session-expiry.ts' `sessionLifetimeMs`).
   */
  release (clientId: string, epoch: number, lifetimeMs?: number): Promise<boolean>
  /** A connection that claimed its id at `epoch` is live here: its session's clock starts if this node dies. */
  sessionLive (clientId: string, epoch: number, lifetimeMs: number): void
  /** how the registry closes this node's connections, and where routed messages go */
  attachClients (local: LocalClients): void
  /** a live subscription to `filter` began / ended on this node (routes.ts) */
  subscribed (filter: string): void
  unsubscribed (filter: string): void
  /** Sends a QoS 0 message to the other nodes with a matching subscription; returns how many. */
  route (message: RoutedMessage): number
  /** a persistent session here gained (true) or lost a QoS 1/2 subscription to `filter` (the node's durable routes) */
  durableChanged (filter: string, added: boolean): void
  /**
   * Adds a QoS 1/2 message to the inbox of every other node with a matching
   * live subscriber or persistent session (inbox.ts); resolves with its id
   * ('' when it went to no node) once Redis has them all, rejects with a
   * ClusterWriteRefused otherwise.
   */
  routeDurable (message: RoutedMessage & { qos: number }): Promise<string>
  /** whether any other node has a subscriber or persistent session matching `topic` (0x10) */
  routesTo (topic: string): boolean
  /** where this node's inbox goes (set before the join) */
  attachInbox (deliver: DeliverQueued): void
  /** Adds a routed QoS 1/2 message for one session to the inbox of the node holding it (forward.ts); resolves with that node. */
  forwardTo (clientId: string, packet: IPublishPacket, id: string): Promise<string | undefined>
  /** whether this node claimed `clientId` last (its session may still be loading here) */
  claimedHere (clientId: string): boolean
  /** Resolves once every entry in this node's inbox now was published here (a session taken over is handed over after it). */
  inboxCaughtUp (): Promise<void>
  /** how this node takes a dead node's sessions and inbox over (set before the join: adoption.ts) */
  attachAdoption (host: AdoptionHost): void
  /**
   * How a cluster-wide retained change reaches this node's own store (set
   * before the join, which fills that store from Redis).
   */
  attachRetained (apply: ApplyRetained): void
  /** Writes a retained change ($ topics excepted) to Redis, announced to every node; resolves once Redis has it. */
  storeRetained (packet: StoredPacket): Promise<void>
  /** What this node counts, written to Redis with every renewal of its lease (set before the join). */
  reportFigures (read: () => NodeFigures): void
  /** Every figure summed over the live nodes (figures.ts). */
  totals (): Promise<NodeFigures>
  /** How this node publishes the wills whose time came (dead nodes' and delayed ones), set before the join (wills.ts). */
  attachWills (host: WillsHost): void
  /** A connection with a will, its id claimed at `epoch`, became live: the will is kept in Redis for the survivors. */
  holdWill (clientId: string, epoch: number, will: ClusterWill, delayMs: number): void
  /** That connection ended with its will published here at once, or discarded. */
  dropWill (clientId: string, epoch: number): void
  /** That connection ended and its will is due in `delayMs`: true once the cluster times it (this node must not). */
  deferWill (clientId: string, epoch: number, delayMs: number): Promise<boolean>
  /** A session adopted here at `epoch` held a will of its dead connection: true when the cluster had no record of it and now times it (wills.ts). */
  adoptStoredWill (clientId: string, epoch: number, will: ClusterWill, delayMs: number): Promise<boolean>
  /** `use` gets the streams of the cluster's shared subscription groups (shared-stream.ts) once joined (set before the join) */
  attachShared (use: (streams: ClusterShareStreams) => void): void
  /** `listener` hears of every node that leaves (stopped, or its lease ran out), from the join on */
  onNodeLeft (listener: (nodeId: string) => void): void
}

export interface JoinOptions {
  nodeId: string
  leaseMs?: number
  renewMs?: number
  /** entries a shared group's stream keeps waiting at most */
  sharedMaxQueued?: number
  /** what a full group queue does with a new message */
  sharedOverflow?: 'drop-oldest' | 'refuse'
}

/**
 * `{host name}-{port}`: stable across restarts of a node on the same port,
 * and unique among nodes, which cannot share a host and a port. Characters a
 * node id may not hold become '-'.
 */
export function defaultNodeId (host: string, port: number): string {
  return `${host.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50)}-${port}`
}

export function localHostName (): string {
  return hostname()
}

export class ClusterNode implements ClusterView {
  private membership: Membership | undefined
  private registry: Registry | undefined
  private routes: Routes | undefined
  private local: LocalClients | undefined
  private retained: ClusterRetained | undefined
  private applyRetained: ApplyRetained | undefined
  private figures: Figures | undefined
  private readFigures: (() => NodeFigures) | undefined
  private wills: ClusterWills | undefined
  private expiry: ClusterSessionExpiry | undefined
  private willsHost: WillsHost | undefined
  private inbox: Inbox | undefined
  private deliverQueued: DeliverQueued | undefined
  private adoptionHost: AdoptionHost | undefined
  private adoptionTimer: NodeJS.Timeout | undefined
  /** nodes seen without a lease, since when (adoption waits ADOPT_GRACE_MS) */
  private readonly deadSince = new Map<string, number>()
  private streams: ClusterShareStreams | undefined
  private orphans: OrphanClaims | undefined
  private useStreams: ((streams: ClusterShareStreams) => void) | undefined
  private readonly leftListeners: Array<(nodeId: string) => void> = []

  private constructor (private readonly redis: RedisPair, private readonly logger: Logger, readonly url: string) {}

  /**
   * Connects to Redis and logs what a Redis crash or power loss can lose
   * with its persistence settings (durability.ts); rejects with
   * CULEX_ERR_CLUSTER_UNREACHABLE, and with `fsync` CULEX_ERR_CLUSTER_NOT_DURABLE
   * unless Redis has appendonly yes and appendfsync always.
   */
  static async connect (url: string, logger: Logger, options: { fsync?: boolean } = {}): Promise<ClusterNode> {
    const redis = await openRedis(url)
    const log = logger.child({ module: 'cluster' })
    // on a Redis Cluster each master keeps its own settings: the weakest one says what can be lost
    const each = await Promise.all(redis.masters().map(async (master) => await readDurability(master)))
    const durability = each.find((d) => !losesNothing(d)) ?? each[0] ?? await readDurability(redis.commands)
    log[losesNothing(durability) ? 'info' : 'warn']({ redis: redactUrl(url), durability }, describeDurability(durability))
    if (options.fsync === true) {
      try {
        requireFsync(durability, redactUrl(url))
      } catch (err) {
        await redis.close()
        throw err
      }
    }
    return new ClusterNode(redis, log, url)
  }

  /** the connection for commands and scripts, which the node's Redis store shares (lib/persistence/redis.ts) */
  get commands (): RedisPair['commands'] {
    return this.redis.commands
  }

  get nodeId (): string {
    return this.membership?.nodeId ?? ''
  }

  /** Takes the node's lease; rejects with CULEX_ERR_CLUSTER_NODE_ID_IN_USE. */
  async join (options: JoinOptions): Promise<void> {
    const membership = new Membership({ redis: this.redis, logger: this.logger, ...options })
    const registry = new Registry(this.redis, options.nodeId, this.logger)
    const local = this.local ?? { takenOver () {}, deliver () {} }
    await registry.start(local)
    await membership.start()
    const routes = new Routes(this.redis, options.nodeId, this.logger, (message) => { local.deliver(message) })
    // the adoption of this node's previous run below announces durable routes
    this.routes = routes
    await routes.start(() => membership.nodes())
    const expiry = new ClusterSessionExpiry(this.redis, options.nodeId, this.logger, membership.leaseMs, membership.renewMs)
    // the node that held an expired session drops its copy (others are told as by a takeover)
    await expiry.start(() => membership.nodes(), {
      expiredHere: (clientId, epoch) => { this.local?.sessionEnded?.(clientId, epoch) },
      ended: (clientId) => {
        this.streams?.sessionEnded(clientId).catch((err: unknown) => { this.logger.warn({ err, clientId }, 'cluster: settling the shared messages of an expired session failed') })
      }
    })
    // before the adoption below: an adopted session's will the cluster did not hold is handed to it (adoptStoredWill)
    const wills = new ClusterWills(this.redis, options.nodeId, this.logger, membership.leaseMs, membership.renewMs)
    this.wills = wills
    const adoptionHost = this.adoptionHost
    // an adopted session is released offline here at a new epoch: its clock starts again from its record
    const adoptionRegistry = {
      adoptClaim: async (clientId: string, dead: string) => await registry.adoptClaim(clientId, dead),
      release: async (clientId: string, epoch: number) => {
        const done = await registry.release(clientId, epoch)
        if (done) await expiry.ended(clientId, epoch, await adoptionHost?.lifetimeMs?.(clientId) ?? -1)
        return done
      }
    }
    const adoption = adoptionHost === undefined ? undefined : new Adoption(this.redis, options.nodeId, adoptionRegistry, adoptionHost, this.logger)
    // a previous run of this node (killed) left sessions and inbox entries: taken over before the inbox is read
    await adoption?.adopt(options.nodeId).catch((err: unknown) => { this.logger.warn({ err }, 'cluster: adopting the sessions of this node\'s previous run failed') })
    this.orphans = new OrphanClaims(this.redis, options.nodeId, this.logger)
    const inbox = new Inbox(this.redis, options.nodeId, this.logger, this.deliverQueued ?? ((_packet, _meta, done) => { done() }))
    await inbox.start()
    this.inbox = inbox
    if (adoption !== undefined) this.sweepDead(adoption, () => membership.nodes())
    const retained = new ClusterRetained(this.redis, this.logger)
    await retained.start(this.applyRetained ?? (async () => {}))
    if (this.willsHost !== undefined) wills.attach(this.willsHost)
    await wills.start(() => membership.nodes())
    membership.on('join', (id) => { routes.nodeJoined(id) })
    membership.on('leave', (id) => {
      routes.nodeLeft(id)
      for (const listener of this.leftListeners) listener(id)
      wills.nodeLeft(id)
      expiry.nodeLeft(id)
      if (adoption === undefined) return
      this.deadSince.set(id, Date.now())
      let tries = 0
      const adopt = (): void => {
        if (membership.nodes().includes(id)) return
        // a claim taking one of its sessions (orphans.ts) holds the lock a moment: tried again soon, not at the next sweep
        adoption.adopt(id).then((done) => { if (!done && ++tries < 5) setTimeout(adopt, 1000).unref() })
          .catch((err: unknown) => { this.logger.warn({ err, node: id }, 'cluster: adopting a dead node\'s sessions failed; the next sweep retries') })
      }
      setTimeout(adopt, ADOPT_GRACE_MS).unref()
    })
    // after a pause or a Redis restart, what this node holds may have been taken meanwhile, and its routes lost
    membership.on('leaseLost', () => {
      // first: the registry's re-check below may claim back ids Redis lost, with new epochs
      wills.restore().catch((err: unknown) => { this.logger.warn({ err }, 'cluster: writing the wills again failed; next lease loss retries') })
      registry.recheckAll().catch((err: unknown) => { this.logger.warn({ err }, 'cluster: re-checking client ids failed; next lease loss retries') })
      routes.republish().catch((err: unknown) => { this.logger.warn({ err }, 'cluster: writing the routes again failed; next lease loss retries') })
      retained.reload().catch((err: unknown) => { this.logger.warn({ err }, 'cluster: reading the retained messages again failed; next lease loss retries') })
    })
    const streams = new ClusterShareStreams(this.redis, options.nodeId, this.logger, { max: options.sharedMaxQueued ?? 100000, overflow: options.sharedOverflow ?? 'drop-oldest' }, membership.leaseMs, membership.renewMs)
    await streams.start(() => membership.nodes())
    membership.on('leave', (id) => { streams.nodeLeft(id) })
    this.streams = streams
    this.useStreams?.(streams)
    this.registry = registry
    this.routes = routes
    this.retained = retained
    this.wills = wills
    this.expiry = expiry
    const figures = new Figures(this.redis, options.nodeId, this.logger, membership.leaseMs, membership.renewMs)
    if (this.readFigures !== undefined) figures.start(this.readFigures)
    this.figures = figures
    this.membership = membership
    this.logger.info({ nodeId: options.nodeId, redis: redactUrl(this.url), redisCluster: this.redis.cluster, nodes: membership.nodes() }, `joined the cluster as node ${options.nodeId}${this.redis.cluster ? ' (on a Redis Cluster)' : ''}`)
  }

  available (): boolean {
    return this.membership?.available() ?? false
  }

  problem (): string | undefined {
    return this.membership === undefined ? 'not joined the cluster yet' : this.membership.problem()
  }

  nodes (): string[] {
    return this.membership?.nodes() ?? []
  }

  async claim (clientId: string): Promise<number> {
    if (this.registry === undefined) throw new Error('not joined the cluster yet')
    const holder = async (): Promise<string | undefined> => {
      const owner = await this.redis.commands.hmget(ownerKey(clientId), 'node', 'last')
      return owner[0] ?? owner[1] ?? undefined
    }
    const before = await holder()
    // entries already in the holder's inbox first; a holder whose lease ended is dead: this claim takes them itself (orphans.ts)
    if (before !== undefined && before !== this.nodeId && this.inbox !== undefined && this.orphans !== undefined) {
      const registry = this.registry
      const state = await this.orphans.waitForHolder(before, ADOPTION_WAIT_MS)
      if (state === 'timeout') this.logger.warn({ clientId, node: before }, 'cluster: the previous node of a claimed session did not catch up with its inbox in time; messages still there may miss the session')
      if (state === 'dead' && this.adoptionHost !== undefined) {
        const epoch = await this.orphans.claimFromDead(clientId, before, async () => await registry.claim(clientId), this.adoptionHost)
        if (epoch !== undefined) return epoch
      }
    }
    const previous = before === undefined ? undefined : await holder()
    const epoch = await this.registry.claim(clientId)
    // should the holder die before it forwarded what still comes for the session, its adoption does (adoption.ts)
    if (previous !== undefined && previous !== this.nodeId) await recordMove(this.redis, previous, this.nodeId, clientId)
    // then what reached the holder until the claim: it hands the session over once it caught up (inbox.ts)
    if (previous === this.nodeId) await this.inbox?.caughtUp()
    else if (previous !== undefined && this.nodes().includes(previous)) await this.inbox?.drainedOf(previous)
    return epoch
  }

  async verify (clientId: string): Promise<void> {
    await this.registry?.verify(clientId)
  }

  async release (clientId: string, epoch: number, lifetimeMs = -1): Promise<boolean> {
    const done = await (this.registry?.release(clientId, epoch) ?? Promise.resolve(true))
    // refused: the session is a later claim's, whose own end starts its clock; this node's record of it goes
    if (lifetimeMs >= 0) await this.expiry?.ended(clientId, epoch, done ? lifetimeMs : -1)
    return done
  }

  sessionLive (clientId: string, epoch: number, lifetimeMs: number): void {
    if (lifetimeMs >= 0) this.expiry?.connected(clientId, epoch, lifetimeMs)
  }

  attachClients (local: LocalClients): void {
    this.local = local
  }

  subscribed (filter: string): void {
    this.routes?.subscribed(filter)
  }

  unsubscribed (filter: string): void {
    this.routes?.unsubscribed(filter)
  }

  route (message: RoutedMessage): number {
    return this.routes?.route(message) ?? 0
  }

  durableChanged (filter: string, added: boolean): void {
    this.routes?.durableChanged(filter, added)
  }

  // not async: the call's own promise, without one more per message on the publishing path
  routeDurable (message: RoutedMessage & { qos: number }): Promise<string> {
    const nodes = this.routes?.durableNodes(message.topic)
    if (nodes === undefined || nodes.size === 0 || this.inbox === undefined) return Promise.resolve('')
    return this.inbox.send(nodes, routedPacket(message, message.qos === 2 ? 2 : 1))
  }

  routesTo (topic: string): boolean {
    return (this.routes?.durableNodes(topic).size ?? 0) > 0
  }

  attachInbox (deliver: DeliverQueued): void {
    this.deliverQueued = deliver
  }

  attachAdoption (host: AdoptionHost): void {
    this.adoptionHost = host
  }

  /** Every RELOAD_MS: a node with durable routes and no lease (its leave missed, or an adoption that failed) is adopted. */
  private sweepDead (adoption: Adoption, live: () => string[]): void {
    this.adoptionTimer = setInterval(() => {
      this.redis.commands.smembers(DURABLE_NODES_KEY).then(async (nodes) => {
        const alive = new Set(live())
        for (const node of this.deadSince.keys()) if (alive.has(node)) this.deadSince.delete(node)
        for (const node of nodes) {
          if (alive.has(node)) continue
          const since = this.deadSince.get(node)
          if (since === undefined) this.deadSince.set(node, Date.now())
          else if (Date.now() - since >= ADOPT_GRACE_MS) await adoption.adopt(node)
        }
      }).catch((err: unknown) => { this.logger.debug({ err }, 'cluster: the sweep for dead nodes\' sessions failed') })
    }, RELOAD_MS)
    this.adoptionTimer.unref()
  }

  async forwardTo (clientId: string, packet: IPublishPacket, id: string): Promise<string | undefined> {
    return await forwardToHolder(this.redis, clientId, packet, id)
  }

  claimedHere (clientId: string): boolean {
    return this.registry?.epochOf(clientId) !== undefined
  }

  async inboxCaughtUp (): Promise<void> {
    await this.inbox?.caughtUp()
  }

  attachRetained (apply: ApplyRetained): void {
    this.applyRetained = apply
  }

  async storeRetained (packet: StoredPacket): Promise<void> {
    if (this.retained === undefined) throw new Error('not joined the cluster yet')
    await this.retained.store(packet)
  }

  reportFigures (read: () => NodeFigures): void {
    // the shared groups' streams add what waits in them (shared-stream.ts)
    this.readFigures = () => ({ ...read(), ...this.streams?.figures() })
    this.figures?.start(this.readFigures)
  }

  async totals (): Promise<NodeFigures> {
    if (this.figures === undefined) return {}
    return await this.figures.totals(this.nodes())
  }

  attachWills (host: WillsHost): void {
    this.willsHost = host
    this.wills?.attach(host)
  }

  holdWill (clientId: string, epoch: number, will: ClusterWill, delayMs: number): void {
    this.wills?.hold(clientId, epoch, will, delayMs)
  }

  async adoptStoredWill (clientId: string, epoch: number, will: ClusterWill, delayMs: number): Promise<boolean> {
    if (this.wills === undefined) throw new Error('not joined the cluster yet')
    return await this.wills.adoptOrphan(clientId, epoch, will, delayMs)
  }

  dropWill (clientId: string, epoch: number): void {
    this.wills?.drop(clientId, epoch)
  }

  async deferWill (clientId: string, epoch: number, delayMs: number): Promise<boolean> {
    return await (this.wills?.defer(clientId, epoch, delayMs) ?? Promise.resolve(false))
  }

  attachShared (use: (streams: ClusterShareStreams) => void): void {
    this.useStreams = use
    if (this.streams !== undefined) use(this.streams)
  }

  onNodeLeft (listener: (nodeId: string) => void): void {
    this.leftListeners.push(listener)
  }

  /** ids this node holds, for tests */
  heldClientIds (): number {
    return this.registry?.held() ?? 0
  }

  /** Gives the lease up (the other nodes see the leave at once) and closes the connections. */
  async close (): Promise<void> {
    clearInterval(this.adoptionTimer)
    this.orphans?.stop()
    this.registry?.stop()
    this.routes?.stop()
    await this.inbox?.stop()
    this.retained?.stop()
    this.streams?.stop()
    await this.wills?.stop()
    await this.expiry?.stop()
    await this.figures?.stop()
    await this.membership?.stop()
    await this.redis.close()
  }
}
