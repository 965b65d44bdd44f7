/**
 * QoS 0 routing between nodes. Each node keeps the topic filters its live
 * clients subscribe to in a set `culex:routes:{node}`, announces each change
 * on `culex:routes`, and holds every other live node's filters in a local
 * matcher, loaded at join, on a node's join and every RELOAD_MS (so a lost
 * notice heals). A message is matched locally: only the nodes with a
 * matching filter get it, by PUBLISH on their channel `culex:msg:{node}`,
 * and a topic no other node subscribes to costs no Redis command.
 */
import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { decodeBuffer, encode } from '../protocol/codec.js'
import type { RedisPair } from './redis.js'

const PREFIX = 'culex:'
export const routesKey = (nodeId: string): string => `${PREFIX}routes:${nodeId}`
export const ROUTES_CHANNEL = `${PREFIX}routes`
export const messageChannel = (nodeId: string): string => `${PREFIX}msg:${nodeId}`

/** milliseconds between two full reloads of the other nodes' filters */
export const RELOAD_MS = 10000

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

/** The MQTT 5 properties a message keeps between nodes; topic aliases and subscription identifiers are per connection. */
const CARRIED = ['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'] as const

export type RoutedMessage = Pick<IPublishPacket, 'topic' | 'payload' | 'properties'>

export class Routes {
  /** this node's filters, by the number of live subscriptions to each */
  private readonly local = new Map<string, number>()
  /** every other node's filters */
  private readonly remote = new Map<string, Set<string>>()
  private readonly matcher = new QlobberDedup(QLOBBER_OPTIONS)
  private timer: NodeJS.Timeout | undefined
  private live: () => string[] = () => []
  private stopped = false
  /** messages sent to other nodes, for tests and figures */
  sent = 0

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly deliver: (message: RoutedMessage) => void
  ) {}

  /** Starts from an empty set of this node's filters and loads the others'. */
  async start (liveNodes: () => string[]): Promise<void> {
    this.live = liveNodes
    await this.redis.commands.del(routesKey(this.nodeId))
    this.redis.notices.on('message', this.onRouteNotice)
    this.redis.notices.on('messageBuffer', this.onMessage)
    await this.redis.notices.subscribe(ROUTES_CHANNEL, messageChannel(this.nodeId))
    await this.reload()
    const tick = (): void => {
      if (this.stopped) return
      this.timer = setTimeout(() => { this.reload().catch(() => {}).finally(tick) }, RELOAD_MS)
    }
    tick()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.redis.notices.off('message', this.onRouteNotice)
    this.redis.notices.off('messageBuffer', this.onMessage)
  }

  /** A live subscription to `filter` began on this node. */
  subscribed (filter: string): void {
    const n = this.local.get(filter) ?? 0
    this.local.set(filter, n + 1)
    if (n === 0) this.announce('+', filter)
  }

  /** A live subscription to `filter` ended on this node. */
  unsubscribed (filter: string): void {
    const n = this.local.get(filter)
    if (n === undefined) return
    if (n > 1) {
      this.local.set(filter, n - 1)
      return
    }
    this.local.delete(filter)
    this.announce('-', filter)
  }

  /**
   * Sends a QoS 0 message to the nodes with a matching filter; returns how
   * many. No match: nothing goes to Redis. Topics starting with '$' are not
   * routed.
   */
  route (message: RoutedMessage): number {
    if (message.topic.charCodeAt(0) === 36) return 0
    const nodes = this.matcher.match(message.topic)
    if (nodes.size === 0) return 0
    const packet: IPublishPacket = { cmd: 'publish', topic: message.topic, payload: message.payload, qos: 0, retain: false, dup: false }
    const properties = carried(message.properties)
    if (properties !== undefined) packet.properties = properties
    const bytes = encode(packet, 5)
    for (const node of nodes) {
      this.sent++
      this.redis.commands.publish(messageChannel(node), bytes).catch(() => {})
    }
    return nodes.size
  }

  /** After this node's lease was taken anew (Redis may have lost the set): writes its filters again. */
  async republish (): Promise<void> {
    const filters = [...this.local.keys()]
    if (filters.length > 0) await this.redis.commands.sadd(routesKey(this.nodeId), ...filters)
    await this.reload()
  }

  /** Reads every live node's filters again. */
  async reload (): Promise<void> {
    const nodes = this.live().filter((n) => n !== this.nodeId)
    const sets = await Promise.all(nodes.map(async (n) => [n, await this.redis.commands.smembers(routesKey(n))] as const))
    this.matcher.clear()
    this.remote.clear()
    for (const [node, filters] of sets) {
      const set = new Set(filters)
      this.remote.set(node, set)
      for (const f of set) this.matcher.add(f, node)
    }
  }

  /** A node left: its filters go. */
  nodeLeft (node: string): void {
    const set = this.remote.get(node)
    if (set === undefined) return
    for (const f of set) this.matcher.remove(f, node)
    this.remote.delete(node)
  }

  /**
   * A node joined: its filters are read, and read again a second later: a
   * node that takes its lease anew (after a Redis restart) writes them right
   * after, and that write may still be on its way.
   */
  nodeJoined (node: string): void {
    if (node === this.nodeId) return
    const read = (): void => {
      if (this.stopped || !this.live().includes(node)) return
      this.redis.commands.smembers(routesKey(node)).then((filters) => {
        for (const f of filters) this.addRemote(node, f)
      }, () => {})
    }
    read()
    setTimeout(read, 1000).unref()
  }

  private announce (op: '+' | '-', filter: string): void {
    const key = routesKey(this.nodeId)
    const write = op === '+' ? this.redis.commands.sadd(key, filter) : this.redis.commands.srem(key, filter)
    write.then(() => this.redis.commands.publish(ROUTES_CHANNEL, `${op} ${this.nodeId} ${filter}`)).catch((err: unknown) => {
      // the next reload of the other nodes, or republish() after a lost lease, brings them up to date
      this.logger.debug({ err, filter, op }, 'cluster: announcing a route failed')
    })
  }

  private addRemote (node: string, filter: string): void {
    let set = this.remote.get(node)
    if (set === undefined) this.remote.set(node, set = new Set())
    if (set.has(filter)) return
    set.add(filter)
    this.matcher.add(filter, node)
  }

  private removeRemote (node: string, filter: string): void {
    const set = this.remote.get(node)
    if (set?.delete(filter) !== true) return
    this.matcher.remove(filter, node)
  }

  private readonly onRouteNotice = (channel: string, message: string): void => {
    if (channel !== ROUTES_CHANNEL) return
    const op = message.charAt(0)
    const space = message.indexOf(' ', 2)
    if (space < 0) return
    const node = message.slice(2, space)
    const filter = message.slice(space + 1)
    if (node === this.nodeId) return
    if (op === '+') this.addRemote(node, filter)
    else if (op === '-') this.removeRemote(node, filter)
  }

  private readonly onMessage = (channel: Buffer, bytes: Buffer): void => {
    if (channel.toString() !== messageChannel(this.nodeId)) return
    const packet = decodeBuffer(bytes, 5)
    if (packet instanceof Error || packet.cmd !== 'publish') {
      this.logger.warn({ err: packet instanceof Error ? packet.message : packet.cmd }, 'cluster: a routed message could not be decoded; dropped')
      return
    }
    this.deliver({ topic: packet.topic, payload: packet.payload, ...(packet.properties !== undefined ? { properties: packet.properties } : {}) })
  }
}

function carried (properties: IPublishPacket['properties']): IPublishPacket['properties'] {
  if (properties === undefined) return undefined
  const out: Record<string, unknown> = {}
  let any = false
  for (const key of CARRIED) {
    const value = properties[key]
    if (value !== undefined) { out[key] = value; any = true }
  }
  return any ? out as IPublishPacket['properties'] : undefined
}
