/**
 * createBroker: aedes with culex's hooks, hardening and protocol gateway.
 * Transports hand every new socket to `handle()`; see server.ts. This file
 * only wires: each hook is a named function over the broker context in
 * lib/broker/ (hooks/ one module per concern).
 */
import type { Duplex } from 'node:stream'
import { Aedes, type AedesOptions } from 'aedes'
import type { Logger } from 'pino'
import { claimRetainedAtSubscribe, clientById, hardenBroker, liveSubscriptions, persistenceOf, skipEmptyQueuePipelines, skipUnheardClientEvents } from './aedes-internals.js'
import { Connection, type ConnectionContext, type ConnectionMeta, type ProtocolSettings } from './protocol/connection.js'
import { Authenticators, type Authenticator } from './protocol/auth.js'
import type { SessionOwnership } from './protocol/session-claim.js'
import type { SharedSubscriptions } from './shared/dispatcher.js'
import { createConnectionPolicy, defaultLimits, type Limits } from './auth/admission.js'
import type { SecurityPolicy } from './auth/policy.js'
import { attachSessionExpiry } from './persistence/index.js'
import { EncodeOnce } from './protocol/outbound/encode-once.js'
import { silentLogger } from './logging.js'
import { noopObserver, type BrokerObserver } from './observer.js'
import { repeatedLog } from './repeated-log.js'
import type { BrokerContext, Redirect } from './broker/context.js'
import { holdsIncoming, isCulexStore, type StoreExtras } from './broker/store.js'
import { authenticate, preConnect } from './broker/hooks/connect.js'
import { authorizePublish, published } from './broker/hooks/publish.js'
import { authorizeForward, forwardLiveQoS0 } from './broker/hooks/forward.js'
import { MatchingSubscribers, SUBSCRIPTION_EVENTS } from './broker/subscribers.js'
import { endMemberships, setupShared, type SharedSettings } from './broker/shared.js'
import { wireGatewayEvents } from './broker/events.js'
import type { ClusterView } from './cluster/index.js'
import { wireCluster } from './broker/cluster.js'
import { clusterSharedSettings } from './broker/cluster-shared.js'

export { isReservedTopic } from './broker/hooks/publish.js'

/** The store aedes uses (aedes' async persistence interface); `undefined` = aedes' in-memory store. */
export type AedesPersistence = NonNullable<AedesOptions['persistence']>

export interface BrokerOptions {
  logger?: Logger
  /** counts what the gateway sees (metrics); default: nothing */
  observer?: BrokerObserver
  persistence?: AedesPersistence
  protocol?: Partial<ProtocolSettings>
  /** inbound topic alias maximum advertised to v5 clients (spec 3.2.2.3.8) */
  topicAliasMaximum?: number
  /** milliseconds a connection has to send CONNECT */
  connectTimeout?: number
  /** enhanced authentication methods (spec 4.12) */
  authenticators?: readonly Authenticator[]
  /** largest keep-alive accepted, seconds; Server Keep Alive for MQTT 5 (spec 3.2.2.3.14) */
  keepaliveLimit?: number
  /** Response Information for clients that request it (spec 3.2.2.3.15) */
  responseInformation?: string
  /** redirect every MQTT 5 client (spec 4.11): CONNACK 0x9C, or 0x9D when `moved` */
  redirect?: Redirect
  /** shared subscriptions (spec 4.8.2); `false` turns them off (SUBACK 0x9E) */
  shared?: SharedSettings | false
  /** password file, ACL, anonymous access; without it every client is let in */
  security?: SecurityPolicy
  limits?: Partial<Limits>
  /** who may take a session by its Client Identifier (lib/protocol/session-claim.ts); default 'username' */
  sessionOwnership?: SessionOwnership
  /** the cluster this node is part of (lib/cluster/); unset = a single node */
  cluster?: ClusterView
}

export interface CulexBroker {
  readonly aedes: Aedes
  readonly logger: Logger
  readonly settings: ProtocolSettings
  readonly connections: ReadonlySet<Connection>
  readonly authenticators: Authenticators
  /** shared subscription groups, and their figures (`sharedGroups.stats()`) */
  readonly sharedGroups: SharedSubscriptions | undefined
  /** the cluster this node is part of; undefined for a single node */
  readonly cluster: ClusterView | undefined
  /** Serves one client connection on `socket` (any byte Duplex). */
  handle (socket: Duplex, meta: ConnectionMeta): Connection
  /** The gateway of a connected aedes client. */
  connectionOf (client: { conn: unknown }): Connection | undefined
  /** DISCONNECT 0x8B to every client, then close aedes and its store. */
  close (): Promise<void>
}

export const defaultProtocolSettings: ProtocolSettings = {
  maximumPacketSize: 1048576,
  receiveMaximum: 100,
  inflightWindow: 100,
  maxQueuedOutbound: 1000,
  outboundTopicAliases: true,
  slowConsumerTimeout: 2000,
  maxOutboundBuffer: 4194304,
  sharedSubscriptionAvailable: true,
  retainAvailable: true,
  validatePayloadFormat: true,
  topicAliasMaximum: 10,
  maximumQoS: 2,
  maxTopicLevels: 100,
  maxTopicLength: 65535,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifierAvailable: true
}

export async function createBroker (options: BrokerOptions = {}): Promise<CulexBroker> {
  const logger = options.logger ?? silentLogger()
  const settings: ProtocolSettings = {
    ...defaultProtocolSettings,
    ...options.protocol,
    topicAliasMaximum: options.topicAliasMaximum ?? options.protocol?.topicAliasMaximum ?? defaultProtocolSettings.topicAliasMaximum,
    sharedSubscriptionAvailable: options.shared !== false
  }
  const security = options.security
  const connections = new Set<Connection>()
  // aedes is made from its hooks, which read it only once called
  let aedes: Aedes
  const ctx: BrokerContext = {
    logger,
    security,
    redirect: options.redirect,
    sessionOwnership: options.sessionOwnership ?? 'username',
    encodeOnce: new EncodeOnce(),
    shared: undefined,
    store: () => persistenceOf(aedes) as StoreExtras | undefined,
    gatewayOf: (client) => Connection.ofStream(client.conn),
    clientById: (id) => clientById(aedes, id),
    cluster: options.cluster
  }

  const aedesOptions: AedesOptions = {
    maximumPacketSize: settings.maximumPacketSize,
    receiveMaximum: settings.receiveMaximum,
    topicAliasMaximum: settings.topicAliasMaximum,
    maxTopicLevels: settings.maxTopicLevels,
    connectTimeout: options.connectTimeout ?? 10000,
    keepaliveLimit: options.keepaliveLimit ?? 0,
    responseInformation: options.responseInformation ?? null,
    preConnect: (_client, packet, callback) => { preConnect(ctx, packet, callback) },
    authenticate: (client, username, password, callback) => { authenticate(ctx, client, username, password, callback) },
    authorizePublish: (client, packet, callback) => { authorizePublish(ctx, client, packet, callback) },
    authorizeForward: (client, packet) => authorizeForward(ctx, client, packet),
    published: (packet, client, callback) => { published(ctx, packet, client, callback) }
  }
  if (options.persistence !== undefined) aedesOptions.persistence = options.persistence
  const authenticators = new Authenticators(options.authenticators)
  if (security?.hasPasswords && !authenticators.get('SCRAM-SHA-256')) authenticators.add(security.scramAuthenticator())
  const limits: Limits = { ...defaultLimits, ...options.limits }

  aedes = await Aedes.createBroker(aedesOptions)
  hardenBroker(aedes)
  // an empty queue's drain at CONNECT costs no stream pipeline (culex's stores return NothingQueued)
  skipEmptyQueuePipelines()
  // aedes' $SYS client events are published only when someone subscribed to them
  skipUnheardClientEvents(aedes)
  // stored session deadlines and delayed wills, enforced across restarts (culex's stores)
  const store = ctx.store()
  const sessionExpiry = isCulexStore(store)
    ? await attachSessionExpiry(aedes, store, {
      logger: logger.child({ module: 'sessions' }),
      ownerOf: (client) => ctx.gatewayOf(client)?.authenticatedAs ?? null,
      onExpired: (clientId) => { endMemberships(ctx.shared, clientId, logger) }
    })
    : undefined
  const clusterShared = clusterSharedSettings(aedes, options.shared === false ? {} : options.shared ?? {}, ctx, logger)
  const shared: SharedSubscriptions | undefined = options.shared === false
    ? undefined
    : await setupShared(aedes, clusterShared.settings, ctx.store(), logger)
  clusterShared.attach(shared)
  ctx.clusterShared = clusterShared.sessions
  ctx.shared = shared

  wireGatewayEvents(aedes, ctx)
  wireCluster(aedes, ctx)
  // a resumed session's queue goes to its gateway in one go (persistence QueueSink)
  if (isCulexStore(store)) store.setQueueSink((client, acknowledge) => ctx.gatewayOf(client as unknown as { conn: unknown })?.queueSink(acknowledge))
  // a SUBSCRIBE's retained messages go out through the client's gateway (lib/protocol/flows/retained-out.ts)
  claimRetainedAtSubscribe(aedes, (client, subscriptions, lookup) => ctx.gatewayOf(client)?.claimRetained(subscriptions, lookup) ?? false)

  const policy = createConnectionPolicy(limits, security, () => aedes.connectedClients)
  const subscribers = new MatchingSubscribers(liveSubscriptions(aedes), ctx)
  for (const event of SUBSCRIPTION_EVENTS) (aedes as unknown as NodeJS.EventEmitter).on(event, subscribers.changed)
  shared?.onMembershipChange(subscribers.changed)
  // one context for every connection: nothing in it is per connection
  const context: ConnectionContext = {
    broker: aedes,
    settings,
    logger,
    authenticators,
    shared,
    policy,
    // in a cluster, a subscriber or persistent session on another node counts too (not 0x10)
    hasSubscribers: options.cluster === undefined ? subscribers.has : (topic) => options.cluster?.routesTo(topic) === true || subscribers.has(topic),
    hasIncoming: (clientId, packetId) => holdsIncoming(ctx.store(), clientId, packetId),
    observer: options.observer ?? noopObserver,
    forwardLive: (client, conn, version, packet) => forwardLiveQoS0(ctx, client, conn, version, packet),
    onClose (c) { connections.delete(c) }
  }
  const broker: CulexBroker = {
    aedes,
    logger,
    settings,
    connections,
    authenticators,
    sharedGroups: shared,
    cluster: options.cluster,
    handle (socket, meta) {
      const conn = new Connection(socket, meta, context)
      connections.add(conn)
      return conn
    },
    connectionOf (client) {
      return ctx.gatewayOf(client)
    },
    async close () {
      for (const conn of [...connections]) conn.shutdown()
      shared?.close()
      clusterShared.close()
      sessionExpiry?.stop()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      const store = persistenceOf(aedes) as { destroy?: () => Promise<void> } | undefined
      if (store?.destroy) await store.destroy()
      // the counts of repeated events not written yet (lib/repeated-log.ts)
      repeatedLog.flush()
    }
  }
  return broker
}
