// MQTT 5 Session Expiry and Will Delay across restarts.
//
// aedes 2.0.0-beta.1 times session expiry and delayed wills in memory only
// (aedes #839): after a restart every session lives forever and a delayed will
// is either never sent or sent early by the will sweep. This helper keeps the
// deadlines in the store and acts on them after a restart:
//   (a) 'clientDisconnect' of a v5 client with a Session Expiry Interval > 0
//       stores the deadline (now + interval; 0xFFFFFFFF = never) and, when
//       aedes holds a delayed will for it, the will deadline; 'client'
//       (connect) clears both. Every record names the session's owner
//       (`ownerOf`, lib/protocol/session-claim.ts), and a 3.1.1 persistent
//       session gets one without a deadline, so that a session with no
//       subscriptions is known to exist (Session Present).
//   (b) at attach (broker start) it wipes every stored session whose deadline
//       passed and arms timers for the others, which are kept until then
//       [MQTT-3.1.2-23]; a session that was connected when the process died
//       gets its deadline from now.
//   (c) a stored will whose delay ran out while the broker was down is
//       published (and one still pending is published at its deadline), no
//       later than the end of its session [MQTT-3.1.2-8]; a reconnect before
//       then cancels it [MQTT-3.1.3-9].
// While the process lives, aedes' own timers still expire sessions and
// publish wills; this helper only adds the wipe of what aedes leaves behind
// (inbound QoS 2 state, the metadata itself) and never publishes a will aedes
// is timing itself.
//
// The aedes internals this reads, whether a client is connected and whether
// aedes holds its delayed will, are in lib/aedes-internals.ts (`clientById`,
// `holdsDelayedWill`); attachSessionExpiry() throws if aedes no longer has
// them, so an aedes upgrade that renames them fails loudly (test/e2e/persistence/session-expiry.test.ts).
import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import { assertSessionInternals, clientById, holdsDelayedWill } from '../aedes-internals.js'
import { isCulexError } from '../errors.js'
import { repeatedLog } from '../repeated-log.js'
import type { CulexPersistence, SessionMeta, StoredPacket } from './types.js'

/** Session Expiry Interval meaning "never expires" (MQTT 5 §3.1.2.11.2) */
export const SESSION_NEVER_EXPIRES = 0xFFFFFFFF
/** setTimeout's ceiling; longer delays are armed in chunks */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The aedes broker as this helper uses it. */
export type SessionBroker = Aedes

export interface SessionExpiryOptions {
  logger?: Logger
  /** a stored session was wiped because it expired (e.g. to end its shared subscriptions) */
  onExpired?: (clientId: string) => void
  /** who owns a connected client's session (its authenticated user name, null if anonymous), kept in the record */
  ownerOf?: (client: Client) => string | null
}

export interface SessionExpiryHandle {
  /** sessions with an armed expiry or will timer */
  readonly pending: number
  /** what attach did with the sessions it found in the store */
  readonly startup: { readonly wiped: number, readonly willsPublished: number, readonly armed: number }
  /** removes the listeners and clears every timer */
  stop (): void
}

interface Timer { clear (): void }

function armAt (deadline: number, onFire: () => void): Timer {
  let handle: NodeJS.Timeout | undefined
  const schedule = (): void => {
    const left = deadline - Date.now()
    if (left <= 0) {
      handle = undefined
      onFire()
      return
    }
    handle = setTimeout(schedule, Math.min(left, MAX_TIMER_MS))
    handle.unref()
  }
  schedule()
  return { clear () { if (handle !== undefined) clearTimeout(handle) } }
}

function willDelaySeconds (will: StoredPacket | undefined): number {
  const d = will?.properties?.willDelayInterval
  return typeof d === 'number' && d > 0 ? d : 0
}

class SessionExpiry implements SessionExpiryHandle {
  readonly #broker: SessionBroker
  readonly #store: CulexPersistence
  readonly #logger: Logger | undefined
  readonly #onExpired: ((clientId: string) => void) | undefined
  readonly #ownerOf: ((client: Client) => string | null) | undefined
  readonly #expiryTimers = new Map<string, Timer>()
  readonly #willTimers = new Map<string, Timer>()
  /** bumped on every connect / disconnect of an id, so stale async work can tell */
  readonly #generation = new Map<string, number>()
  /** sessions found in the store at attach: their wills are ours to publish */
  readonly #restored = new Set<string>()
  readonly #publishing = new Map<string, Promise<boolean>>()
  readonly startup = { wiped: 0, willsPublished: 0, armed: 0 }

  constructor (broker: SessionBroker, store: CulexPersistence, opts: SessionExpiryOptions) {
    assertSessionInternals(broker)
    this.#broker = broker
    this.#store = store
    this.#logger = opts.logger
    this.#onExpired = opts.onExpired
    this.#ownerOf = opts.ownerOf
  }

  #withOwner (client: Client, meta: SessionMeta): SessionMeta {
    if (this.#ownerOf !== undefined) meta.owner = this.#ownerOf(client)
    return meta
  }

  get pending (): number {
    return new Set([...this.#expiryTimers.keys(), ...this.#willTimers.keys()]).size
  }

  #connected (id: string): boolean {
    return clientById(this.#broker, id) !== undefined
  }

  #bump (id: string): number {
    const gen = (this.#generation.get(id) ?? 0) + 1
    this.#generation.set(id, gen)
    return gen
  }

  #cancel (id: string): void {
    this.#expiryTimers.get(id)?.clear()
    this.#expiryTimers.delete(id)
    this.#willTimers.get(id)?.clear()
    this.#willTimers.delete(id)
    this.#restored.delete(id)
    if (this.#generation.size > 100_000) this.#generation.clear()
  }

  #fail = (err: unknown): void => {
    // the store closing under a late event (broker shutdown) is not a failure
    if (isCulexError(err, 'CULEX_ERR_PERSISTENCE_CLOSED')) return
    // a failing store fails every expiry and will: one line per interval with the count
    if (this.#logger !== undefined) repeatedLog.log(this.#logger, 'error', 'session expiry failed', { err }, 'session expiry: persistence operation failed')
  }

  readonly onClient = (client: Client): void => {
    const id = client.id
    this.#bump(id)
    this.#cancel(id)
    const interval = client.version === 5 ? client.sessionExpiryInterval : 0
    if (interval > 0) {
      // connected: no deadline yet; the interval tells a restart after a crash
      // how long the session outlives the connection the crash closed
      this.#store.putSession(id, this.#withOwner(client, { expiresAt: null, expiryInterval: interval })).catch(this.#fail)
    } else if (client.version !== 5 && !client.clean) {
      // a 3.1.1 persistent session never expires; the record says it exists
      // (Session Present with no subscription) and who owns it
      this.#store.putSession(id, this.#withOwner(client, { expiresAt: null })).catch(this.#fail)
    } else {
      this.#store.delSession(id).catch(this.#fail)
    }
  }

  readonly onClientDisconnect = (client: Client): void => {
    const id = client.id
    const gen = this.#bump(id)
    if (client.version !== 5) return
    const interval = client.sessionExpiryInterval
    if (interval === 0) {
      // the session ended with the connection; aedes wipes it
      this.#store.delSession(id).catch(this.#fail)
      return
    }
    const now = Date.now()
    const expiresAt = interval >= SESSION_NEVER_EXPIRES ? null : now + interval * 1000
    const meta: SessionMeta = this.#withOwner(client, { expiresAt, expiryInterval: interval })
    this.#store.putSession(id, meta).catch(this.#fail)
    if (expiresAt !== null) this.#armExpiry(id, expiresAt)
    if (holdsDelayedWill(this.#broker, id)) {
      // aedes is holding the will for min(Will Delay, Session Expiry): record
      // when it is due so that a restart before then still sends it on time
      this.#store.getWill({ id }).then((will) => {
        if (this.#generation.get(id) !== gen) return
        const delay = Math.min(willDelaySeconds(will), interval)
        if (delay <= 0) return
        return this.#store.putSession(id, { ...meta, willDelayUntil: now + delay * 1000 })
      }).catch(this.#fail)
    }
  }

  #armExpiry (id: string, deadline: number): void {
    this.#expiryTimers.get(id)?.clear()
    this.#expiryTimers.set(id, armAt(deadline, () => {
      this.#expiryTimers.delete(id)
      if (this.#connected(id)) return
      this.#expire(id).catch(this.#fail)
    }))
  }

  #armWill (id: string, deadline: number): void {
    this.#willTimers.get(id)?.clear()
    this.#willTimers.set(id, armAt(deadline, () => {
      this.#willTimers.delete(id)
      if (this.#connected(id)) return
      this.#fireWill(id).catch(this.#fail)
    }))
  }

  async #expire (id: string): Promise<void> {
    const gen = this.#generation.get(id)
    // a will still held when the session ends is sent now [MQTT-3.1.2-8];
    // only for restored sessions: otherwise aedes' own timer sends it
    if (this.#restored.has(id)) {
      this.#willTimers.get(id)?.clear()
      this.#willTimers.delete(id)
      await this.#publishStoredWill(id)
      if (this.#generation.get(id) !== gen || this.#connected(id)) return
    }
    this.#restored.delete(id)
    await this.#store.wipeSession(id)
    this.#logger?.info({ clientId: id }, 'session expired')
    this.#onExpired?.(id)
  }

  async #fireWill (id: string): Promise<void> {
    const gen = this.#generation.get(id)
    await this.#publishStoredWill(id)
    if (this.#generation.get(id) !== gen) return
    const meta = await this.#store.getSession(id)
    if (meta !== undefined && meta.willDelayUntil !== undefined) {
      const { willDelayUntil: _done, ...rest } = meta
      await this.#store.putSession(id, rest)
    }
  }

  /**
   * Publishes and deletes the will stored for a session, if any; true if one
   * was sent. The will timer and the expiry timer can both get here for the
   * same session (a will delay capped by the session expiry ends together
   * with it): a call while one is running joins it, so the will goes out once.
   */
  #publishStoredWill (id: string): Promise<boolean> {
    let running = this.#publishing.get(id)
    if (running === undefined) {
      running = this.#doPublishStoredWill(id).finally(() => this.#publishing.delete(id))
      this.#publishing.set(id, running)
    }
    return running
  }

  async #doPublishStoredWill (id: string): Promise<boolean> {
    const will = await this.#store.getWill({ id })
    if (will === undefined || typeof will.topic !== 'string') return false
    const packet: StoredPacket = { ...will }
    if (packet.properties !== undefined) {
      // Will Delay is a CONNECT property, not a PUBLISH one
      const { willDelayInterval: _delay, ...props } = packet.properties
      packet.properties = props
    }
    const broker = this.#broker
    await new Promise<void>((resolve, reject) => {
      // as aedes' own will sweep does: authorize with no client, then publish
      broker.authorizePublish(null, packet as Parameters<Aedes['publish']>[0], (err) => {
        if (err) {
          this.#logger?.warn({ clientId: id, err }, 'stored will not authorized; dropped')
          resolve()
          return
        }
        broker.publish(packet as Parameters<Aedes['publish']>[0], (perr) => { if (perr) reject(perr); else resolve() })
      })
    })
    await this.#store.delWill({ id })
    this.startup.willsPublished++
    return true
  }

  async start (): Promise<void> {
    const now = Date.now()
    for await (const { clientId: id, meta } of this.#store.listSessions()) {
      if (this.#connected(id)) continue
      this.#restored.add(id)
      let { expiresAt, willDelayUntil } = meta
      if (expiresAt === null) {
        const interval = meta.expiryInterval
        const will = await this.#store.getWill({ id })
        const wasConnected = interval !== undefined
        if (wasConnected && interval < SESSION_NEVER_EXPIRES) {
          // connected when the process died: the session lasts `interval`
          // from now (the closest thing to "from when the connection closed")
          expiresAt = now + interval * 1000
        }
        const delay = Math.min(willDelaySeconds(will), interval ?? Infinity)
        if (wasConnected && willDelayUntil === undefined && delay > 0) willDelayUntil = now + delay * 1000
        if (expiresAt !== meta.expiresAt || willDelayUntil !== meta.willDelayUntil) {
          const updated: SessionMeta = { ...meta, expiresAt }
          if (willDelayUntil !== undefined) updated.willDelayUntil = willDelayUntil
          await this.#store.putSession(id, updated)
        }
      }
      if (expiresAt !== null && expiresAt <= now) {
        await this.#expire(id)
        this.startup.wiped++
        continue
      }
      if (willDelayUntil !== undefined) {
        if (willDelayUntil <= now) await this.#fireWill(id)
        else this.#armWill(id, willDelayUntil)
      }
      if (expiresAt !== null) this.#armExpiry(id, expiresAt)
      if (expiresAt !== null || (willDelayUntil !== undefined && willDelayUntil > now)) this.startup.armed++
    }
    this.#broker.on('client', this.onClient)
    this.#broker.on('clientDisconnect', this.onClientDisconnect)
  }

  stop (): void {
    this.#broker.removeListener('client', this.onClient)
    this.#broker.removeListener('clientDisconnect', this.onClientDisconnect)
    for (const t of this.#expiryTimers.values()) t.clear()
    for (const t of this.#willTimers.values()) t.clear()
    this.#expiryTimers.clear()
    this.#willTimers.clear()
  }
}

/**
 * Applies stored session deadlines now (wipe expired sessions, send overdue
 * wills), arms timers for the rest, and keeps the deadlines up to date from
 * the broker's connect / disconnect events. Call it once, right after the
 * broker is created and before it accepts connections.
 */
export async function attachSessionExpiry (broker: SessionBroker, store: CulexPersistence, opts: SessionExpiryOptions = {}): Promise<SessionExpiryHandle> {
  const helper = new SessionExpiry(broker, store, opts)
  await helper.start()
  return helper
}
