// The contract between the harness and the load-generator child process:
// one Job goes in as JSON on stdin, one LoadgenOutput comes back as a JSON
// line on stdout. Both sides import these types, so they cannot drift.

export type QoS = 0 | 1 | 2
/** 4 = MQTT 3.1.1, 5 = MQTT 5.0 */
export type ProtocolVersion = 4 | 5
export type Transport = 'tcp' | 'ws'

/** One node of a cluster under test. */
export interface ClusterNodeTarget {
  readonly port: number
  readonly pid: number
}

/** A cluster under test: its nodes (node 0 is also the Target's port and pid) and its redis-server. */
export interface ClusterTarget {
  readonly nodes: readonly ClusterNodeTarget[]
  readonly redisPid: number
  readonly redisPort: number
}

export interface Target {
  /** Always a loopback address; the load generator refuses anything else. */
  readonly host: string
  readonly port: number
  readonly wsPort: number | null
  readonly wsPath: string
  /** Broker pid, so the load generator can read /proc at window edges. */
  readonly brokerPid: number
  readonly protocolVersion: ProtocolVersion
  /** Set for a cluster: windows then measure every node plus redis-server. */
  readonly cluster?: ClusterTarget
  /** The broker's MQTT-over-TLS port, when it was started with one. */
  readonly tlsPort?: number | null
}

/**
 * How the load generator's TLS client connects: it trusts only the run's
 * certificate and offers one version, one cipher suite and one key exchange
 * group, so the broker cannot negotiate anything else.
 */
export interface TlsClientSettings {
  readonly caPem: string
  readonly ciphers: string
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3'
  readonly maxVersion: 'TLSv1.2' | 'TLSv1.3'
  readonly ecdhCurve: string
}

/** What a TLS handshake settled on, as the client saw it. */
export interface NegotiatedTls {
  readonly protocol: string
  readonly cipher: string
  /** Key exchange group (e.g. X25519); null when the handshake had none. */
  readonly group: string | null
}

/** Publishers → subscribers throughput/latency run (fan-in, fan-out, shared, ws). */
export interface FlowJob {
  readonly kind: 'flow'
  readonly target: Target
  readonly publishers: number
  readonly messagesPerPublisher: number
  /**
   * Messages each publisher sends through the same path before the window
   * opens, so a Node broker's JIT is warm and the figure is steady state.
   */
  readonly warmupPerPublisher: number
  readonly payloadBytes: number
  readonly publishQos: QoS
  /** Max unacknowledged QoS 1/2 PUBLISHes per publisher. */
  readonly inflight: number
  /** Publisher i publishes to `${topicPrefix}/${i}`. */
  readonly topicPrefix: string
  /** Total messages per second across publishers; null = as fast as possible. */
  readonly ratePerSecond: number | null
  readonly subscribers: number
  readonly subscribeFilter: string
  readonly subscribeQos: QoS
  readonly subscriberTransport: Transport
  /** every: each subscriber must get every message; one: exactly one subscriber gets it (shared group). */
  readonly delivery: 'every' | 'one'
  readonly measureLatency: boolean
  readonly keepLatencySamples: boolean
  readonly timeoutMs: number
  /** End the window early when nothing arrives for this long after publishing finished. */
  readonly stallMs: number
  /**
   * Cluster only: publisher i connects to node publisherNodes[i % length],
   * subscriber j to node subscriberNodes[j % length] (indices into
   * target.cluster.nodes). Absent: everything connects to target.port.
   */
  readonly publisherNodes?: readonly number[]
  readonly subscriberNodes?: readonly number[]
  /** Wait this long after the last SUBACK, so other nodes learn the subscriptions first. */
  readonly afterSubscribeMs?: number
  /**
   * Subscribers keep a session (3.1.1 Clean Session 0; MQTT 5 Clean Start 0
   * and a Session Expiry Interval of an hour), so the broker owes them the
   * QoS 1/2 messages it acknowledged even across a disconnect. Default: clean.
   */
  readonly persistentSubscribers?: boolean
}

/** Many idle connections: broker memory per connection and connect cost. */
export interface IdleJob {
  readonly kind: 'idle'
  readonly target: Target
  readonly connections: number
  readonly concurrency: number
  readonly timeoutMs: number
  /** Connect over TLS to target.tlsPort with these settings; absent: plain TCP. */
  readonly tls?: TlsClientSettings
  /** How long one CONNECT may wait for its CONNACK; absent: the load generator's default (a broker under callgrind needs more) */
  readonly connectTimeoutMs?: number
}

/** Offline persistent sessions with queued messages, then a reconnect storm. */
export interface DrainJob {
  readonly kind: 'drain'
  readonly target: Target
  readonly sessions: number
  readonly messagesPerSession: number
  readonly payloadBytes: number
  readonly concurrency: number
  readonly timeoutMs: number
  readonly stallMs: number
  /**
   * `callgrind`: the broker runs under callgrind (benchmarks/instructions.ts);
   * its counts so far are dumped as the reconnect phase starts, so that what
   * queueing and what the drain cost are counted apart.
   */
  readonly markPhases?: 'callgrind'
}

export interface RetainedLookup {
  readonly filter: string
  /** Retained messages one SUBSCRIBE to `filter` should return. */
  readonly expected: number
  /**
   * Fresh subscriptions made one after another inside the window. Small
   * lookups cost less than the 10 ms CPU tick, so they are repeated and the
   * scenario reports the per-lookup average.
   */
  readonly rounds: number
}

/** Store many retained messages, then time subscriptions that match them. */
export interface RetainedJob {
  readonly kind: 'retained'
  readonly target: Target
  readonly count: number
  readonly payloadBytes: number
  readonly lookups: readonly RetainedLookup[]
  /**
   * The retained messages are already stored (an earlier job's): the job
   * only looks them up (`instructions --workload retained` counts that part).
   */
  readonly alreadyStored?: boolean
  readonly timeoutMs: number
  readonly stallMs: number
}

/**
 * Cluster: one client id moved back and forth between nodes 0 and 1, each
 * CONNECT on the node that does not hold the connection now.
 */
export interface TakeoverJob {
  readonly kind: 'takeover'
  readonly target: Target
  /** Measured takeovers. */
  readonly rounds: number
  /** Takeovers before them, unmeasured (JIT, connection pools). */
  readonly warmupRounds: number
  /** How long a takeover may take before it counts as not completed. */
  readonly roundTimeoutMs: number
  readonly timeoutMs: number
}

/**
 * Cluster: clients with wills on one node, a subscriber to the wills on
 * another; the load generator SIGKILLs the clients' node and times the wills.
 */
export interface WillJob {
  readonly kind: 'will'
  readonly target: Target
  readonly clients: number
  /** Index of the node the will clients connect to, and the one killed. */
  readonly clientNode: number
  readonly subscriberNode: number
  readonly willQos: QoS
  /** Wait this long after the last client's CONNACK before the kill. */
  readonly beforeKillMs: number
  /** How long after the kill wills are awaited. */
  readonly timeoutMs: number
}

/**
 * Cluster: persistent sessions left behind on the nodes, each subscribed to
 * its own topic at QoS 1, then disconnected (the session stays).
 */
export interface SeedJob {
  readonly kind: 'seed'
  readonly target: Target
  /** Sessions, spread round-robin over the cluster's nodes. */
  readonly sessions: number
  readonly concurrency: number
  readonly timeoutMs: number
}

export type Job = FlowJob | IdleJob | DrainJob | RetainedJob | TakeoverJob | WillJob | SeedJob | StormJob

/**
 * A reconnect storm: persistent MQTT 5 sessions (one QoS 1 subscription
 * each) go offline, messages are queued for them, then they all reconnect
 * within `spreadMs`, at most `concurrency` connects outstanding at a time.
 */
export interface StormJob {
  readonly kind: 'storm'
  readonly target: Target
  readonly sessions: number
  readonly messagesPerSession: number
  readonly payloadBytes: number
  /** CONNECTs are started evenly over this long from the window's start. */
  readonly spreadMs: number
  /** Connects sent but not yet acknowledged, at most (the listen backlog's share). */
  readonly concurrency: number
  /** Broker RSS is read this often during the storm. */
  readonly rssIntervalMs: number
  readonly timeoutMs: number
  readonly stallMs: number
}

/** A measured window: wall time and the broker's CPU/RSS across it. */
export interface WindowMeasure {
  readonly wallMs: number
  /** Sum over the measured processes (a cluster: every node and redis-server). */
  readonly brokerCpuS: number
  /** A cluster's CPU per process, in the order of its nodes then redis-server. */
  readonly cpuByProcessS?: readonly number[]
  /** Summed over the measured processes. */
  readonly rssStartKiB: number
  readonly rssEndKiB: number
}

export interface Integrity {
  /** Deliveries that should have happened. */
  readonly expected: number
  /** Distinct expected deliveries seen. */
  readonly unique: number
  /** expected − unique */
  readonly lost: number
  /** Deliveries of a (subscriber or group, publisher, seq) already seen. */
  readonly duplicated: number
  /** Deliveries older than one already seen on the same subscriber/publisher stream. */
  readonly reordered: number
  /** Messages that did not carry a valid benchmark payload. */
  readonly unexpected: number
  /** Deliveries not expected because the broker refused the PUBLISH (reason ≥ 0x80). */
  readonly refused: number
}

export interface LatencySummary {
  readonly count: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly samplesMs: readonly number[] | null
}

export interface Ending {
  /** The hard wall-clock bound was hit. */
  readonly timedOut: boolean
  /** Publishing finished but deliveries stopped short of the expected count. */
  readonly stalled: boolean
  /** First few connection-level errors (broker closed a connection, parse errors). */
  readonly errors: readonly string[]
}

export interface FlowResult extends Ending {
  readonly kind: 'flow'
  /** Set when the broker refused the subscription (e.g. SUBACK 0x9E for $share). */
  readonly rejected: { readonly filter: string, readonly reasonCode: number } | null
  readonly sent: number
  readonly acked: number
  /** Acknowledgements carrying a failure reason code (MQTT 5). */
  readonly nacked: number
  /** Failure reason code (hex) → count. */
  readonly nackReasons: Readonly<Record<string, number>>
  readonly deliveries: number
  readonly integrity: Integrity
  readonly window: WindowMeasure
  readonly latency: LatencySummary | null
  /** Cluster only: Redis commands called during the window (INFO commandstats), command → calls. */
  readonly redisCommands: Readonly<Record<string, number>> | null
}

export interface IdleResult extends Ending {
  readonly kind: 'idle'
  /** Connections in the measured set (the total minus the warm-up tenth). */
  readonly requested: number
  readonly opened: number
  readonly failed: number
  /** Connections opened (and held) before the window, not measured. */
  readonly warmup: number
  /** Measured set only: from its first CONNECT to its last CONNACK. */
  readonly window: WindowMeasure
  /** RSS once all connections are up and the broker has gone quiet. */
  readonly rssIdleKiB: number
  /** TLS runs: what the handshakes negotiated, each distinct outcome once. */
  readonly negotiated?: readonly NegotiatedTls[]
  /** The measured window's edges on the monotonic clock V8 stamps profile samples with (µs). */
  readonly monotonicStartUs?: number
  readonly monotonicEndUs?: number
}

export interface DrainResult extends Ending {
  readonly kind: 'drain'
  readonly sessions: number
  readonly sessionsPresent: number
  /** Queue-filling phase (not the figure of merit, reported for context). */
  readonly fill: WindowMeasure
  /** Reconnect-and-drain phase: the measured window. */
  readonly window: WindowMeasure
  readonly integrity: Integrity
  /** The measured window's edges on the monotonic clock V8 stamps profile samples with (µs). */
  readonly monotonicStartUs?: number
  readonly monotonicEndUs?: number
}

export interface StormResult extends Ending {
  readonly kind: 'storm'
  readonly sessions: number
  readonly sessionsPresent: number
  readonly reconnected: number
  /** Queue-filling phase, for context. */
  readonly fill: WindowMeasure
  /** From the first reconnect to the last queued message delivered (and its PUBACK written). */
  readonly window: WindowMeasure
  /** Broker CPU from the first reconnect until it was quiet again after the last delivery (acknowledgements handled). */
  readonly cpuUntilQuietS: number
  /** From the window's start to the last connect started / the last CONNACK received. */
  readonly lastConnectStartedMs: number
  readonly lastConnackMs: number
  /** Times a due connect waited because `concurrency` connects were outstanding. */
  readonly concurrencyWaits: number
  /** Highest broker VmRSS seen during the storm (polled), and VmHWM at its end. */
  readonly peakRssKiB: number
  readonly hwmKiB: number
  /** The load generator's own CPU over the window, as a fraction of one core. */
  readonly loadgenCpuShare: number
  /** The load generator's event-loop delay over the window (ms): high when it was starved of CPU. */
  readonly loadgenLoopDelayP99Ms: number
  /** Listen-queue overflows on this machine over the window (any listener); null when unreadable. */
  readonly listenOverflows: number | null
  /**
   * The storm's start and the moment the broker was found quiet after it, in
   * µs of the monotonic clock V8 stamps profile samples with, so a broker's
   * .cpuprofile can be cut to the storm (benchmarks/profile-window.ts).
   */
  readonly monotonicStartUs: number
  readonly monotonicQuietUs: number
  readonly integrity: Integrity
}

export interface LookupResult extends Ending {
  readonly filter: string
  /** Per round. */
  readonly expected: number
  readonly rounds: number
  /** Rounds that received everything they expected. */
  readonly completedRounds: number
  /** Total over all rounds. */
  readonly received: number
  /** Covers all rounds. */
  readonly window: WindowMeasure
}

export interface RetainedResult {
  readonly kind: 'retained'
  readonly stored: number
  readonly store: WindowMeasure
  readonly storeTimedOut: boolean
  readonly lookups: readonly LookupResult[]
}

export interface TakeoverResult extends Ending {
  readonly kind: 'takeover'
  /** Measured takeovers attempted. */
  readonly rounds: number
  /** New CONNACK received and the old connection closed within the round's bound. */
  readonly completed: number
  /** The new CONNECT failed (refused, or no CONNACK). */
  readonly failed: number
  /** New CONNACK received, but the old connection still open at the round's bound. */
  readonly notClosed: number
  /** From the new CONNECT (TCP connect included) until both its CONNACK and the old connection's close. */
  readonly takeover: LatencySummary
  /** From the new CONNECT to its CONNACK only. */
  readonly connack: LatencySummary
  /** How old connections ended: `0x8e` (DISCONNECT reason code) or `closed` (no DISCONNECT). */
  readonly endings: Readonly<Record<string, number>>
}

export interface WillResult extends Ending {
  readonly kind: 'will'
  readonly clients: number
  /** Will clients that got their CONNACK before the kill. */
  readonly connected: number
  /** Distinct wills received. */
  readonly delivered: number
  readonly duplicated: number
  /** From the SIGKILL to the first will, and to the last one when every will came; null otherwise. */
  readonly firstMs: number | null
  readonly allMs: number | null
  readonly killedPid: number
}

export interface SeedResult extends Ending {
  readonly kind: 'seed'
  /** Sessions that subscribed and disconnected cleanly. */
  readonly seeded: number
  readonly failed: number
  readonly wallMs: number
}

export type JobResult = FlowResult | IdleResult | DrainResult | RetainedResult | TakeoverResult | WillResult | SeedResult | StormResult

export type LoadgenOutput =
  | { readonly ok: true, readonly result: JobResult }
  | { readonly ok: false, readonly error: string }

const JOB_KINDS: ReadonlySet<string> = new Set(['flow', 'idle', 'drain', 'retained', 'takeover', 'will', 'seed', 'storm'])

/**
 * Shallow structural check of a decoded job. Both ends are our own code, so
 * this guards against version skew (stale dist/) rather than hostile input.
 */
export function isJob (value: unknown): value is Job {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  const target = record['target']
  if (typeof record['kind'] !== 'string' || !JOB_KINDS.has(record['kind'])) return false
  if (typeof target !== 'object' || target === null) return false
  const t = target as Record<string, unknown>
  return typeof t['host'] === 'string' && typeof t['port'] === 'number' &&
    typeof t['brokerPid'] === 'number' && (t['protocolVersion'] === 4 || t['protocolVersion'] === 5)
}

export function isLoadgenOutput (value: unknown): value is LoadgenOutput {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  if (record['ok'] === false) return typeof record['error'] === 'string'
  const result = record['result']
  return record['ok'] === true && typeof result === 'object' && result !== null &&
    typeof (result as Record<string, unknown>)['kind'] === 'string'
}
