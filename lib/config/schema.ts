/**
 * The one typed schema for culex's configuration: the CLI flags, the
 * CULEX_* environment variables and the JSON config file are all validated by
 * it (zod), and merged with the precedence flags > env > file > defaults.
 */
import { z } from 'zod'
import { STRATEGIES } from '../shared/strategies.js'

/** A port: 1-65535, 0 = listener off, or "auto" for a port the OS picks (tests, scripts). */
const port = z.union([
  z.literal('auto'),
  z.coerce.number().int().min(0).max(65535)
], { error: 'expected a port number (1-65535), 0 (off) or "auto"' })

/** Booleans arrive as strings from flags and the environment. */
const bool = z.preprocess((v) => {
  if (typeof v !== 'string') return v
  if (['true', '1', 'yes', 'on'].includes(v.toLowerCase())) return true
  if (['false', '0', 'no', 'off'].includes(v.toLowerCase())) return false
  return v
}, z.boolean())

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export const ConfigSchema = z.object({
  /** bind address of every listener; loopback unless set, as mosquitto 2.0 */
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(1883),
  wsPort: port.default(8083),
  tlsPort: port.default(8883),
  wssPort: port.default(8084),
  /** the WebSocket path: ws://host:port/mqtt */
  wsPath: z.string().startsWith('/').default('/mqtt'),
  /** PEM files; TLS and WSS listen only when key and certificate are set */
  tlsKey: z.string().optional(),
  tlsCert: z.string().optional(),
  tlsCa: z.string().optional(),
  /** require a client certificate signed by tlsCa on TLS and WSS */
  requireCertificate: bool.default(false),
  /** a verified client certificate's CN becomes the username */
  certificateUsername: bool.default(false),
  /** clients without credentials may connect; unset: allowed only when bound to loopback (as mosquitto 2.0) */
  allowAnonymous: bool.optional(),
  /** password file written by `culex passwd` (salted scrypt, SCRAM-SHA-256 keys); reloaded on SIGHUP */
  passwordFile: z.string().min(1).optional(),
  /** ACL file in mosquitto's syntax; reloaded on SIGHUP */
  aclFile: z.string().min(1).optional(),
  /** connected clients at most (CONNACK 0x89 Server busy beyond) */
  maxConnections: int(1, 10000000).default(100000),
  /** new connections per second from one address (burst twice that); 0 = no limit (CONNACK 0x9F) */
  connectionRate: int(0, 1000000).default(0),
  /** subscriptions one client may hold (SUBACK 0x97) */
  maxSubscriptionsPerClient: int(1, 10000000).default(1000),
  /** PUBLISH packets per second one client may send (burst twice that); 0 = no limit (DISCONNECT 0x96) */
  publishRate: int(0, 10000000).default(0),
  /**
   * who may take a session by its client id: 'username' = only the user name
   * (or anonymous client) that made it, others get CONNACK 0x87 (3.1.1: 5);
   * 'any' = any client that may connect, as mosquitto
   */
  sessionOwnership: z.enum(['username', 'any']).default('username'),
  /** longest client identifier (CONNACK 0x85) */
  maxClientIdLength: int(1, 65535).default(256),
  dataDir: z.string().min(1).default('./data'),
  persistence: z.enum(['level', 'memory']).default('level'),
  /** make every store write survive power loss, not only a process crash */
  fsync: bool.default(false),
  /** messages queued per offline session (spec 4.1: a server may limit what it stores) */
  maxQueuedMessages: int(1, 100000000).default(1000),
  /** bytes (payload + topic) queued per offline session */
  maxQueuedBytes: int(1024, 1099511627776).default(10485760),
  /** when a session queue is full: drop the oldest (QoS 0 first), or refuse the new message */
  queueOverflow: z.enum(['drop-oldest', 'refuse']).default('drop-oldest'),
  /** retained messages at most; further ones are refused (logged, counted); unset = no limit */
  maxRetained: int(1, 1000000000).optional(),
  /** largest retained payload, bytes; unset = no limit */
  maxRetainedPayload: int(1, 268435455).optional(),
  logLevel: LogLevel.default('info'),
  /** largest packet accepted, advertised in CONNACK (spec 3.2.2.3.6); bytes */
  maximumPacketSize: int(0, 268435460).default(1048576),
  /** inbound QoS 1/2 window, advertised to v5 clients (spec 3.2.2.3.3) */
  receiveMaximum: int(1, 65535).default(100),
  /** inbound topic aliases (spec 3.2.2.3.8); 0 = off */
  topicAliasMaximum: int(0, 65535).default(10),
  maximumQoS: z.coerce.number().pipe(z.union([z.literal(0), z.literal(1), z.literal(2)])).default(2),
  wildcardSubscriptionAvailable: bool.default(true),
  subscriptionIdentifierAvailable: bool.default(true),
  retainAvailable: bool.default(true),
  /** answer 0x99 to a Payload Format Indicator of 1 with a payload that is not UTF-8 */
  validatePayloadFormat: bool.default(true),
  /** outbound QoS 1/2 window for MQTT 3.1.1 clients (MQTT 5 clients state their Receive Maximum) */
  inflightWindow: int(1, 65535).default(100),
  /** messages held for a client whose window is full, before the oldest are dropped */
  maxQueuedOutbound: int(1, 10000000).default(1000),
  /** ms a client that falls behind may slow publishers down before its queue limits apply instead */
  slowConsumerTimeout: int(1, 600000).default(2000),
  /** bytes buffered for a stuck client's socket beyond which QoS 0 messages to it are dropped */
  maxOutboundBuffer: int(65536, 1073741824).default(4194304),
  /** assign topic aliases to messages sent to MQTT 5 clients that accept them */
  outboundTopicAliases: bool.default(true),
  maxTopicLevels: int(1, 100).default(100),
  maxTopicLength: int(1, 65535).default(65535),
  /** largest keep-alive culex accepts, seconds; MQTT 5 clients are told it as Server Keep Alive (spec 3.2.2.3.14); 0 = any */
  keepaliveLimit: int(0, 65535).default(0),
  /** Response Information returned to MQTT 5 clients that ask for it (spec 3.2.2.3.15) */
  responseInformation: z.string().optional(),
  /** send every MQTT 5 client to another server (CONNACK 0x9C, or 0x9D with serverMoved) (spec 4.11) */
  serverReference: z.string().optional(),
  serverMoved: bool.default(false),
  /** seconds a new connection has to send CONNECT */
  connectTimeout: int(1, 3600).default(10),
  /** shared subscriptions, $share/{group}/{filter} (spec 4.8.2) */
  sharedSubscriptions: bool.default(true),
  /** how a group picks the member for a message */
  sharedStrategy: z.enum(STRATEGIES).default('round-robin'),
  /** per-group strategies: [{ "pattern": "jobs-*", "strategy": "least-inflight" }], first match wins */
  sharedStrategies: z.preprocess((v) => (typeof v === 'string' ? JSON.parse(v) as unknown : v),
    z.array(z.object({ pattern: z.string().min(1), strategy: z.enum(STRATEGIES) }).strict())).default([]),
  /** QoS 1 messages in flight to a member that disconnects: to another member at once, or when its session ends */
  sharedRedelivery: z.enum(['immediate', 'session-end']).default('immediate'),
  /** publish messages a member refused (PUBACK/PUBREC >= 0x80) to this topic, e.g. $dlq/{group}/{topic}; off when unset */
  sharedDeadLetterTopic: z.string().min(1).optional(),
  /** messages a group queues while no member can take them */
  sharedMaxQueued: int(1, 100000000).default(100000),
  sharedOverflow: z.enum(['drop-oldest', 'refuse']).default('drop-oldest'),
  /** Prometheus /metrics on the WebSocket HTTP server */
  metrics: bool.default(true),
  /** seconds between $SYS publications; 0 = off */
  sysInterval: int(0, 86400).default(10),
  /** publish client lifecycle CloudEvents to $events/client/{clientId}/... */
  lifecycleEvents: bool.default(false)
}).strict()

export type Config = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>

export const configKeys = Object.keys(ConfigSchema.shape) as Array<keyof Config>
