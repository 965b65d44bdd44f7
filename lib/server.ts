/**
 * startServer: the broker with every configured listener, as `culex` runs
 * it. Tests use the same function with ports set to "auto".
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { ConfigSchema, type Config, type ConfigInput } from './config/schema.js'
import { createBroker, type AedesPersistence, type CulexBroker } from './broker.js'
import { listenTcp, listenTls, type TlsFiles } from './transports/tcp.js'
import { listenHttp, type HttpListener } from './transports/http.js'
import type { Listener } from './transports/listener.js'
import { silentLogger } from './logging.js'
import { CulexError } from './errors.js'
import { openStore } from './store.js'
import { createObservability } from './metrics/index.js'
import type { Authenticator } from './protocol/auth.js'
import { SecurityPolicy } from './auth/policy.js'
import { startDashboard, type AdminServer } from './admin/index.js'
import type { ClusterNode } from './cluster/index.js'

export interface CulexServer {
  readonly config: Config
  readonly broker: CulexBroker
  readonly tcp?: Listener
  readonly tls?: Listener
  readonly ws?: HttpListener
  readonly wss?: HttpListener
  /** the dashboard, admin API, /metrics and health on adminHost:adminPort, with `dashboard` on */
  readonly admin?: AdminServer
  readonly listeners: readonly Listener[]
  readonly security: SecurityPolicy
  /** this node's part in the cluster, with `cluster` set */
  readonly cluster?: ClusterNode
  /** re-reads the password and ACL files (SIGHUP) without dropping connections */
  reload (): Promise<void>
  /** stop accepting, DISCONNECT 0x8B to clients, close listeners and store */
  close (): Promise<void>
}

export interface StartOptions {
  logger?: Logger
  /** a store to use instead of the one `config.persistence` names */
  persistence?: AedesPersistence
  /** enhanced authentication methods (spec 4.12) in addition to the built-in ones */
  authenticators?: readonly Authenticator[]
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

export function isLoopback (host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.')
}

/**
 * The plain-text listeners (TCP, WebSocket) that take credentials where
 * others can listen: bound to a non-loopback address while passwords (the
 * password file, also used by SCRAM) or another authentication method are
 * configured. TLS listeners and loopback are not exposed.
 */
export function plainTextCredentialListeners (host: string, listeners: readonly Listener[], acceptsCredentials: boolean): Listener[] {
  if (!acceptsCredentials || isLoopback(host)) return []
  return listeners.filter(l => l.name === 'tcp' || l.name === 'ws')
}

export async function startServer (input: ConfigInput | Config = {}, options: StartOptions = {}): Promise<CulexServer> {
  const config = ConfigSchema.parse(input)
  const logger = options.logger ?? silentLogger()
  const tlsFiles = await loadTls(config)
  // the cluster's modules (and ioredis) load only for a cluster node
  const clusterModule = config.cluster !== undefined ? await import('./cluster/index.js') : undefined
  // before anything else opens: an unreachable Redis stops the start (CULEX_ERR_CLUSTER_UNREACHABLE)
  const cluster = config.cluster !== undefined && clusterModule !== undefined ? await clusterModule.ClusterNode.connect(config.cluster, logger, { fsync: config.fsync }) : undefined
  const persistence = options.persistence ?? openStore(config, logger, cluster)
  const observability = createObservability(config, logger)
  // mosquitto 2.0: anonymous access only on loopback unless allowed explicitly
  const allowAnonymous = config.allowAnonymous ?? isLoopback(config.host)
  const security = await SecurityPolicy.load({
    allowAnonymous,
    passwordFile: config.passwordFile,
    aclFile: config.aclFile,
    certificateUsername: config.certificateUsername
  }, logger.child({ module: 'security' }))

  const broker = await createBroker({
    logger,
    observer: observability.observer,
    security,
    limits: {
      maxConnections: config.maxConnections,
      connectionRate: config.connectionRate,
      maxSubscriptionsPerClient: config.maxSubscriptionsPerClient,
      publishRate: config.publishRate,
      maxClientIdLength: config.maxClientIdLength
    },
    shared: config.sharedSubscriptions
      ? {
          strategy: config.sharedStrategy,
          rules: [...config.sharedGroups, ...config.sharedStrategies],
          redelivery: config.sharedRedelivery,
          deadLetterTopic: config.sharedDeadLetterTopic,
          maxQueued: config.sharedMaxQueued,
          overflow: config.sharedOverflow
        }
      : false,
    authenticators: options.authenticators ?? [],
    sessionOwnership: config.sessionOwnership,
    ...(cluster !== undefined ? { cluster } : {}),
    persistence,
    topicAliasMaximum: config.topicAliasMaximum,
    connectTimeout: config.connectTimeout * 1000,
    keepaliveLimit: config.keepaliveLimit,
    ...(config.responseInformation !== undefined ? { responseInformation: config.responseInformation } : {}),
    ...(config.serverReference !== undefined ? { redirect: { serverReference: config.serverReference, moved: config.serverMoved } } : {}),
    protocol: {
      maximumPacketSize: config.maximumPacketSize,
      receiveMaximum: config.receiveMaximum,
      maximumQoS: config.maximumQoS,
      retainAvailable: config.retainAvailable,
      validatePayloadFormat: config.validatePayloadFormat,
      inflightWindow: config.inflightWindow,
      maxQueuedOutbound: config.maxQueuedOutbound,
      outboundTopicAliases: config.outboundTopicAliases,
      slowConsumerTimeout: config.slowConsumerTimeout,
      maxOutboundBuffer: config.maxOutboundBuffer,
      maxTopicLevels: config.maxTopicLevels,
      maxTopicLength: config.maxTopicLength,
      wildcardSubscriptionAvailable: config.wildcardSubscriptionAvailable,
      subscriptionIdentifierAvailable: config.subscriptionIdentifierAvailable
    }
  })

  const listeners: Listener[] = []
  const result: { tcp?: Listener, tls?: Listener, ws?: HttpListener, wss?: HttpListener } = {}
  try {
    const maxPayload = config.maximumPacketSize > 0 ? config.maximumPacketSize : 268435460
    if (config.port !== 0) listeners.push(result.tcp = await listenTcp(broker, config.host, config.port))
    if (config.wsPort !== 0) {
      listeners.push(result.ws = await listenHttp(broker, { host: config.host, port: config.wsPort, wsPath: config.wsPath, maxPayload }))
    }
    if (tlsFiles && config.tlsPort !== 0) listeners.push(result.tls = await listenTls(broker, config.host, config.tlsPort, tlsFiles))
    if (tlsFiles && config.wssPort !== 0) {
      listeners.push(result.wss = await listenHttp(broker, { host: config.host, port: config.wssPort, wsPath: config.wsPath, tls: tlsFiles, maxPayload }))
    }
    // the default node id names the MQTT port, known once bound
    if (cluster !== undefined && clusterModule !== undefined) {
      const { defaultNodeId, localHostName } = clusterModule
      await cluster.join({ nodeId: config.nodeId ?? defaultNodeId(localHostName(), (listeners[0]?.address().port ?? 0)), sharedMaxQueued: config.sharedMaxQueued, sharedOverflow: config.sharedOverflow })
    }
  } catch (err) {
    await Promise.all(listeners.map(l => l.close()))
    await broker.close()
    await cluster?.close()
    throw err
  }

  observability.attach({ broker, http: [result.ws, result.wss].filter((l): l is HttpListener => l !== undefined), listeners })
  let admin: AdminServer | undefined
  if (config.dashboard && config.adminPort !== 0) {
    try {
      admin = await startDashboard(config, { broker, observability, security, tls: tlsFiles, logger })
    } catch (err) {
      await Promise.all(listeners.map(l => l.close()))
      await observability.close()
      await broker.close()
      throw err
    }
  }

  for (const l of listeners) logger.info({ listener: l.name, url: l.url() }, `listening on ${l.url()}`)
  if (admin) {
    logger.info({ listener: 'admin', url: admin.url() }, `dashboard, admin API, /metrics and health on ${admin.url()}`)
    if (!isLoopback(config.adminHost)) {
      logger.warn({ adminHost: config.adminHost, url: admin.url() },
        'the dashboard, admin API, /metrics and health are reachable on a non-loopback address: anyone who can reach it may try to log in; serve it over TLS (tlsKey, tlsCert) or bind it to loopback (adminHost)')
    }
  }
  if ((config.metrics || config.wsHealth) && !isLoopback(config.host) && (result.ws || result.wss)) {
    logger.warn({ host: config.host, metrics: config.metrics, wsHealth: config.wsHealth },
      'HTTP endpoints (/metrics, /healthz, /readyz) are served on the WebSocket listeners on a non-loopback address; metrics false and wsHealth false turn them off there')
  }
  const exposed = plainTextCredentialListeners(config.host, listeners, config.passwordFile !== undefined || (options.authenticators?.length ?? 0) > 0)
  if (exposed.length > 0) {
    logger.warn({ host: config.host, listeners: exposed.map(l => l.url()) },
      'credentials are accepted in clear text on a non-loopback address: anyone on the network path can read passwords and sessions. ' +
      'Serve clients over TLS only (tlsPort, wssPort) and turn the plain listeners off (port 0, wsPort 0), or bind to loopback')
  }
  if (isLoopback(config.host)) {
    logger.info('bound to loopback only; set --host 0.0.0.0 (or CULEX_HOST) to listen on other addresses')
  }
  logger.info({ allowAnonymous, passwordFile: config.passwordFile, aclFile: config.aclFile },
    allowAnonymous
      ? 'anonymous clients are allowed' + (config.allowAnonymous === undefined ? ' (loopback only; set allowAnonymous to decide explicitly)' : '')
      : 'anonymous clients are refused: clients need credentials')

  let closing: Promise<void> | undefined
  return {
    config,
    broker,
    ...result,
    ...(admin ? { admin } : {}),
    listeners,
    security,
    ...(cluster !== undefined ? { cluster } : {}),
    async reload () {
      try {
        await security.reload()
      } catch (err) {
        logger.error({ err }, 'reload failed: the previous password file and ACL stay in force')
        throw err
      }
    },
    close () {
      closing ??= (async () => {
        // 1. stop accepting; 2. DISCONNECT 0x8B and close clients; 3. close the store
        const stopped = Promise.all([...listeners.map(l => l.close()), admin?.close()])
        await observability.close()
        await broker.close()
        await stopped
        await cluster?.close()
        logger.info('broker stopped')
      })()
      return closing
    }
  }
}

async function loadTls (config: Config): Promise<TlsFiles | undefined> {
  if (!config.tlsKey && !config.tlsCert) return undefined
  if (!config.tlsKey || !config.tlsCert) throw new CulexError('CULEX_ERR_TLS_CONFIG', ['set both tlsKey and tlsCert'])
  const [key, cert, ca] = await Promise.all([
    readFile(config.tlsKey), readFile(config.tlsCert), config.tlsCa ? readFile(config.tlsCa) : undefined
  ])
  return { key, cert, ca, requireCertificate: config.requireCertificate }
}
