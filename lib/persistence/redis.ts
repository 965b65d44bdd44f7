// Redis store, a cluster node's store (lib/cluster/): the memory parts with
// Redis as their write-through backend (redis-sessions.ts: a hash per
// session, written by one Lua script per session and batch, fenced by the
// epoch of the claim that loaded it). Nothing is read at open: a node holds
// the sessions claimed on it only. `hydrate` runs after each claim of a
// client id on this node (lib/broker/hooks/claim-session.ts): it adopts the
// session in Redis at the claim's epoch and loads it into the parts, unless
// this node held the epoch just before (then its memory is the session).
// `handOver` drops the copy of a session another node claimed. Retained
// messages and shared subscription groups are memory parts here (in a
// cluster, lib/cluster/retained.ts keeps the retained messages in Redis).
import type { Redis } from '../cluster/ioredis.js'
import { ENDED_FIELD, ownerKey } from '../cluster/keys.js'
import type { Logger } from 'pino'
import { CulexError } from '../errors.js'
import { decodePacket, decodeRecord } from './codec.js'
import { GroupCommit } from './group-commit.js'
import { adoptSession, defineSessionScripts, EPOCH_FIELD, readSessionPackets, sessionKey, SessionWriter, type AdoptMode } from './redis-sessions.js'
import { repeatedLog } from '../repeated-log.js'
import { routedIdOf } from '../cluster/routed-id.js'
import { RoutedIds, routedIdKey, ROUTED_ID_KIND } from './routed-ids.js'
import { BaseStore, type SubRecord } from './store.js'
import type { ClientRef, EnqueueTarget, PersistenceLimits, SessionMeta, StoredPacket } from './types.js'

export interface RedisPersistenceOptions {
  /** a connection to use (a cluster node's); the store does not close it */
  redis?: Redis
  /** or a Redis URL to connect to, closed with the store */
  url?: string
  /** prefix of every key; default `culex:` */
  prefix?: string
  /**
   * every session write names the epoch of the claim that loaded the session
   * (`hydrate`) and is refused when a later claim adopted it; off, sessions
   * are written without a claim (a store used alone, as in its tests)
   */
  fenced?: boolean
  /**
   * a session's expiry deletes its hash in a step of its own, after the
   * registry's (lib/cluster/session-expiry.ts): so a claim reads the
   * registry's `ended` with its adoption; default: when `redis` is a Redis
   * Cluster client
   */
  expiryInTwoSteps?: boolean
  limits?: PersistenceLimits
  logger?: Logger
}

interface InflightState { m?: number | null, p?: StoredPacket }

/** a routed copy offered to a connection: when, whether offered again (dropped), the packet id it is sent with */
interface Offer { at: number, dropped: boolean, messageId: number | undefined }

/** milliseconds a copy of a routed message that a session had is remembered: its publish follows its enqueue at once */
const REPEAT_MS = 10000

/** while a stale copy's last writes are dropped */
const DROPPING = -1

/** `<encoded cid>:<rest>` after a key's kind */
function afterClient (field: string, kindLength: number): [string, string] {
  const at = field.indexOf(':', kindLength)
  if (at < 0) throw new Error('malformed key')
  return [decodeURIComponent(field.slice(kindLength, at)), field.slice(at + 1)]
}

function seqOf (hex: string): number {
  const seq = parseInt(hex, 16)
  if (!Number.isSafeInteger(seq)) throw new Error('malformed sequence number')
  return seq
}

export class RedisPersistence extends BaseStore {
  readonly kind = 'redis' as const
  readonly prefix: string
  readonly #fenced: boolean
  readonly #url: string | undefined
  #redis: Redis | undefined
  #own = false
  /** a Redis Cluster client: a session's expiry takes two steps there (lib/cluster/session-expiry.ts) */
  #onCluster = false
  readonly #expiryInTwoSteps: boolean | undefined
  #opening: Promise<void> | undefined
  /** per session held here, the epoch its writes name */
  readonly #epochs = new Map<string, number>()
  /** per session a claim here is loading from Redis, the claim's epoch: not in memory until its load completes */
  readonly #loading = new Map<string, number>()
  /** where messages queued for a session not held here go (the broker forwards them to its node) */
  #redirect: ((clientId: string, packets: StoredPacket[]) => Promise<void>) | undefined
  /** told of a copy dropped because Redis refused its write, before it goes */
  #onRefusedCopy: ((clientId: string) => void) | undefined
  /** the routed QoS 2 message ids each session held here got (routed-ids.ts) */
  readonly #routed = new RoutedIds()
  /**
   * per copy of a routed message (its broker id: one per copy), the sessions
   * it was not queued for because they had it, and when: aedes must not
   * deliver it to them either (it delivers copies of the packet, which keep
   * the broker id). Kept REPEAT_MS, for the publish that follows the enqueue.
   */
  readonly #repeats = new Map<string, { at: number, clientIds: Set<string> }>()
  /** per connection (aedes' client), the routed copies offered to it lately, and whether one was offered again (dropped) */
  readonly #offered = new WeakMap<object, Map<string, Offer>>()

  constructor (opts: RedisPersistenceOptions) {
    super({ limits: opts.limits, logger: opts.logger })
    if (opts.redis === undefined && opts.url === undefined) throw new TypeError('the redis store needs a connection or a URL')
    this.#redis = opts.redis
    this.#url = opts.url
    this.prefix = opts.prefix ?? 'culex:'
    this.#fenced = opts.fenced ?? false
    this.#expiryInTwoSteps = opts.expiryInTwoSteps
  }

  /** group-commit counters: batches written and operations in them */
  get writeCounters (): { batches: number, ops: number } {
    return this.backend?.writer.counters ?? { batches: 0, ops: 0 }
  }

  open (): Promise<void> {
    if (this.closed) return Promise.reject(new CulexError('CULEX_ERR_PERSISTENCE_CLOSED'))
    this.#opening ??= this.#open()
    return this.#opening
  }

  async #open (): Promise<void> {
    let redis = this.#redis
    if (redis === undefined) {
      // ioredis loads only when a store connects by URL (a cluster node passes its connection)
      const { Redis } = await import('../cluster/ioredis.js')
      redis = new Redis(this.#url as string, { lazyConnect: true, maxRetriesPerRequest: 1 })
      redis.on('error', () => {})
      this.#own = true
      await redis.connect()
      this.#redis = redis
    }
    defineSessionScripts(redis)
    // ioredis' Cluster client says so itself (an instanceof would load ioredis in a single node)
    this.#onCluster = this.#expiryInTwoSteps ?? (redis as { isCluster?: boolean }).isCluster === true
    this.backend = {
      writer: new GroupCommit(new SessionWriter({
        redis,
        prefix: this.prefix,
        epochFor: (cid) => this.#epochFor(cid),
        onRefused: (refused) => { this.#refused(refused) },
        redirect: (cid, queued) => this.#redirect?.(cid, queued.map((value) => decodePacket(value)))
      }), false, (err) => {
        if (this.logger !== undefined && !(err instanceof CulexError && err.code === 'CULEX_ERR_SESSION_FENCED')) {
          repeatedLog.log(this.logger, 'error', 'redis write failed\u0000' + this.prefix, { err }, 'persistence write to Redis failed')
        }
      }),
      readPackets: async (keys) => (await readSessionPackets(redis, this.prefix, keys)).map((value) => value === null ? undefined : decodePacket(value))
    }
  }

  /**
   * A routed QoS 2 message (its id in its broker id: lib/cluster/routed-id.ts)
   * is queued only for the sessions that did not get it already (queued, in
   * flight, or acknowledged within routed-ids.ts' bounds) [MQTT-4.3.3-10];
   * for the others it is marked, so that aedes' delivery of it to their live
   * connections is dropped too (`routedDuplicate`). Its id is recorded in
   * each session it is queued for in the same write as the message: one
   * WRITE call of the session, so Redis has both or neither.
   */
  override outgoingEnqueueCombi (subs: EnqueueTarget[], packet: StoredPacket): Promise<void> {
    // QoS 0/1 (and QoS 2 with no subscriber here) without a look at the broker id
    const id = subs.length === 0 || packet.qos !== 2 ? undefined : routedIdOf(packet.brokerId)
    if (id === undefined) return super.outgoingEnqueueCombi(subs, packet)
    let repeats: Set<string> | undefined
    const fresh: EnqueueTarget[] = []
    for (const sub of subs) {
      if (this.#routed.has(sub.clientId, id)) (repeats ??= new Set()).add(sub.clientId)
      else fresh.push(sub)
    }
    if (repeats !== undefined) this.#markRepeats(packet.brokerId as string, repeats)
    const queued = super.outgoingEnqueueCombi(fresh, packet)
    // the enqueue's writes are issued by now (its synchronous part): the ids join them in the session's batch
    const writer = this.backend?.writer
    if (writer !== undefined && !this.closed) {
      const now = Date.now()
      for (const sub of fresh) {
        if (!this.#routed.has(sub.clientId, id) && this.#epochFor(sub.clientId) !== null) this.#routed.add(sub.clientId, id, now, writer)
      }
    }
    return queued
  }

  #markRepeats (brokerId: string, clientIds: Set<string>): void {
    const now = Date.now()
    for (const [key, { at }] of this.#repeats) {
      if (now - at <= REPEAT_MS) break
      this.#repeats.delete(key)
    }
    const marked = this.#repeats.get(brokerId)
    if (marked === undefined) this.#repeats.set(brokerId, { at: now, clientIds })
    else for (const cid of clientIds) marked.clientIds.add(cid)
  }

  /** Whether `packet` is a copy of a routed message the session of `clientId` had already (outgoingEnqueueCombi): not to be delivered. */
  routedDuplicate (clientId: string, packet: { brokerId?: string }): boolean {
    if (this.#repeats.size === 0 || typeof packet.brokerId !== 'string') return false
    return this.#repeats.get(packet.brokerId)?.clientIds.has(clientId) === true
  }

  /**
   * Whether this copy of a routed message (its broker id) was offered to
   * this connection (aedes' client object) before: a message enqueued as a
   * session's connection resumes is in the queue aedes sends it and reaches
   * the connection live too, and would go out twice under two packet ids.
   */
  routedOffered (client: object, packet: { brokerId?: string }): boolean {
    const brokerId = packet.brokerId
    if (typeof brokerId !== 'string' || routedIdOf(brokerId) === undefined) return false
    let offered = this.#offered.get(client)
    if (offered === undefined) this.#offered.set(client, offered = new Map())
    const now = Date.now()
    const before = offered.get(brokerId)
    if (before !== undefined) {
      before.dropped = true
      return true
    }
    for (const [key, { at }] of offered) {
      if (now - at <= REPEAT_MS) break
      offered.delete(key)
    }
    offered.set(brokerId, { at: now, dropped: false, messageId: undefined })
    return false
  }

  /**
   * A routed message offered to a connection twice (routedOffered) gets
   * the packet id of its first update on it: aedes' queue drain gives its
   * copy a packet id of its own before it asks authorizeForward, and the
   * message must stay in flight under the id the connection was sent.
   */
  override async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    if (packet.cmd === 'publish' && packet.qos === 2 && typeof packet.brokerId === 'string' && typeof packet.messageId === 'number') {
      const offer = this.#offered.get(client)?.get(packet.brokerId)
      if (offer !== undefined) {
        if (offer.messageId === undefined) offer.messageId = packet.messageId
        else packet.messageId = offer.messageId
      }
    }
    await super.outgoingUpdate(client, packet)
  }

  /** aedes clears a message it did not deliver: a repeat was never queued, and the message it repeats stays; so does the message whose second offer was dropped. */
  override async outgoingClearMessageId (client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined> {
    if (packet !== null && typeof packet === 'object' && ((packet.messageId === undefined && this.routedDuplicate(client.id, packet)) ||
      (typeof packet.brokerId === 'string' && this.#offered.get(client)?.get(packet.brokerId)?.dropped === true))) return undefined
    return await super.outgoingClearMessageId(client, packet)
  }

  /** the ids of routed messages remembered for a session, for tests */
  routedIdCount (clientId: string): number {
    return this.#routed.count(clientId)
  }

  override async wipeSession (clientId: string): Promise<void> {
    const writer = this.backend?.writer
    for (const key of this.#routed.forget(clientId)) writer?.del(key)
    await super.wipeSession(clientId)
  }

  protected override forgetSession (clientId: string): void {
    this.#routed.forget(clientId)
    super.forgetSession(clientId)
  }

  #epochFor (clientId: string): string | null {
    if (!this.#fenced) return ''
    const epoch = this.#epochs.get(clientId)
    return epoch === undefined || epoch === DROPPING ? null : String(epoch)
  }

  /** A copy whose write was refused is stale (another node adopted the session): dropped, unless claimed again meanwhile. */
  #refused (refused: Array<[string, string | null]>): void {
    for (const [clientId, epoch] of refused) {
      const held = this.#epochs.get(clientId)
      // claimed again (or being loaded) since that write: the copy is the new one
      if (epoch === null ? held !== undefined : String(held) !== epoch) continue
      this.#epochs.delete(clientId)
      // the takeover's notice may come only after this: what the copy subscribed to is read now, while it is here
      if (epoch !== null) this.#onRefusedCopy?.(clientId)
      this.forgetSession(clientId)
      if (epoch !== null) this.logger?.info({ clientId, epoch }, 'session write refused: a later claim on another node owns the session; dropped the copy held here')
    }
  }

  /**
   * Messages queued for a session whose write cannot be made here (another
   * node took it while they were on their way: refused, or its copy here
   * already dropped) go to `redirect`, and their publishers wait for it.
   */
  redirectQueued (redirect: (clientId: string, packets: StoredPacket[]) => Promise<void>): void {
    this.#redirect = redirect
  }

  /** `listener` is told of a copy dropped because Redis refused its write (another node adopted the session), before it goes. */
  watchRefusedCopies (listener: (clientId: string) => void): void {
    this.#onRefusedCopy = listener
  }

  /** the epoch this node holds for a session; undefined when it holds none */
  epochOf (clientId: string): number | undefined {
    const epoch = this.#epochs.get(clientId)
    return epoch === DROPPING ? undefined : epoch
  }

  /**
   * Whether this node holds the session in memory: it holds an epoch of it
   * and no claim here is still loading it (or dropping a stale copy first).
   * Until then its subscriptions are not in memory, and a message queued
   * for it would match none of them.
   */
  loaded (clientId: string): boolean {
    const epoch = this.#epochs.get(clientId)
    return epoch !== undefined && epoch !== DROPPING && this.#loading.get(clientId) !== epoch
  }

  /**
   * The session record of a client id about to be claimed (its owner, and
   * whether a session exists): from memory when this node holds the
   * session, from Redis otherwise.
   */
  async sessionRecord (clientId: string): Promise<SessionMeta | undefined> {
    if (!this.#fenced || this.epochOf(clientId) !== undefined) return this.sessions.get(clientId)
    const raw = await this.#connection().hgetBuffer(sessionKey(this.prefix, clientId), 'x:' + encodeURIComponent(clientId))
    return raw === null ? undefined : decodeRecord(raw) as SessionMeta
  }

  /**
   * After this node claimed `clientId` at `epoch`: the session in Redis is
   * adopted at that epoch (older writers are fenced from then on) and loaded
   * into memory, or wiped for a Clean Start. Rejects with
   * CULEX_ERR_SESSION_FENCED when a later claim adopted it already.
   */
  async hydrate (clientId: string, epoch: number, opts: { clean: boolean }): Promise<void> {
    if (this.closed) throw new CulexError('CULEX_ERR_PERSISTENCE_CLOSED')
    const redis = this.#connection()
    const held = this.#epochs.get(clientId)
    if (held !== undefined && held > epoch) throw new CulexError('CULEX_ERR_SESSION_FENCED', [JSON.stringify(clientId)])
    // no claim came between this node's previous one and this: its memory is the session
    const current = held !== undefined && held === epoch - 1
    const mode: AdoptMode = current ? 'keep' : opts.clean ? 'wipe' : 'load'
    // On a Redis Cluster (on one Redis the expiry deletes the hash in the same step): the epoch at which the id's session last expired, read after this claim (so it names any expiry before it) and sent
    // first, so its answer is in before the adoption's: no wait more between the adoption and the restore below (one there
    // let messages for the session go by before its subscriptions were back, in the moving tests)
    const endedRead = mode === 'load' && this.#fenced && this.#onCluster ? redis.hget(ownerKey(clientId), ENDED_FIELD) : undefined
    endedRead?.catch(() => {})
    if (!current) {
      // a stale copy's writes still pending are dropped, then the copy
      this.#epochs.set(clientId, DROPPING)
      await this.backend?.writer.flush()
      this.forgetSession(clientId)
    }
    this.#epochs.set(clientId, epoch)
    if (mode === 'load') this.#loading.set(clientId, epoch)
    try {
      const key = sessionKey(this.prefix, clientId)
      const adopted = await adoptSession(redis, key, epoch, mode)
      let fields = adopted?.fields
      // a hash adopted before the session expired is what the expiry's second step deletes (lib/cluster/session-expiry.ts),
      // which may not have run yet: not loaded, deleted here. An `ended` at or after this claim is a later session's.
      if (adopted !== null && endedRead !== undefined) {
        const ended = Number(await endedRead ?? 0)
        if (adopted.before < ended && ended < epoch) fields = (await adoptSession(redis, key, epoch, 'wipe'))?.fields
      }
      if (fields === undefined) {
        if (this.#epochs.get(clientId) === epoch) this.#epochs.delete(clientId)
        throw new CulexError('CULEX_ERR_SESSION_FENCED', [JSON.stringify(clientId)])
      }
      // a later local claim hydrating meanwhile loads it itself
      if (mode === 'load' && this.#epochs.get(clientId) === epoch) this.#restore(clientId, fields)
    } finally {
      if (this.#loading.get(clientId) === epoch) this.#loading.delete(clientId)
    }
  }

  /**
   * Another node claimed the session, or it expired cluster-wide: this
   * node's copy is dropped (its writes would be refused); with `epoch`, only
   * if it is the copy held at that epoch or before (not one claimed, or being
   * loaded, here again since).
   */
  handOver (clientId: string, epoch?: number): void {
    const held = this.#epochs.get(clientId)
    if (!this.#fenced || held === undefined) return
    if (epoch !== undefined && (held === DROPPING || held > epoch)) return
    this.#epochs.delete(clientId)
    this.forgetSession(clientId)
  }

  #connection (): Redis {
    if (this.#redis === undefined || this.backend === null) throw new CulexError('CULEX_ERR_PERSISTENCE_CLOSED')
    return this.#redis
  }

  #skip (clientId: string, field: string, err: unknown): void {
    this.corrupt++
    if (this.logger === undefined) return
    repeatedLog.log(this.logger, 'warn', 'undecodable\u0000' + this.prefix + '\u0000' + field.slice(0, field.indexOf(':') + 1),
      { clientId, field, err: err instanceof Error ? err.message : String(err) }, 'skipping a stored value that cannot be decoded')
  }

  /** a session's fields into the parts, in the level store's load order */
  #restore (clientId: string, fields: Array<[string, Buffer]>): void {
    fields.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    const states = new Map<string, InflightState>()
    const rest: Array<[string, Buffer]> = []
    const now = Date.now()
    const stale: string[] = []
    for (const [field, value] of fields) {
      try {
        if (field.startsWith(ROUTED_ID_KIND)) {
          const id = afterClient(field, ROUTED_ID_KIND.length)[1]
          if (!this.#routed.restore(clientId, id, Number(value.toString()), now)) stale.push(id)
        } else if (field.startsWith('qi:')) {
          const state = decodeRecord(value) as InflightState
          if (state === null || typeof state !== 'object') throw new Error('in-flight state is not an object')
          states.set(afterClient(field, 3)[1], state)
        } else if (field.startsWith('s:')) {
          const record = decodeRecord(value) as SubRecord
          if (typeof record?.qos !== 'number') throw new Error('subscription without qos')
          this.subscriptions.restore(clientId, afterClient(field, 2)[1], record)
        } else {
          rest.push([field, value])
        }
      } catch (err) { this.#skip(clientId, field, err) }
    }
    for (const [field, value] of rest) {
      try {
        if (field.startsWith('q:')) {
          const hex = afterClient(field, 2)[1]
          const seq = seqOf(hex)
          this.queues.noteSeq(seq)
          const state = states.get(hex)
          states.delete(hex)
          this.queues.restoreQueued(clientId, seq, decodePacket(value), state?.p === undefined ? state : undefined)
        } else if (field.startsWith('i:')) {
          const messageId = parseInt(afterClient(field, 2)[1], 10)
          if (!Number.isInteger(messageId)) throw new Error('malformed packet id')
          this.incoming.restore(clientId, messageId, decodePacket(value))
        } else if (field.startsWith('w:')) {
          this.wills.restore(clientId, decodePacket(value))
        } else if (field.startsWith('x:')) {
          const meta = decodeRecord(value) as SessionMeta
          if (meta === null || typeof meta !== 'object') throw new Error('malformed session metadata')
          this.sessions.restore(clientId, meta)
        } else if (field !== EPOCH_FIELD) {
          throw new Error('unknown field')
        }
      } catch (err) { this.#skip(clientId, field, err) }
    }
    // the ids past their bounds go with the session's next write
    const writer = this.backend?.writer
    for (const id of [...stale, ...this.#routed.settle(clientId, now)]) writer?.del(routedIdKey(clientId, id))
    // PUBREL state has no body; any other leftover lost its body
    for (const [hex, state] of states) {
      try {
        const seq = seqOf(hex)
        this.queues.noteSeq(seq)
        if (state.p !== undefined && state.p !== null && typeof state.p === 'object') this.queues.restorePubrel(clientId, seq, state.p)
      } catch (err) { this.#skip(clientId, 'qi:' + hex, err) }
    }
  }

  protected async closeBackend (): Promise<void> {
    const opening = this.#opening
    if (opening !== undefined) await opening.catch(() => {})
    const redis = this.#redis
    this.backend = null
    if (this.#own && redis !== undefined) {
      this.#redis = undefined
      await redis.quit().catch(() => { redis.disconnect() })
    }
  }
}
