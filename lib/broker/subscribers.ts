/**
 * Spec 3.4.2.1: PUBACK / PUBREC 0x10 (No matching subscribers) only when no
 * subscription, live or stored, matches. It is asked for every QoS 1/2
 * message, right after aedes published it: aedes' own match of the topic
 * against the live subscriptions is remembered then (aedes-internals.ts
 * `liveSubscriptions`), and when no session stores a subscription that
 * settles it. Otherwise the answer per topic is cached until any
 * subscription changes.
 */
import type { LiveSubscriptions } from '../aedes-internals.js'
import type { SharedSubscriptions } from '../shared/dispatcher.js'
import type { StoreExtras } from './store.js'

/** aedes events after which a cached answer may be wrong */
export const SUBSCRIPTION_EVENTS = ['subscribe', 'unsubscribe', 'clientDisconnect', 'sessionExpired'] as const

/** cached topics at most; the cache starts over beyond */
const CACHE_LIMIT = 10000

export interface SubscribersContext {
  readonly shared: Pick<SharedSubscriptions, 'hasGroupFor'> | undefined
  store (): Pick<StoreExtras, 'holdsSubscriptions' | 'hasSubscriptionsFor' | 'subscriptionsByTopic'> | undefined
}

export class MatchingSubscribers {
  readonly #live: Pick<LiveSubscriptions, 'count' | 'known'>
  readonly #ctx: SubscribersContext
  readonly #cache = new Map<string, boolean>()
  /** bumped by every change, so that an answer found across one is not cached */
  #epoch = 0

  constructor (live: Pick<LiveSubscriptions, 'count' | 'known'>, ctx: SubscribersContext) {
    this.#live = live
    this.#ctx = ctx
  }

  /** A subscription changed somewhere: the cached answers are forgotten. */
  readonly changed = (): void => {
    this.#epoch++
    this.#cache.clear()
  }

  /** Does any subscription, live, stored or of a shared group, match `topic`? */
  readonly has = (topic: string): boolean | Promise<boolean> => {
    const store = this.#ctx.store()
    const shared = this.#ctx.shared
    const known = this.#live.known(topic)
    if (known !== undefined) {
      if (known > 0) return true
      if (store?.holdsSubscriptions?.() === false) return shared?.hasGroupFor(topic) === true
    }
    const cached = this.#cache.get(topic)
    if (cached !== undefined) return cached
    const epoch = this.#epoch
    // culex's stores answer synchronously, and at once when they hold no subscription
    const stored = typeof store?.hasSubscriptionsFor === 'function' ? store.hasSubscriptionsFor(topic) : undefined
    if (stored === true || this.#live.count(topic) > 0 || shared?.hasGroupFor(topic) === true) return this.#remember(topic, epoch, true)
    if (stored === false) return this.#remember(topic, epoch, false)
    if (!store?.subscriptionsByTopic) return true
    return store.subscriptionsByTopic(topic).then(subs => this.#remember(topic, epoch, subs.length > 0))
  }

  #remember (topic: string, epoch: number, has: boolean): boolean {
    if (epoch === this.#epoch) {
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear()
      this.#cache.set(topic, has)
    }
    return has
  }
}
