/**
 * Routing between nodes. Each node keeps the topic filters its live
 * clients subscribe to in a set `{culex}:routes:{node}`, and the QoS 1/2
 * filters of the persistent sessions its store holds (online or offline) in
 * `{culex}:durable:{node}`, announces each change on `{culex}:routes`, and holds
 * the other nodes' filters in local matchers, loaded at join, on a node's
 * join and every RELOAD_MS (so a lost notice heals). A message is matched
 * locally: a QoS 0 one goes to the nodes with a matching live filter, by
 * PUBLISH on their channel `{culex}:msg:{node}` (those of one turn to a node in
 * one PUBLISH: channel-batch.ts); a QoS 1/2 one to those with
 * a matching live or durable filter, through their inboxes (inbox.ts). A
 * topic no other node subscribes to costs no Redis command. A dead node's
 * durable filters stay matched until a survivor adopted it (adoption.ts).
 */
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import type { RedisPair } from './redis.js'
import { CLUSTER_PREFIX } from './keys.js'
import { RouteTable } from './route-table.js'
import { decodeRouted, encodeRouted } from './wire.js'
import { ChannelBatcher, splitPackets } from './channel-batch.js'
import { nodeSysPrefix } from '../protocol/topic.js'

const PREFIX = CLUSTER_PREFIX
export const routesKey = (nodeId: string): string => `${PREFIX}routes:${nodeId}`
/** the QoS 1/2 filters of the persistent sessions a node holds, online or offline */
export const durableKey = (nodeId: string): string => `${PREFIX}durable:${nodeId}`
/** the nodes with a durable set: a dead node's stays (and is matched) until a survivor adopted its sessions (adoption.ts) */
export const DURABLE_NODES_KEY = `${PREFIX}durable:nodes`
export const ROUTES_CHANNEL = `${PREFIX}routes`
export const messageChannel = (nodeId: string): string => `${PREFIX}msg:${nodeId}`

/** topics whose QoS 1/2 targets are remembered at most (all forgotten past it) */
const TARGETS_CACHED = 10000
const NO_NODE: ReadonlySet<string> = new Set()

/** milliseconds between two full reloads of the other nodes' filters */
export const RELOAD_MS = 10000

/** The MQTT 5 properties a message keeps between nodes; topic aliases and subscription identifiers are per connection. */
const CARRIED = ['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'] as const

export type RoutedMessage = Pick<IPublishPacket, 'topic' | 'payload' | 'properties'> & { retain?: boolean }

export class Routes {
  /** live connections' filters: where QoS 0 goes */
  private readonly live = new RouteTable()
  /** persistent sessions' QoS 1/2 filters: where QoS 1/2 goes as well, to be queued */
  private readonly durable = new RouteTable()
  /**
   * per topic, the other nodes a QoS 1/2 message goes to, as of the two
   * tables' versions below: matching both tables was a twentieth of a
   * publishing node's time in cluster-fanin-qos1, and a topic is usually
   * published again and again while the filters stay
   */
  private readonly targets = new Map<string, ReadonlySet<string>>()
  private targetsOf = { live: -1, durable: -1 }
  /** the same for QoS 0 (live filters only), as of the live table's version */
  private readonly liveTargets = new Map<string, ReadonlySet<string>>()
  private liveTargetsOf = -1
  private timer: NodeJS.Timeout | undefined
  private nodes: () => string[] = () => []
  private stopped = false
  /** messages sent to other nodes, for tests and figures */
  sent = 0
  /** QoS 0 messages to each node, one PUBLISH per node and turn */
  readonly channel: ChannelBatcher
  /** this node's own `$SYS` values, the one '$' subtree routed */
  private readonly ownSys: string

  constructor (
    private readonly redis: RedisPair,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly deliver: (message: RoutedMessage) => void
  ) {
    this.ownSys = nodeSysPrefix(nodeId)
    this.channel = new ChannelBatcher((node, bytes) => {
      this.redis.publish(messageChannel(node), bytes).catch(() => {})
    })
  }

  /** Starts from empty sets of this node's filters and loads the others'. */
  async start (liveNodes: () => string[]): Promise<void> {
    this.nodes = liveNodes
    await this.redis.commands.del(routesKey(this.nodeId), durableKey(this.nodeId))
    await this.redis.commands.sadd(DURABLE_NODES_KEY, this.nodeId)
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
    if (this.live.hold(filter)) this.announce('', filter, true)
  }

  /** A live subscription to `filter` ended on this node. */
  unsubscribed (filter: string): void {
    if (this.live.release(filter)) this.announce('', filter, false)
  }

  /** A persistent session held here gained (`held`) or lost a QoS 1/2 subscription to `filter`. */
  durableChanged (filter: string, held: boolean): void {
    if (held ? this.durable.hold(filter) : this.durable.release(filter)) this.announce('d', filter, held)
  }

  /**
   * Sends a QoS 0 message to the nodes with a matching filter; returns how
   * many. No match: nothing goes to Redis. Of the topics starting with '$'
   * only this node's own `$SYS/brokers/{node}/` values are routed (clients
   * may not publish there: broker/hooks/publish.ts).
   */
  route (message: RoutedMessage): number {
    if (message.topic.charCodeAt(0) === 36 && !message.topic.startsWith(this.ownSys)) return 0
    if (this.liveTargetsOf !== this.live.version || this.liveTargets.size >= TARGETS_CACHED) {
      this.liveTargets.clear()
      this.liveTargetsOf = this.live.version
    }
    let nodes = this.liveTargets.get(message.topic)
    if (nodes === undefined) {
      nodes = this.live.match(message.topic)
      this.liveTargets.set(message.topic, nodes)
    }
    if (nodes.size === 0) return 0
    const bytes = encodeRouted(routedPacket(message, 0))
    for (const node of nodes) {
      this.sent++
      this.channel.add(node, bytes)
    }
    return nodes.size
  }

  /** The other nodes a QoS 1/2 message must reach: a live subscriber, or a persistent session held there, matches it. Not to be changed. */
  durableNodes (topic: string): ReadonlySet<string> {
    if (topic.charCodeAt(0) === 36) return NO_NODE
    if (this.targetsOf.live !== this.live.version || this.targetsOf.durable !== this.durable.version || this.targets.size >= TARGETS_CACHED) {
      this.targets.clear()
      this.targetsOf = { live: this.live.version, durable: this.durable.version }
    }
    let nodes = this.targets.get(topic)
    if (nodes === undefined) {
      const live = this.live.match(topic)
      const held = this.durable.match(topic)
      nodes = held.size === 0 ? live : live.size === 0 ? held : new Set([...live, ...held])
      this.targets.set(topic, nodes)
    }
    return nodes
  }

  /** After this node's lease was taken anew (Redis may have lost the sets): writes its filters again. */
  async republish (): Promise<void> {
    const live = [...this.live.local.keys()]
    const durable = [...this.durable.local.keys()]
    if (live.length > 0) await this.redis.commands.sadd(routesKey(this.nodeId), ...live)
    if (durable.length > 0) await this.redis.commands.sadd(durableKey(this.nodeId), ...durable)
    await this.reload()
  }

  /** Reads every live node's filters again, and the durable ones of every node not adopted yet. */
  async reload (): Promise<void> {
    const nodes = this.nodes().filter((n) => n !== this.nodeId)
    const held = (await this.redis.commands.smembers(DURABLE_NODES_KEY)).filter((n) => n !== this.nodeId)
    const read = async (among: string[], key: (n: string) => string): Promise<Array<readonly [string, string[]]>> =>
      await Promise.all(among.map(async (n) => [n, await this.redis.commands.smembers(key(n))] as const))
    const [live, durable] = await Promise.all([read(nodes, routesKey), read(held, durableKey)])
    this.live.replace(live)
    this.durable.replace(durable)
  }

  /**
   * A node left: its live filters go; its durable ones stay until a
   * survivor adopted its sessions (`d!`): until then a QoS 1/2 message for
   * them is written to its inbox, which the adopter reads (adoption.ts).
   */
  nodeLeft (node: string): void {
    this.live.drop(node)
  }

  /**
   * A node joined: its filters are read, and read again a second later: a
   * node that takes its lease anew (after a Redis restart) writes them right
   * after, and that write may still be on its way.
   */
  nodeJoined (node: string): void {
    if (node === this.nodeId) return
    const read = (): void => {
      if (this.stopped || !this.nodes().includes(node)) return
      for (const [table, key] of [[this.live, routesKey], [this.durable, durableKey]] as const) {
        this.redis.commands.smembers(key(node)).then((filters) => {
          for (const f of filters) table.add(node, f)
        }, () => {})
      }
    }
    read()
    setTimeout(read, 1000).unref()
  }

  /** `kind` '' = live, 'd' = durable; the notice is `{kind}{+|-} {node} {filter}` */
  private announce (kind: '' | 'd', filter: string, add: boolean): void {
    const key = kind === '' ? routesKey(this.nodeId) : durableKey(this.nodeId)
    const op = `${kind}${add ? '+' : '-'}`
    const write = add ? this.redis.commands.sadd(key, filter) : this.redis.commands.srem(key, filter)
    write.then(() => this.redis.publish(ROUTES_CHANNEL, `${op} ${this.nodeId} ${filter}`)).catch((err: unknown) => {
      // the next reload of the other nodes, or republish() after a lost lease, brings them up to date
      this.logger.debug({ err, filter, op }, 'cluster: announcing a route failed')
    })
  }

  private readonly onRouteNotice = (channel: string, message: string): void => {
    if (channel !== ROUTES_CHANNEL) return
    const opEnd = message.indexOf(' ')
    const space = message.indexOf(' ', opEnd + 1)
    if (opEnd < 0 || space < 0) return
    const op = message.slice(0, opEnd)
    const node = message.slice(opEnd + 1, space)
    const filter = message.slice(space + 1)
    if (node === this.nodeId) return
    const table = op.charAt(0) === 'd' ? this.durable : this.live
    const sign = op.charAt(op.length - 1)
    if (sign === '+') table.add(node, filter)
    else if (sign === '-') table.remove(node, filter)
    else if (sign === '!') table.drop(node)
  }

  private readonly onMessage = (channel: Buffer, bytes: Buffer): void => {
    if (channel.toString() !== messageChannel(this.nodeId)) return
    const packets = splitPackets(bytes)
    if (packets instanceof Error) {
      this.logger.warn({ err: packets.message }, 'cluster: routed messages could not be decoded; dropped')
      return
    }
    for (const one of packets) {
      const packet = decodeRouted(one)
      if (packet instanceof Error) {
        this.logger.warn({ err: packet.message }, 'cluster: a routed message could not be decoded; dropped')
        continue
      }
      this.deliver({ topic: packet.topic, payload: packet.payload, retain: packet.retain, ...(packet.properties !== undefined ? { properties: packet.properties } : {}) })
    }
  }
}

/**
 * The PUBLISH a message travels between nodes as (MQTT 5, only the
 * properties that travel). RETAIN as published: a subscription with Retain
 * As Published on the receiving node gets it so [MQTT-3.3.1-12]; the
 * receiving node does not store it as retained again (broker/cluster.ts).
 */
export function routedPacket (message: RoutedMessage, qos: 0 | 1 | 2): IPublishPacket {
  const packet: IPublishPacket = { cmd: 'publish', topic: message.topic, payload: message.payload, qos, retain: message.retain === true, dup: false }
  if (qos > 0) packet.messageId = 1
  const properties = carried(message.properties)
  if (properties !== undefined) packet.properties = properties
  return packet
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
