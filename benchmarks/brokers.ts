// Broker runners: each broker under test runs as its own child process on a
// fresh loopback port, so its CPU time and RSS can be read from /proc/<pid>
// without the harness or the load generator mixed in.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { clusterRunners } from './cluster-brokers.js'
import { launch as launchProcess, packageVersion as versionIn, removeDir, tempDir, type LaunchSpec as ProcessSpec } from './lib/launch.js'
import { freePort, LOOPBACK } from './lib/net.js'
import { commandExists } from './lib/processes.js'
import type { RedisAof } from './lib/redis.js'
import { mosquittoTlsListener, type BrokerTls } from './lib/tls-setup.js'

export const BROKER_NAMES = ['aedes', 'mosquitto', 'culex-memory', 'culex-level', 'culex-nometrics', 'aedes1-level', 'null-relay', 'culex-memory-dashboard', 'culex-cluster', 'aedes-redis-cluster'] as const
export type BrokerName = typeof BROKER_NAMES[number]

/** Brokers that run only when named in --brokers. */
const ONLY_WHEN_NAMED: readonly BrokerName[] = [
  // not a broker: a yardstick
  'null-relay',
  // culex-memory with the dashboard's listener on: answers whether the dashboard costs anything when nobody looks
  'culex-memory-dashboard'
]

/** Run when --brokers is not given: every broker but those run only when named. */
export const DEFAULT_BROKERS: readonly BrokerName[] = BROKER_NAMES.filter((name) => !ONLY_WHEN_NAMED.includes(name))

export function isBrokerName (value: string): value is BrokerName {
  return (BROKER_NAMES as readonly string[]).includes(value)
}

export interface BrokerFeatures {
  /** Speaks MQTT 5 (aedes 1.x does not). */
  readonly mqtt5: boolean
  /** Can expose MQTT over WebSocket on ws://host:port/mqtt. */
  readonly websocket: boolean
  /** Can listen for MQTT over TLS with a given key and certificate. */
  readonly tls?: boolean
  /** Set for a stand-in that serves only these scenario ids (null-relay). */
  readonly scenarios?: readonly string[]
  /** Several nodes on one Redis: runs the cluster-* scenarios only. */
  readonly cluster?: boolean
}

export interface StartOptions {
  readonly websocket: boolean
  readonly fdLimit: number
  readonly cpus: string | null
  /** A cluster's redis-server AOF setting, as the scenario states; default no AOF. */
  readonly redisAof?: RedisAof
  /** Also listen for MQTT over TLS with these files (connects-tls). */
  readonly tls?: BrokerTls
}

/** The processes of a running cluster, for the cluster scenarios. */
export interface RunningCluster {
  /** In start order; node 0 is also the RunningBroker's port and pid. */
  readonly nodes: ReadonlyArray<{ readonly port: number, readonly pid: number }>
  readonly redisPid: number
  readonly redisPort: number
  /** Tells the cluster that this node will be killed on purpose, so its exit is no failure. */
  expectExit: (nodeIndex: number) => void
  /**
   * Starts one more node joining the cluster and resolves once its MQTT port
   * accepts connections (polled every 50 ms); `spawnedAt` is
   * `performance.now()` at its spawn. It is stopped with the cluster.
   */
  join: () => Promise<{ readonly pid: number, readonly port: number, readonly spawnedAt: number }>
}

export interface RunningBroker {
  readonly name: BrokerName
  readonly pid: number
  readonly port: number
  readonly wsPort: number | null
  /** Set when started with `tls`. */
  readonly tlsPort?: number | null
  stop: () => Promise<void>
  /** False once the broker process has exited (crashed, if we did not stop it). */
  alive: () => boolean
  /** Tail of the broker's stdout/stderr, for error reports. */
  output: () => string
  /** Set when the broker is a cluster. */
  readonly cluster?: RunningCluster
}

export interface BrokerRunner {
  readonly name: BrokerName
  readonly features: BrokerFeatures
  /** null when the broker can run here; otherwise why it is skipped. */
  readonly unavailable: string | null
  /** What exactly runs, with versions, for the report. */
  readonly description: string
  start: (options: StartOptions) => Promise<RunningBroker>
}

export interface BrokerEnvironment {
  readonly repoRoot: string
  readonly culexBin: string
}

interface LaunchSpec extends ProcessSpec {
  readonly name: BrokerName
}

async function launch (spec: LaunchSpec, options: StartOptions, tlsPort: number | null = null): Promise<RunningBroker> {
  const morePorts = [...(spec.morePorts ?? []), ...(tlsPort === null ? [] : [tlsPort])]
  return { name: spec.name, tlsPort, ...await launchProcess({ ...spec, morePorts }, options) }
}

function packageVersion (env: BrokerEnvironment, packageDir: string): string {
  return versionIn(env.repoRoot, packageDir)
}

function mosquittoVersion (): string {
  try {
    // `mosquitto -h` prints "mosquitto version X.Y.Z" and exits non-zero.
    execFileSync('mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const out = typeof err === 'object' && err !== null ? String((err as { stdout?: unknown }).stdout ?? '') : ''
    return /version (\S+)/.exec(out)?.[1] ?? '?'
  }
  return '?'
}

function nodeFixture (env: BrokerEnvironment, name: BrokerName, fixture: string, features: BrokerFeatures, description: string, level: boolean): BrokerRunner {
  const script = path.join(env.repoRoot, 'benchmarks', 'fixtures', fixture)
  return {
    name,
    features,
    description,
    unavailable: existsSync(script) ? null : `${script} missing`,
    start: async (options) => {
      const port = await freePort()
      const wsPort = options.websocket && features.websocket ? await freePort() : null
      const dir = await tempDir(name)
      const tlsPort = options.tls !== undefined && features.tls === true ? await freePort() : null
      const args = [script, '--host', LOOPBACK, '--port', String(port), '--ws-port', String(wsPort ?? 0)]
      if (level) args.push('--data-dir', dir)
      if (tlsPort !== null && options.tls !== undefined) args.push('--tls-port', String(tlsPort), '--tls-key', options.tls.keyFile, '--tls-cert', options.tls.certFile)
      return await launch({ name, command: process.execPath, args, port, wsPort, cleanup: removeDir(dir) }, options, tlsPort)
    }
  }
}

function mosquitto (): BrokerRunner {
  const installed = commandExists('mosquitto')
  return {
    name: 'mosquitto',
    features: { mqtt5: true, websocket: true, tls: true },
    description: installed ? `mosquitto ${mosquittoVersion()}, max_queued_messages 1000, persistence false` : 'mosquitto',
    unavailable: installed ? null : 'mosquitto not on PATH',
    start: async (options) => {
      const port = await freePort()
      const wsPort = options.websocket ? await freePort() : null
      const tlsPort = options.tls === undefined ? null : await freePort()
      const dir = await tempDir('mosquitto')
      const config = [
        `listener ${port} ${LOOPBACK}`,
        'allow_anonymous true',
        'persistence false',
        'max_queued_messages 1000',
        // Log at warning level like culex's --log-level warn: per-connection
        // notices would otherwise cost mosquitto CPU in the idle scenario.
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'connection_messages false'
      ]
      if (wsPort !== null) config.push(`listener ${wsPort} ${LOOPBACK}`, 'protocol websockets')
      if (tlsPort !== null && options.tls !== undefined) config.push(...mosquittoTlsListener(tlsPort, LOOPBACK, options.tls))
      const file = path.join(dir, 'mosquitto.conf')
      await writeFile(file, config.join('\n') + '\n')
      return await launch({ name: 'mosquitto', command: 'mosquitto', args: ['-c', file], port, wsPort, cleanup: removeDir(dir) }, options, tlsPort)
    }
  }
}

/**
 * culex; `culex-nometrics` is culex-memory with metrics and $SYS off, to
 * measure their cost; `culex-memory-dashboard` is culex-memory with the
 * dashboard and admin API on (its own listener, nobody logged in), to
 * measure theirs.
 */
function culex (env: BrokerEnvironment, persistence: 'memory' | 'level', variant: { metrics?: boolean, dashboard?: boolean } = {}): BrokerRunner {
  const metrics = variant.metrics ?? true
  const dashboard = variant.dashboard ?? false
  const name: BrokerName = !metrics ? 'culex-nometrics' : dashboard ? 'culex-memory-dashboard' : persistence === 'memory' ? 'culex-memory' : 'culex-level'
  return {
    name,
    features: { mqtt5: true, websocket: true, tls: true },
    description: `culex ${packageVersion(env, '.')} (${path.relative(env.repoRoot, env.culexBin)}), --persistence ${persistence}${metrics ? '' : ', --metrics false --sys-interval 0'}${dashboard ? ', --dashboard true --admin-port <free port>' : ''}`,
    unavailable: existsSync(env.culexBin) ? null : `${path.relative(env.repoRoot, env.culexBin)} not built yet`,
    start: async (options) => {
      const port = await freePort()
      const wsPort = options.websocket ? await freePort() : null
      const adminPort = dashboard ? await freePort() : null
      const tlsPort = options.tls === undefined ? null : await freePort()
      const dir = await tempDir(name)
      const args = [
        env.culexBin,
        '--host', LOOPBACK,
        '--port', String(port),
        '--ws-port', String(wsPort ?? 0),
        '--tls-port', String(tlsPort ?? 0),
        ...(options.tls === undefined ? [] : ['--tls-key', options.tls.keyFile, '--tls-cert', options.tls.certFile]),
        '--wss-port', '0',
        '--persistence', persistence,
        '--data-dir', dir,
        '--log-level', 'warn',
        ...(metrics ? [] : ['--metrics', 'false', '--sys-interval', '0']),
        ...(adminPort === null ? [] : ['--dashboard', 'true', '--admin-host', LOOPBACK, '--admin-port', String(adminPort)])
      ]
      const morePorts = adminPort === null ? [] : [adminPort]
      return await launch({ name, command: process.execPath, args, port, wsPort, morePorts, cleanup: removeDir(dir) }, options, tlsPort)
    }
  }
}

export function brokerRunners (env: BrokerEnvironment): BrokerRunner[] {
  return [
    nodeFixture(env, 'aedes', 'plain-aedes.mjs', { mqtt5: true, websocket: true },
      `aedes ${packageVersion(env, 'node_modules/aedes')}, in-memory persistence`, false),
    mosquitto(),
    culex(env, 'memory'),
    culex(env, 'level'),
    culex(env, 'memory', { metrics: false }),
    culex(env, 'memory', { dashboard: true }),
    nodeFixture(env, 'aedes1-level', 'aedes1-level.mjs', { mqtt5: false, websocket: false },
      `aedes ${packageVersion(env, 'node_modules/aedes-v1')} + aedes-persistence-level ${packageVersion(env, 'node_modules/aedes-persistence-level')}`, true),
    // A yardstick for the scenarios whose targets sit near what Node and
    // this machine allow (latency, persistent sessions, connects, fan-in to
    // one subscriber); it has no topic matching, QoS 2, retained messages or
    // shared groups, and its naive encoding (one write per message) makes it
    // a floor to beat rather than a bound for the throughput scenarios.
    nodeFixture(env, 'null-relay', 'null-relay.mjs',
      { mqtt5: true, websocket: false, tls: true, scenarios: ['latency-qos1', 'session-drain', 'idle-connections', 'connects-tls', 'reconnect-storm', 'fanin-qos0', 'fanin-qos1'] },
      // It inherits the harness's environment: CULEX_RELAY=raw there selects the relay with no MQTT library.
      process.env['CULEX_RELAY'] === 'raw'
        ? 'null-relay (benchmarks/fixtures/null-relay-raw.mjs, CULEX_RELAY=raw): not a broker, a relay on Node sockets with hand-framed MQTT'
        : 'null-relay (benchmarks/fixtures/null-relay.mjs): not a broker, a naive relay on Node sockets and mqtt-packet', false),
    ...clusterRunners(env)
  ]
}
