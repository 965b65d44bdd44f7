/**
 * The one typed schema for culex's configuration: the CLI flags, the
 * CULEX_* environment variables and the JSON config file are all validated by
 * it (zod), and merged with the precedence flags > env > file > defaults.
 */
import { z } from 'zod'
import { STRATEGIES } from '../shared/strategy-names.js'

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

/** A Redis URL: redis:// or rediss:// (TLS) with a host; a port, password and database number are optional. */
const redisUrl = z.string().refine((v) => {
  try {
    const u = new URL(v)
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname.length > 0
  } catch {
    return false
  }
}, { error: 'expected a Redis URL: redis://host:port or rediss://host:port' })

/** A node id: part of Redis key names and of $SYS topics, so no MQTT wildcard, no '/' and no spaces. */
const nodeId = z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, { error: 'expected 1-64 letters, digits, ".", "_", ":" or "-"' })

/**
 * A structured setting: a flag or an environment variable gives it as JSON
 * text, a config file as JSON itself. Text that is not JSON is an issue of
 * this field (so the error names it), never a thrown SyntaxError.
 */
function jsonFromString<T extends z.ZodType> (schema: T): z.ZodPreprocess<T> {
  return z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v
    try {
      return JSON.parse(v) as unknown
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not valid JSON (${(err as Error).message})`, input: v })
      return z.NEVER
    }
  }, schema)
}

/** A list of names: a JSON array in a file, comma-separated text from a flag or the environment. */
const nameList = z.preprocess((v) => typeof v === 'string' ? v.split(',').map(s => s.trim()).filter(s => s.length > 0) : v, z.array(z.string().min(1)))

/**
 * One entry of `sharedGroups`: what a shared group whose name matches
 * `pattern` (`*` = any characters) does with its messages. A field left out
 * takes the default (lib/shared/policy.ts `DEFAULT_POLICY`).
 */
const GroupRule = z.object({
  pattern: z.string().min(1),
  strategy: z.enum(STRATEGIES).optional(),
  /** deliveries of one message at most; the next would be dead-lettered as poison */
  maxDeliveries: int(1, 1000000).optional(),
  /** delay before an abandoned message is offered again: initial * factor^(deliveries - 1), at most max (ms) */
  retryBackoff: z.object({
    initial: int(0, 86400000).default(1000),
    factor: z.number().min(1).max(1000).default(2),
    max: int(0, 86400000).default(60000)
  }).strict().refine((b) => b.max >= b.initial, { message: 'max must be at least initial' }).optional(),
  /** ms a connected member may hold a QoS 1 delivery without acknowledging it; unset = no limit */
  ackTimeout: int(1, 86400000).optional(),
  deadLetterTopic: z.string().min(1).optional()
}).strict()

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

/**
 * Every setting with its type, default and a one-sentence description: the
 * description is what `culex --help` prints, and test/e2e/cli/readme-config.test.ts
 * checks the README's table against these keys and defaults.
 */
export const ConfigSchema = z.object({
  host: z.string().min(1).default('127.0.0.1').describe('address every listener binds to; loopback only unless set, as mosquitto 2.0'),
  port: port.default(1883).describe('MQTT over TCP port (0 = off, "auto" = a free port the OS picks)'),
  wsPort: port.default(8083).describe('MQTT over WebSocket port, which also serves the HTTP endpoints (0 = off)'),
  tlsPort: port.default(8883).describe('MQTT over TLS port; listens only with tlsKey and tlsCert (0 = off)'),
  wssPort: port.default(8084).describe('MQTT over secure WebSocket port; listens only with tlsKey and tlsCert (0 = off)'),
  wsPath: z.string().startsWith('/').default('/mqtt').describe('path of the WebSocket endpoint (ws://host:port/mqtt)'),
  tlsKey: z.string().optional().describe('PEM private key file for TLS and secure WebSocket'),
  tlsCert: z.string().optional().describe('PEM certificate file for TLS and secure WebSocket'),
  tlsCa: z.string().optional().describe('PEM CA file that client certificates must be signed by'),
  requireCertificate: bool.default(false).describe('require a client certificate signed by tlsCa on TLS and secure WebSocket'),
  certificateUsername: bool.default(false).describe('use a verified client certificate\'s CN as the username'),
  allowAnonymous: bool.optional().describe('let clients connect without credentials; unset: allowed only when bound to loopback, as mosquitto 2.0'),
  passwordFile: z.string().min(1).optional().describe('password file written by `culex passwd` (salted scrypt, SCRAM-SHA-256 keys); reloaded on SIGHUP'),
  aclFile: z.string().min(1).optional().describe('ACL file in mosquitto\'s syntax; reloaded on SIGHUP'),
  maxConnections: int(1, 10000000).default(100000).describe('connected clients at most (CONNACK 0x89 Server busy beyond)'),
  connectionRate: int(0, 1000000).default(0).describe('new connections per second from one address, burst twice that; 0 = no limit (CONNACK 0x9F)'),
  maxSubscriptionsPerClient: int(1, 10000000).default(1000).describe('subscriptions one client may hold (SUBACK 0x97 beyond)'),
  publishRate: int(0, 10000000).default(0).describe('PUBLISH packets per second one client may send, burst twice that; 0 = no limit (DISCONNECT 0x96)'),
  sessionOwnership: z.enum(['username', 'any']).default('username').describe("who may take a session by its client id: 'username' = only the user (or anonymous client) that made it, others get CONNACK 0x87 (3.1.1: 5); 'any' = any client that may connect, as mosquitto"),
  maxClientIdLength: int(1, 65535).default(256).describe('longest client identifier, in characters (CONNACK 0x85 beyond)'),
  dataDir: z.string().min(1).default('./data').describe('directory of the LevelDB store'),
  persistence: z.enum(['level', 'memory']).default('level').describe('store: level (durable, in dataDir) or memory; a cluster node uses its Redis instead'),
  cluster: redisUrl.optional().describe('join the cluster whose state is in this Redis (7.0 or newer), e.g. `redis://127.0.0.1:6379`; unset = a single node'),
  nodeId: nodeId.optional().describe('this node\'s id in the cluster; unset = {host name}-{MQTT port}, stable across restarts on the same port'),
  fsync: bool.default(false).describe('sync every store write to disk, so acknowledged messages survive power loss and not only a crash; in a cluster, refuse to start unless Redis has appendonly yes and appendfsync always'),
  maxQueuedMessages: int(1, 100000000).default(1000).describe('messages queued per offline session'),
  maxQueuedBytes: int(1024, 1099511627776).default(10485760).describe('bytes (payload and topic) queued per offline session'),
  queueOverflow: z.enum(['drop-oldest', 'refuse']).default('drop-oldest').describe('when an offline queue is full: drop-oldest (QoS 0 first) or refuse the new message'),
  maxRetained: int(1, 1000000000).optional().describe('retained messages at most; further ones are refused, logged and counted; unset = no limit'),
  maxRetainedPayload: int(1, 268435455).optional().describe('largest retained payload, in bytes; unset = no limit'),
  logLevel: LogLevel.default('info').describe('log level: fatal, error, warn, info, debug, trace or silent'),
  maximumPacketSize: int(0, 268435460).default(1048576).describe('largest packet accepted, in bytes, advertised in CONNACK (0 = no limit)'),
  receiveMaximum: int(1, 65535).default(100).describe('QoS 1/2 messages a client may have in flight to culex, advertised to MQTT 5 clients'),
  topicAliasMaximum: int(0, 65535).default(10).describe('topic aliases an MQTT 5 client may use (0 = off)'),
  maximumQoS: z.coerce.number().pipe(z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' })).default(2).describe('highest QoS culex accepts and grants: 0, 1 or 2'),
  wildcardSubscriptionAvailable: bool.default(true).describe('allow subscriptions with wildcards (+ and #)'),
  subscriptionIdentifierAvailable: bool.default(true).describe('allow MQTT 5 subscription identifiers'),
  retainAvailable: bool.default(true).describe('allow retained messages (DISCONNECT 0x9A when off)'),
  validatePayloadFormat: bool.default(true).describe('answer PUBACK 0x99 to a Payload Format Indicator of 1 with a payload that is not UTF-8'),
  inflightWindow: int(1, 65535).default(100).describe('QoS 1/2 messages in flight to an MQTT 3.1.1 client (MQTT 5 clients state their Receive Maximum)'),
  maxQueuedOutbound: int(1, 10000000).default(1000).describe('messages held for a client whose window is full, before the oldest are dropped'),
  slowConsumerTimeout: int(1, 600000).default(2000).describe('milliseconds a client that falls behind may slow publishers down before its queue limits apply'),
  maxOutboundBuffer: int(65536, 1073741824).default(4194304).describe('bytes buffered for a stuck client\'s socket beyond which QoS 0 messages to it are dropped'),
  outboundTopicAliases: bool.default(true).describe('assign topic aliases to messages sent to MQTT 5 clients that accept them'),
  maxTopicLevels: int(1, 100).default(100).describe('most levels in a topic or filter'),
  maxTopicLength: int(1, 65535).default(65535).describe('longest topic or filter, in bytes'),
  keepaliveLimit: int(0, 65535).default(0).describe('largest keep-alive accepted, in seconds, told to MQTT 5 clients as Server Keep Alive; 0 = any'),
  responseInformation: z.string().optional().describe('Response Information returned to MQTT 5 clients that ask for it; unset = none'),
  serverReference: z.string().optional().describe('send every MQTT 5 client to this server (CONNACK 0x9C, or 0x9D with serverMoved); unset = off'),
  serverMoved: bool.default(false).describe('with serverReference: the server moved for good (CONNACK 0x9D instead of 0x9C)'),
  connectTimeout: int(1, 3600).default(10).describe('seconds a new connection has to send CONNECT'),
  sharedSubscriptions: bool.default(true).describe('allow shared subscriptions, $share/{group}/{filter}'),
  sharedStrategy: z.enum(STRATEGIES).default('round-robin').describe('how a group picks the member for a message: round-robin, random, sticky, hash-clientid, hash-topic or least-inflight'),
  sharedGroups: jsonFromString(z.array(GroupRule)).default([]).describe('per-group strategy and queue policy as JSON, first matching pattern wins: [{"pattern":"jobs-*","strategy":"least-inflight","maxDeliveries":5,"retryBackoff":{"initial":1000,"factor":2,"max":60000},"ackTimeout":30000,"deadLetterTopic":"$dlq/{group}/{topic}"}]'),
  sharedStrategies: jsonFromString(z.array(z.object({ pattern: z.string().min(1), strategy: z.enum(STRATEGIES) }).strict())).default([]).describe('deprecated, use sharedGroups: per-group strategies as JSON, after those of sharedGroups: [{"pattern":"jobs-*","strategy":"least-inflight"}]'),
  sharedRedelivery: z.enum(['immediate', 'session-end']).default('immediate').describe('unacknowledged QoS 1 messages of a member that drops: to another member immediate or at session-end'),
  sharedDeadLetterTopic: z.string().min(1).optional().describe('publish messages a member refused (PUBACK/PUBREC 0x80 or above) to this topic, e.g. $dlq/{group}/{topic}; unset = off'),
  sharedMaxQueued: int(1, 100000000).default(100000).describe('messages a group queues while no member can take them'),
  sharedOverflow: z.enum(['drop-oldest', 'refuse']).default('drop-oldest').describe('when a group queue is full: drop-oldest or refuse the new message'),
  metrics: bool.default(true).describe('serve Prometheus /metrics on the WebSocket HTTP server'),
  wsHealth: bool.default(true).describe('serve /healthz and /readyz on the WebSocket HTTP server (the admin listener serves them as well)'),
  sysInterval: int(0, 86400).default(10).describe('seconds between $SYS publications; 0 = off'),
  lifecycleEvents: bool.default(false).describe('publish client lifecycle CloudEvents to $events/client/{clientId}/...'),
  dashboard: bool.default(false).describe('serve the browser dashboard (/ui/) and its JSON API (/api/v1/) on the admin listener'),
  adminHost: z.string().min(1).default('127.0.0.1').describe('address the admin listener (dashboard, API, /metrics, /healthz, /readyz) binds to'),
  adminPort: port.default(18083).describe('admin listener port; it listens only with dashboard on (0 = off)'),
  dashboardAdmins: nameList.default([]).describe('users of the password file with the admin role on the dashboard (disconnect, delete), comma-separated; everyone else is a viewer')
}).strict()

export type Config = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>

export const configKeys = Object.keys(ConfigSchema.shape) as Array<keyof Config>
