// The subscription index: every stored subscription per session, and a trie
// of the QoS 1/2 ones that persistence matches topics against to queue
// messages for offline sessions.
import { createRequire } from 'node:module'
import { encodeRecord } from '../codec.js'
import type { ClientSubscription, SubscriptionInput, TopicSubscription } from '../types.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface SubRecord {
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

export interface SubscriptionIndex {
  /** subscriptions over every session */
  readonly count: number
  /** sessions with at least one subscription */
  readonly clients: number
  /** QoS 1/2 subscriptions (the ones topics are matched against) */
  readonly matchable: number
  add (clientId: string, subs: SubscriptionInput[]): Promise<void> | undefined
  remove (clientId: string, filters: string[]): Promise<void> | undefined
  /** removes every subscription of a session */
  clear (clientId: string): Promise<void> | undefined
  byClient (clientId: string): ClientSubscription[]
  /** how many subscriptions the session stores (byClient's length, without the list) */
  countOf (clientId: string): number
  /** the QoS 1/2 subscriptions matching a topic name */
  byTopic (topic: string): TopicSubscription[]
  /** does any QoS 1/2 subscription match the topic name (what byTopic would find)? */
  matches (topic: string): boolean
  /** sessions subscribed to exactly this filter */
  clientsWith (filter: string): string[]
  /** in-memory part of a subscription loaded from disk */
  restore (clientId: string, filter: string, record: SubRecord): void
  /** told each time a QoS 1/2 subscription enters (true) or leaves (false) the matched ones; one listener */
  watchMatchable (listener: MatchableListener): void
}

export type MatchableListener = (filter: string, added: boolean) => void

// qlobber is CommonJS without type declarations; this is the part we use.
interface QlobberSubInstance {
  subscriptionsCount: number
  add (topic: string, value: TopicSubscription): void
  remove (topic: string, value: { clientId: string, topic: string }): void
  match (topic: string): TopicSubscription[]
}
type QlobberSubCtor = new (options: Record<string, unknown>) => QlobberSubInstance
const require = createRequire(import.meta.url)
const QlobberSub = require('qlobber/aedes/qlobber-sub.js') as QlobberSubCtor

// The same matching rules as aedes' mqemitter (match_empty_levels: `+`
// matches an empty level), so that what persistence enqueues is exactly what
// live delivery then acknowledges.
const QLOBBER_OPTIONS = {
  separator: '/',
  wildcard_one: '+',
  wildcard_some: '#',
  match_empty_levels: true
}

/** [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic starting with '$' */
function matchesDollarTopic (sub: TopicSubscription): boolean {
  return sub.topic.charCodeAt(0) !== 43 && sub.topic.charCodeAt(0) !== 35
}

export class MemorySubscriptions implements SubscriptionIndex {
  // Map everywhere a clientId is a key: ids such as `__proto__` or
  // `constructor` are ordinary ids here.
  readonly #subs = new Map<string, Map<string, SubRecord>>()
  readonly #trie = new QlobberSub(QLOBBER_OPTIONS)
  #count = 0
  #watcher: MatchableListener | undefined

  constructor (private readonly io: WriteThrough) {}

  watchMatchable (listener: MatchableListener): void {
    this.#watcher = listener
  }

  get count (): number {
    return this.#count
  }

  get clients (): number {
    return this.#subs.size
  }

  get matchable (): number {
    return this.#trie.subscriptionsCount
  }

  add (clientId: string, subs: SubscriptionInput[]): Promise<void> | undefined {
    const stored = this.#sessionSubs(clientId)
    let write: Promise<void> | undefined
    for (const sub of subs) {
      const record: SubRecord = { qos: sub.qos }
      if (sub.rh !== undefined) record.rh = sub.rh
      if (sub.rap !== undefined) record.rap = sub.rap
      if (sub.nl !== undefined) record.nl = sub.nl
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
      this.#set(clientId, stored, sub.topic, record)
      write = this.io.put(KEY.sub(clientId, sub.topic), encodeRecord(record)) ?? write
    }
    if (stored.size === 0) this.#subs.delete(clientId)
    return write
  }

  restore (clientId: string, filter: string, record: SubRecord): void {
    this.#set(clientId, this.#sessionSubs(clientId), filter, record)
  }

  #sessionSubs (clientId: string): Map<string, SubRecord> {
    let stored = this.#subs.get(clientId)
    if (stored === undefined) {
      stored = new Map()
      this.#subs.set(clientId, stored)
    }
    return stored
  }

  #set (clientId: string, stored: Map<string, SubRecord>, filter: string, record: SubRecord): void {
    const previous = stored.get(filter)
    if (previous === undefined) this.#count++
    stored.set(filter, record)
    // Each (clientId, filter) is its own trie value: overlapping filters of one
    // client (a/#, a/+/x, a/b/x) all stay and all match (aedes #543).
    const was = previous !== undefined && previous.qos > 0
    if (record.qos > 0) {
      this.#trie.add(filter, { clientId, topic: filter, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
      if (!was) this.#watcher?.(filter, true)
    } else if (was) {
      this.#trie.remove(filter, { clientId, topic: filter })
      this.#watcher?.(filter, false)
    }
  }

  remove (clientId: string, filters: string[]): Promise<void> | undefined {
    const stored = this.#subs.get(clientId)
    if (stored === undefined) return undefined
    let write: Promise<void> | undefined
    for (const topic of filters) {
      const previous = stored.get(topic)
      if (previous === undefined) continue
      if (previous.qos > 0) {
        this.#trie.remove(topic, { clientId, topic })
        this.#watcher?.(topic, false)
      }
      stored.delete(topic)
      this.#count--
      write = this.io.del(KEY.sub(clientId, topic)) ?? write
    }
    if (stored.size === 0) this.#subs.delete(clientId)
    return write
  }

  clear (clientId: string): Promise<void> | undefined {
    const stored = this.#subs.get(clientId)
    if (stored === undefined) return undefined
    let write: Promise<void> | undefined
    for (const [topic, record] of stored) {
      if (record.qos > 0) {
        this.#trie.remove(topic, { clientId, topic })
        this.#watcher?.(topic, false)
      }
      this.#count--
      write = this.io.del(KEY.sub(clientId, topic)) ?? write
    }
    this.#subs.delete(clientId)
    return write
  }

  byClient (clientId: string): ClientSubscription[] {
    const stored = this.#subs.get(clientId)
    const out: ClientSubscription[] = []
    if (stored === undefined) return out
    for (const [topic, record] of stored) out.push({ topic, ...record })
    return out
  }

  countOf (clientId: string): number {
    return this.#subs.get(clientId)?.size ?? 0
  }

  byTopic (topic: string): TopicSubscription[] {
    const matches = this.#trie.match(topic)
    // [MQTT-4.7.2-1] aedes' live delivery already skips wildcard filters for
    // every '$' topic; matching them here would queue messages that are then
    // never delivered live nor cleared.
    if (topic.charCodeAt(0) === 36) return matches.filter(matchesDollarTopic)
    return matches
  }

  matches (topic: string): boolean {
    if (this.#trie.subscriptionsCount === 0) return false
    const matches = this.#trie.match(topic)
    if (topic.charCodeAt(0) !== 36) return matches.length > 0
    return matches.some(matchesDollarTopic)
  }

  clientsWith (filter: string): string[] {
    const ids: string[] = []
    for (const [clientId, stored] of this.#subs) {
      if (stored.has(filter)) ids.push(clientId)
    }
    return ids
  }
}
