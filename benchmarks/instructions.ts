// Instructions a culex build executes for a fixed load, counted by valgrind's
// callgrind: a figure that, unlike CPU time, hardly moves with what else the
// machine is doing, so two builds can be compared on a loaded machine (the
// speed check of issue 14). The broker runs under callgrind with counting
// off; a first job warms it up (the JIT settles), counting is switched on
// (`callgrind_control -i on`) for a second, identical job only, and the
// counts are split into V8's compiler, its garbage collector and the rest
// ("steady": the work a message costs once the code is optimized). `$SYS`
// is off, so that no timer's work depends on how long the run takes.
//
//   node dist/benchmarks/instructions.js --bin dist/bin/culex.js [--bin OTHER/dist/bin/culex.js]
//     [--workload fanin|fanin0|drain|connect|retained] [--rounds 3] [--warm 1000] [--count 1000]
//     [--persistence memory|level, repeatable: each build runs with each store]
//     [--keep DIR: callgrind's files kept there, for callgrind_annotate]
//
// fanin: 10 publishers × count QoS 1 messages → 1 subscriber (bench/#), as
// `fanin-qos1`; fanin0: the same at QoS 0, as `fanin-qos0`; drain: count offline 3.1.1 sessions × 10 queued QoS 1
// messages, then reconnect, as `session-drain` (10 connecting at a time:
// under callgrind the broker is some 50 times slower); connect: count MQTT 5
// clients connect (CONNECT → CONNACK, 10 at a time, as `idle-connections`
// with a warm-up tenth of its own), are held, then dropped, counted until
// the broker is quiet again, so a figure is one connection's whole life
// (accept, CONNECT, CONNACK, close); retained: the warm-up job stores count
// retained messages (`retained-100k`'s topics and payloads) and looks them
// all up with `ret/#` LOOKUP_ROUNDS times, the counted job only looks them
// up, so a figure is one retained message delivered on a wildcard SUBSCRIBE
// (`--warm` is ignored). Builds alternate
// within each round. For drain the counts are also given per phase:
// `queue` (sessions made, messages published to them) and `drain` (the
// reconnect until the broker is quiet again), both per message. Needs `valgrind` (Debian's package); loopback only.
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { runDrainJob, runFlowJob, runIdleJob, runRetainedJob } from './lib/loadgen-client.js'
import { freePort, LOOPBACK, waitForPort } from './lib/net.js'
import type { Target } from './loadgen/jobs.js'
import { settle } from './loadgen/window.js'

type Workload = 'fanin' | 'fanin0' | 'drain' | 'connect' | 'retained'
const WORKLOADS: readonly Workload[] = ['fanin', 'fanin0', 'drain', 'connect', 'retained']
/** `ret/#` lookups per job of the retained workload */
const LOOKUP_ROUNDS = 3
type Persistence = 'memory' | 'level'

interface Counts { readonly total: number, readonly compiler: number, readonly gc: number, readonly steady: number }

const SETTINGS = { fdLimit: 4096, cpus: null }
const START_TIMEOUT_MS = 600_000
const JOB_TIMEOUT_MS = 900_000

async function runJob (workload: Workload, target: Target, count: number, counted: boolean): Promise<number> {
  if (workload === 'retained') {
    const result = await runRetainedJob({
      kind: 'retained', target, count, payloadBytes: 32, alreadyStored: counted,
      lookups: [{ filter: 'ret/#', expected: count, rounds: LOOKUP_ROUNDS }], timeoutMs: JOB_TIMEOUT_MS, stallMs: 120_000
    }, SETTINGS)
    const lookup = result.lookups[0]
    if (lookup === undefined || lookup.completedRounds !== LOOKUP_ROUNDS) throw new Error(`${lookup?.received ?? 0} of ${count * LOOKUP_ROUNDS} retained messages`)
    return lookup.received
  }
  if (workload === 'fanin' || workload === 'fanin0') {
    const qos = workload === 'fanin' ? 1 : 0
    const result = await runFlowJob({
      kind: 'flow', target, publishers: 10, messagesPerPublisher: count, warmupPerPublisher: 100, payloadBytes: 64,
      publishQos: qos, inflight: 100, topicPrefix: 'bench', ratePerSecond: null, subscribers: 1, subscribeFilter: 'bench/#',
      subscribeQos: qos, subscriberTransport: 'tcp', delivery: 'every', measureLatency: false, keepLatencySamples: false,
      timeoutMs: JOB_TIMEOUT_MS, stallMs: 120_000
    }, SETTINGS)
    if (result.integrity.lost > 0) throw new Error(`${result.integrity.lost} messages lost`)
    return result.integrity.unique
  }
  if (workload === 'connect') {
    const result = await runIdleJob({ kind: 'idle', target, connections: count, concurrency: 10, timeoutMs: JOB_TIMEOUT_MS, connectTimeoutMs: 120_000 }, SETTINGS)
    if (result.failed > 0 || result.errors.length > 0) throw new Error(`${result.failed} connects failed: ${result.errors.join('; ')}`)
    // the broker closes the dropped connections after the job returns
    await settle(target.brokerPid, 120_000)
    return result.opened + result.warmup
  }
  const result = await runDrainJob({
    kind: 'drain', target: { ...target, protocolVersion: 4 }, sessions: count, messagesPerSession: 10, payloadBytes: 64,
    concurrency: 10, timeoutMs: JOB_TIMEOUT_MS, stallMs: 120_000, ...(counted ? { markPhases: 'callgrind' as const } : {})
  }, SETTINGS)
  if (result.integrity.lost > 0) throw new Error(`${result.integrity.lost} messages lost`)
  // the acknowledged messages' deletes (and the disconnects) belong to the drain
  await settle(target.brokerPid, 120_000)
  return result.integrity.unique
}

/** Splits callgrind's per-function counts into V8's compiler, its GC and the rest. */
function classify (outFile: string): Counts {
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', outFile], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  let total = 0
  let compiler = 0
  let gc = 0
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line)
    if (m?.[1] === undefined || m[2] === undefined || m[2].includes('PROGRAM TOTALS')) continue
    const n = Number(m[1].replaceAll(',', ''))
    total += n
    if (/compiler::|maglev|turboshaft/i.test(m[2])) compiler += n
    else if (/Scaveng|Heap::|MarkCompact|Marking|Sweeper|GCTracer|Evacuat|heap::/.test(m[2])) gc += n
  }
  return { total, compiler, gc, steady: total - compiler - gc }
}

interface Measured extends Counts {
  readonly messages: number
  /** drain: the queueing phase's counts (the rest is the drain's) */
  readonly queue?: Counts
}

const minus = (a: Counts, b: Counts): Counts =>
  ({ total: a.total - b.total, compiler: a.compiler - b.compiler, gc: a.gc - b.gc, steady: a.steady - b.steady })
const plus = (a: Counts, b: Counts): Counts =>
  ({ total: a.total + b.total, compiler: a.compiler + b.compiler, gc: a.gc + b.gc, steady: a.steady + b.steady })

async function measure (bin: string, persistence: Persistence, workload: Workload, warm: number, count: number, keep: string | undefined): Promise<Measured> {
  const port = await freePort()
  const dir = mkdtempSync(path.join(os.tmpdir(), 'culex-instr-'))
  const outFile = path.join(dir, 'callgrind.out')
  const child = spawn('valgrind', [
    '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${outFile}`, '--log-file=/dev/null',
    process.execPath, bin, '--host', LOOPBACK, '--port', String(port), '--ws-port', '0', '--tls-port', '0', '--wss-port', '0',
    '--persistence', persistence, '--data-dir', dir, '--log-level', 'warn', '--sys-interval', '0'
  ], { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  try {
    const pid = child.pid
    if (pid === undefined) throw new Error('valgrind did not start')
    await waitForPort(port, START_TIMEOUT_MS, () => child.exitCode === null)
    const target: Target = { host: LOOPBACK, port, wsPort: null, wsPath: '/mqtt', brokerPid: pid, protocolVersion: 5, tlsPort: null }
    await runJob(workload, target, workload === 'retained' ? count : warm, false)
    execFileSync('callgrind_control', ['-i', 'on', String(pid)], { stdio: 'ignore' })
    const messages = await runJob(workload, target, count, true)
    execFileSync('callgrind_control', ['-i', 'off', String(pid)], { stdio: 'ignore' })
    child.kill('SIGTERM')
    await exited
    if (!/^totals: \d+/m.test(readFileSync(outFile, 'utf8'))) throw new Error('callgrind wrote no totals')
    if (keep !== undefined) {
      mkdirSync(keep, { recursive: true })
      for (const file of readdirSync(dir).filter((f) => f.startsWith('callgrind.out'))) {
        cpSync(path.join(dir, file), path.join(keep, `${path.basename(path.dirname(path.dirname(path.dirname(bin))))}-${persistence}-${child.pid ?? 0}-${file}`))
      }
    }
    const last = classify(outFile)
    if (workload !== 'drain') return { ...last, messages }
    // the dump at the reconnect's start is part 1; the final dump the drain
    const queue = classify(`${outFile}.1`)
    return { ...plus(queue, last), messages, queue }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] ?? 0 : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      bin: { type: 'string', multiple: true },
      workload: { type: 'string', default: 'fanin' },
      rounds: { type: 'string', default: '3' },
      warm: { type: 'string' },
      count: { type: 'string' },
      persistence: { type: 'string', multiple: true },
      keep: { type: 'string' }
    }
  })
  const stores = (values.persistence ?? ['memory']).map((p): Persistence => {
    if (p !== 'memory' && p !== 'level') throw new Error(`--persistence ${p}: memory or level`)
    return p
  })
  const bins = (values.bin ?? ['dist/bin/culex.js']).flatMap((bin) => stores.map((store) => ({ bin, store, name: stores.length > 1 || store !== 'memory' ? `${bin} (${store})` : bin })))
  const workload = WORKLOADS.find((w) => w === values.workload) ?? 'fanin'
  const flow = workload === 'fanin' || workload === 'fanin0'
  const warm = Number(values.warm ?? (flow ? 1000 : workload === 'connect' ? 300 : 200))
  const count = Number(values.count ?? (flow ? 1000 : workload === 'retained' ? 20_000 : 500))
  const rounds = Number(values.rounds)
  const results = new Map<string, Measured[]>(bins.map((b) => [b.name, []]))
  for (let round = 1; round <= rounds; round++) {
    for (const { bin, store, name } of bins) {
      const counts = await measure(path.resolve(bin), store, workload, warm, count, values.keep)
      results.get(name)?.push(counts)
      console.log(`round ${round} ${name}: ${(counts.total / 1e6).toFixed(0)}M instructions (compiler ${(counts.compiler / 1e6).toFixed(0)}M, gc ${(counts.gc / 1e6).toFixed(0)}M, steady ${(counts.steady / 1e6).toFixed(0)}M) for ${counts.messages} messages`)
    }
  }
  console.log(`\n${workload}, medians of ${rounds} rounds, instructions per ${workload === 'connect' ? 'connection' : 'message'}:`)
  for (const [name, runs] of results) {
    const line = (pick: (r: Measured) => Counts | undefined): string => {
      const per = (k: keyof Counts): string => median(runs.map((r) => (pick(r)?.[k] ?? 0) / r.messages)).toFixed(0)
      return `steady ${per('steady')}\ttotal ${per('total')}\tcompiler ${per('compiler')}\tgc ${per('gc')}`
    }
    console.log(`${name}\t${line((r) => r)}`)
    if (workload === 'drain') {
      console.log(`  queue\t${line((r) => r.queue)}`)
      console.log(`  drain\t${line((r) => r.queue === undefined ? undefined : minus(r, r.queue))}`)
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
