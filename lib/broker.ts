/**
 * createBroker: aedes with culex's hooks, hardening and protocol gateway.
 * Transports hand every new socket to `handle()`; see server.ts.
 */
import type { Duplex } from 'node:stream'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import type { Logger } from 'pino'
import { clientById, hardenBroker, keepResumedSession, liveSubscriptions, persistenceOf } from './aedes-internals.js'
import { Connection, type ConnectionContext, type ConnectionMeta, type ProtocolSettings } from './protocol/connection.js'
import { Authenticators, type Authenticator } from './protocol/auth.js'
import { ReasonCode } from './protocol/reason-codes.js'
import { judgeSessionClaim, type SessionOwnership } from './protocol/session-claim.js'
import { SharedSubscriptions, SHARED_BROKER_ID, type SharedOptions } from './shared/dispatcher.js'
import { MemoryShareStore, type ShareStore } from './shared/store.js'
import { createConnectionPolicy, defaultLimits, type Limits } from './auth/admission.js'
import type { SecurityPolicy } from './auth/policy.js'
import { attachSessionExpiry, type CulexPersistence } from './persistence/index.js'
import { EncodeOnce } from './protocol/outbound/encode-once.js'
import { forwardCorrections, stripWillProperties } from './protocol/delivery.js'
import { silentLogger } from './logging.js'
import { noopObserver, type BrokerObserver } from './observer.js'
import { repeatedLog } from './repeated-log.js'

/** aedes' authenticate callback */
type AuthenticateDone = Parameters<NonNullable<AedesOptions['authenticate']>>[3]

/** The store aedes uses (aedes' async persistence interface); `undefined` = aedes' in-memory store. */
export type AedesPersistence = NonNullable<AedesOptions['persistence']>

/** The parts of the store culex calls beyond what aedes does. */
interface StoreExtras {
  /** where shared subscriptions keep memberships and group logs */
  sharedStore?: () => ShareStore
  /** drops a client's inbound QoS 2 state (aedes 1.2.0's name for it) */
  cleanIncoming?: (client: { id: string }) => Promise<void>
  incomingGetPacket?: (client: { id: string }, packet: { messageId: number }) => Promise<unknown>
  subscriptionsByTopic?: (topic: string) => Promise<unknown[]>
  /** culex's stores answer synchronously whether subscriptionsByTopic would find anything */
  hasSubscriptionsFor?: (topic: string) => boolean
  /** ... and whether it could find anything for any topic */
  holdsSubscriptions?: () => boolean
  /** was this message re-sent from a session queue with the packet id it had? (DUP) */
  wasInFlight?: (clientId: string, brokerId: string | undefined, brokerCounter: number | undefined) => boolean
}

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
  redirect?: { serverReference: string, moved: boolean }
  /** shared subscriptions (spec 4.8.2); `false` turns them off (SUBACK 0x9E) */
  shared?: (Partial<SharedOptions> & { store?: ShareStore }) | false
  /** password file, ACL, anonymous access; without it every client is let in */
  security?: SecurityPolicy
  limits?: Partial<Limits>
  /** who may take a session by its Client Identifier (lib/protocol/session-claim.ts); default 'username' */
  sessionOwnership?: SessionOwnership
}

export interface CulexBroker {
  readonly aedes: Aedes
  readonly logger: Logger
  readonly settings: ProtocolSettings
  readonly connections: ReadonlySet<Connection>
  readonly authenticators: Authenticators
  /** shared subscription groups, and their figures (`sharedGroups.stats()`) */
  readonly sharedGroups: SharedSubscriptions | undefined
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

/** Topics only the broker publishes to. */
export function isReservedTopic (topic: string): boolean {
  return topic.startsWith('$SYS') || topic.startsWith('$events/') || topic.startsWith('$dlq/')
}

function isCulexStore (store: unknown): store is CulexPersistence {
  return typeof (store as { putSession?: unknown } | undefined)?.putSession === 'function'
}

function sharedStoreOf (store: StoreExtras | undefined): ShareStore | undefined {
  return typeof store?.sharedStore === 'function' ? store.sharedStore() : undefined
}

export async function createBroker (options: BrokerOptions = {}): Promise<CulexBroker> {
  const logger = options.logger ?? silentLogger()
  const settings: ProtocolSettings = {
    ...defaultProtocolSettings,
    ...options.protocol,
    topicAliasMaximum: options.topicAliasMaximum ?? options.protocol?.topicAliasMaximum ?? defaultProtocolSettings.topicAliasMaximum,
    sharedSubscriptionAvailable: options.shared !== false
  }
  const connections = new Set<Connection>()
  const encodeOnce = new EncodeOnce()
  /** a client's gateway, from its stream (`client.conn`) */
  const bySide = { get: (stream: unknown): Connection | undefined => Connection.ofStream(stream) }

  const aedesOptions: AedesOptions = {
    maximumPacketSize: settings.maximumPacketSize,
    receiveMaximum: settings.receiveMaximum,
    topicAliasMaximum: settings.topicAliasMaximum,
    maxTopicLevels: settings.maxTopicLevels,
    connectTimeout: options.connectTimeout ?? 10000,
    keepaliveLimit: options.keepaliveLimit ?? 0,
    responseInformation: options.responseInformation ?? null,
    preConnect (client, packet, callback) {
      const redirect = options.redirect
      if (redirect && packet.protocolVersion === 5) {
        // spec 4.11: aedes answers CONNACK 0x9C / 0x9D with the Server Reference
        const err = Object.assign(new Error('redirected'), {
          serverReference: redirect.serverReference,
          reasonCode: redirect.moved ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer
        })
        callback(err, false)
        return
      }
      callback(null, true)
    },
    authenticate (client, username, password, callback) {
      const conn = bySide.get(client.conn)
      if (!conn) {
        callback(null, true)
        return
      }
      if (conn.enhancedAuth) {
        // enhanced authentication already decided (spec 4.12)
        conn.authenticatedAs = conn.enhancedAuth.username
        claimSession(conn, client, callback)
        return
      }
      if (!security) {
        conn.authenticatedAs = username
        claimSession(conn, client, callback)
        return
      }
      security.login({ username, password, remoteAddress: conn.meta.remoteAddress, certificateCN: conn.meta.certificateCN }).then((result) => {
        if (result.ok) {
          conn.authenticatedAs = result.username
          claimSession(conn, client, callback)
          return
        }
        conn.log.info({ username, reason: result.reason }, 'authentication failed')
        // aedes answers 4 / 0x86 (bad user name or password) or 5 / 0x87 (not authorized)
        const returnCode = result.reasonCode === ReasonCode.BadUserNameOrPassword ? 4 : 5
        callback(Object.assign(new Error(result.reason), { returnCode }) as never, false)
      }, (err: unknown) => callback(Object.assign(new Error((err as Error).message), { returnCode: 3 }) as never, false))
    },
    authorizePublish (client, packet, callback) {
      stripWillProperties(packet)
      const conn = client ? bySide.get(client.conn) : undefined
      const refuse = (err: Error): void => {
        // refused, so never routed: a SUBSCRIBE waiting for it goes on (protocol/inbound/retained-order.ts)
        if (packet.retain && packet.qos < 2) conn?.retainedRouted()
        callback(err)
      }
      if (security?.hasAcl && client) {
        // wills (the gateway checks the client's own PUBLISHes)
        if (!security.mayPublish({ clientId: client.id, username: conn?.authenticatedAs }, packet.topic)) {
          refuse(new Error('not authorized'))
          return
        }
      }
      // [MQTT-4.7.2-1] $SYS (and culex's $events, $dlq) are the broker's; clients may not publish there
      if (client && isReservedTopic(packet.topic)) {
        refuse(new Error(`${packet.topic.split('/')[0] ?? ''} topics are reserved`))
        return
      }
      callback(null)
    },
    authorizeForward (client, packet) {
      const conn = bySide.get(client.conn)
      const isShared = shared !== undefined && packet.brokerId?.startsWith(SHARED_BROKER_ID) === true
      // only live copies repeat: a message queued while offline comes from the
      // store once, and the dispatcher sends a shared message to one member once
      if (conn !== undefined && !isShared && typeof packet.brokerId === 'string' && packet.messageId === undefined && conn.isRepeat(packet.brokerId, packet.brokerCounter)) return null
      if (security?.hasAcl && !security.mayReceive({ clientId: client.id, username: conn?.authenticatedAs }, packet.topic)) {
        // delivery is checked too: a client whose read right went away stops receiving
        if (isShared) shared?.refuse(packet.brokerCounter)
        return null
      }
      // [MQTT-3.3.1-1] a message re-sent from the session's queue with its old packet id is a duplicate
      if (packet.qos > 0 && packet.messageId !== undefined && storeOf()?.wasInFlight?.(client.id, packet.brokerId, packet.brokerCounter) === true) {
        packet.dup = true
      }
      if (isShared) {
        // a shared delivery: its QoS and identifier were chosen for the group member
        if (!shared?.onForward(client, packet)) return null
        conn?.sealEncoded()
        return forwardCorrections(client, packet, { subscriptionIdentifiers: false, now: Date.now(), shared: true })
      }
      const forwarded = forwardCorrections(client, packet, {
        subscriptionIdentifiers: conn?.usesSubscriptionIds === true,
        now: Date.now()
      })
      if (forwarded === null || conn === undefined) return forwarded
      // a live QoS 0 delivery: encoded once for all its subscribers, sent by the gateway
      if (forwarded.qos === 0 && typeof forwarded.brokerId === 'string' && conn.version !== undefined &&
        conn.sendEncoded(encodeOnce.frame(forwarded, conn.version))) return null
      conn.sealEncoded()
      return forwarded
    },
    published (packet, client, callback) {
      // the message is in the store for every persistent session: its PUBACK may go
      const conn = client ? bySide.get(client.conn) : undefined
      if (conn !== undefined) {
        if (packet.qos === 1 && packet.messageId !== undefined) conn.onPublished(packet.messageId)
        // a SUBSCRIBE of the client may wait for it (protocol/inbound/retained-order.ts)
        if (packet.retain && packet.qos < 2) conn.retainedRouted()
      }
      callback(null)
    }
  }
  const storeOf = (): StoreExtras | undefined => persistenceOf(aedes) as StoreExtras | undefined
  const sessionOwnership = options.sessionOwnership ?? 'username'

  /**
   * After the client authenticated, before aedes touches any session
   * (lib/protocol/session-claim.ts):
   * 1. a session of another identity is refused: CONNACK 0x87 (3.1.1: 5),
   *    the owner's session and connection untouched;
   * 2. whether a session exists, for Session Present [MQTT-3.2.2-2] [MQTT-3.2.2-3];
   * 3. [MQTT-3.1.2-4] one resumed with Session Expiry 0 keeps its state (its
   *    queue is sent) until it ends at disconnect (keepResumedSession);
   * 4. [MQTT-3.1.2-4] Clean Start discards the previous session, including its
   *    inbound QoS 2 state (aedes 2.0.0-beta.1 keeps it: GHSA-p8r9-qf8w-p73r);
   *    only now, so that a refused client discards nothing.
   */
  function claimSession (conn: Connection, client: Client, callback: AuthenticateDone): void {
    const store = storeOf()
    const id = client.id
    const stored = isCulexStore(store) ? store.getSession(id) : Promise.resolve(undefined)
    stored.then(async (meta) => {
      const other = clientById(aedes, id)
      const otherConn = other === undefined ? undefined : bySide.get(other.conn)
      const verdict = judgeSessionClaim(sessionOwnership, { identity: conn.authenticatedAs ?? null, cleanStart: !conn.resumesSession }, {
        ...(meta !== undefined ? { stored: { owner: meta.owner } } : {}),
        ...(other !== undefined && otherConn !== undefined ? { live: { identity: otherConn.authenticatedAs ?? null, persistent: !other.clean } } : {})
      })
      if (verdict.kind === 'refuse') {
        conn.log.warn({ username: conn.authenticatedAs ?? null, owner: verdict.owner }, 'connection refused: the session of this client id belongs to another user')
        callback(Object.assign(new Error('session belongs to another user'), { returnCode: 5 }) as never, false)
        return
      }
      conn.sessionExisted = verdict.existed
      if (verdict.existed && conn.resumesSession && client.clean && client.version === 5) keepResumedSession(client)
      if (!conn.resumesSession && id && typeof store?.cleanIncoming === 'function') await store.cleanIncoming({ id })
      callback(null, true)
    }).catch((err: unknown) => {
      conn.log.error({ err }, 'looking up the session failed')
      callback(Object.assign(new Error((err as Error).message), { returnCode: 3 }) as never, false)
    })
  }
  const security = options.security
  const authenticators = new Authenticators(options.authenticators)
  if (security?.hasPasswords && !authenticators.get('SCRAM-SHA-256')) authenticators.add(security.scramAuthenticator())
  const limits: Limits = { ...defaultLimits, ...options.limits }
  if (options.persistence !== undefined) aedesOptions.persistence = options.persistence

  let shared: SharedSubscriptions | undefined
  const aedes = await Aedes.createBroker(aedesOptions)
  hardenBroker(aedes)
  // stored session deadlines and delayed wills, enforced across restarts (culex's stores)
  const store = storeOf()
  const sessionExpiry = isCulexStore(store)
    ? await attachSessionExpiry(aedes, store, {
      logger: logger.child({ module: 'sessions' }),
      ownerOf: (client) => bySide.get(client.conn)?.authenticatedAs ?? null,
      onExpired: (clientId) => { shared?.sessionEnded(clientId).catch((err: unknown) => logger.error({ err }, 'ending shared memberships failed')) }
    })
    : undefined
  if (options.shared !== false) {
    const o = options.shared ?? {}
    shared = new SharedSubscriptions(aedes, o.store ?? sharedStoreOf(storeOf()) ?? new MemoryShareStore(), {
      strategy: o.strategy ?? 'round-robin',
      rules: o.rules ?? [],
      redelivery: o.redelivery ?? 'immediate',
      deadLetterTopic: o.deadLetterTopic,
      maxQueued: o.maxQueued ?? 10000,
      overflow: o.overflow ?? 'drop-oldest',
      ...(o.selector ? { selector: o.selector } : {})
    }, logger.child({ module: 'shared' }))
    await shared.setup()
    aedes.on('sessionExpired', (client) => {
      shared?.sessionEnded(client.id).catch((err: unknown) => logger.error({ err }, 'ending shared memberships failed'))
    })
  }

  // after aedes re-sent the session's queued messages: the gateway writes them
  // out, and shared groups may deliver (so they are not taken twice)
  aedes.on('clientReady', (client) => { bySide.get(client.conn)?.ready() })
  // what the client sent behind its CONNECT waited for the CONNACK (inbound/connack-gate.ts)
  aedes.on('connackSent', (_packet, client) => { bySide.get(client.conn)?.brokerSentConnack() })
  aedes.on('clientError', (client, err) => {
    const conn = bySide.get(client.conn)
    ;(conn?.log ?? logger).debug({ err: err.message }, 'client error')
  })
  aedes.on('connectionError', (client, err) => {
    const conn = bySide.get(client.conn)
    ;(conn?.log ?? logger).debug({ err: err.message }, 'connection error')
  })
  ;(aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) => logger.error({ err }, 'broker error'))

  // a resumed session's queue goes to its gateway in one go (persistence QueueSink)
  if (isCulexStore(store)) store.setQueueSink((client) => bySide.get((client as unknown as { conn: object }).conn)?.queueSink())

  const policy = createConnectionPolicy(limits, security, () => aedes.connectedClients)

  // spec 3.4.2.1: 0x10 (No matching subscribers) only when no subscription,
  // live or stored, matches. It is asked for every QoS 1/2 message, right
  // after aedes published it: aedes' own match of the topic against the live
  // subscriptions is remembered then (aedes-internals.ts), and when no
  // session stores a subscription that settles it. Otherwise the answer per
  // topic is cached until any subscription changes.
  const live = liveSubscriptions(aedes)
  let subscriptionEpoch = 0
  const bump = (): void => { subscriptionEpoch++; matchCache.clear() }
  const matchCache = new Map<string, boolean>()
  for (const event of ['subscribe', 'unsubscribe', 'clientDisconnect', 'sessionExpired']) (aedes as unknown as NodeJS.EventEmitter).on(event, bump)
  function remember (topic: string, epoch: number, has: boolean): boolean {
    if (epoch === subscriptionEpoch) {
      if (matchCache.size >= 10000) matchCache.clear()
      matchCache.set(topic, has)
    }
    return has
  }
  function hasSubscribers (topic: string): boolean | Promise<boolean> {
    const store = storeOf()
    const known = live.known(topic)
    if (known !== undefined) {
      if (known > 0) return true
      if (store?.holdsSubscriptions?.() === false) return shared?.hasGroupFor(topic) === true
    }
    const cached = matchCache.get(topic)
    if (cached !== undefined) return cached
    const epoch = subscriptionEpoch
    // culex's stores answer synchronously, and at once when they hold no subscription
    const stored = typeof store?.hasSubscriptionsFor === 'function' ? store.hasSubscriptionsFor(topic) : undefined
    if (stored === true || live.count(topic) > 0 || shared?.hasGroupFor(topic) === true) return remember(topic, epoch, true)
    if (stored === false) return remember(topic, epoch, false)
    if (!store?.subscriptionsByTopic) return true
    return store.subscriptionsByTopic(topic).then(subs => remember(topic, epoch, subs.length > 0))
  }
  shared?.onMembershipChange(bump)
  // one context for every connection: nothing in it is per connection
  const context: ConnectionContext = {
    broker: aedes,
    settings,
    logger,
    authenticators,
    shared,
    policy,
    hasSubscribers,
    async hasIncoming (clientId, packetId) {
      const store = storeOf()
      if (!store?.incomingGetPacket) return true
      try {
        return (await store.incomingGetPacket({ id: clientId }, { messageId: packetId })) != null
      } catch {
        return false
      }
    },
    observer: options.observer ?? noopObserver,
    onClose (c) { connections.delete(c) }
  }
  const broker: CulexBroker = {
    aedes,
    logger,
    settings,
    connections,
    authenticators,
    sharedGroups: shared,
    handle (socket, meta) {
      const conn = new Connection(socket, meta, context)
      connections.add(conn)
      return conn
    },
    connectionOf (client) {
      return bySide.get(client.conn as object)
    },
    async close () {
      for (const conn of [...connections]) conn.shutdown()
      shared?.close()
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
