/**
 * One kind of route per node (routes.ts): this node's filters counted by the
 * subscriptions holding them, and every other node's filters in a matcher.
 * Two kinds exist: `live` (the filters of live connections: where a QoS 0
 * message goes) and `durable` (the QoS 1/2 filters of every persistent
 * session the node holds, online or offline: where a QoS 1/2 message must
 * also go, to be queued).
 */
import { createRequire } from 'node:module'

interface QlobberDedupInstance {
  add (topic: string, value: string): void
  remove (topic: string, value?: string): void
  match (topic: string): Set<string>
  clear (): void
}
const require = createRequire(import.meta.url)
const { QlobberDedup } = require('qlobber') as { QlobberDedup: new (options: Record<string, unknown>) => QlobberDedupInstance }

/** aedes' matching rules (mqemitter): `a/#` matches `a`, `+` matches an empty level */
const QLOBBER_OPTIONS = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

export class RouteTable {
  /** this node's filters, by the number of subscriptions holding each */
  readonly local = new Map<string, number>()
  /** every other node's filters */
  private readonly remote = new Map<string, Set<string>>()
  private readonly matcher = new QlobberDedup(QLOBBER_OPTIONS)
  /** raised by every change of the other nodes' filters: what was matched before may be stale */
  version = 0

  /** Counts one more holder of `filter` here; true when it is new (to be announced). */
  hold (filter: string): boolean {
    const n = this.local.get(filter) ?? 0
    this.local.set(filter, n + 1)
    return n === 0
  }

  /** Counts one holder less; true when none is left (to be withdrawn). */
  release (filter: string): boolean {
    const n = this.local.get(filter)
    if (n === undefined) return false
    if (n > 1) {
      this.local.set(filter, n - 1)
      return false
    }
    this.local.delete(filter)
    return true
  }

  /** the other nodes with a filter matching `topic` */
  match (topic: string): Set<string> {
    return this.matcher.match(topic)
  }

  /** Replaces every other node's filters. */
  replace (sets: ReadonlyArray<readonly [string, readonly string[]]>): void {
    this.version++
    this.matcher.clear()
    this.remote.clear()
    for (const [node, filters] of sets) for (const f of filters) this.add(node, f)
  }

  add (node: string, filter: string): void {
    let set = this.remote.get(node)
    if (set === undefined) this.remote.set(node, set = new Set())
    if (set.has(filter)) return
    set.add(filter)
    this.version++
    this.matcher.add(filter, node)
  }

  remove (node: string, filter: string): void {
    const set = this.remote.get(node)
    if (set?.delete(filter) !== true) return
    this.version++
    this.matcher.remove(filter, node)
  }

  /** A node's filters go. */
  drop (node: string): void {
    const set = this.remote.get(node)
    if (set === undefined) return
    this.version++
    for (const f of set) this.matcher.remove(f, node)
    this.remote.delete(node)
  }
}
