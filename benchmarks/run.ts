// `npm run bench`: runs each selected scenario against each available broker,
// several times with the brokers interleaved (so slow drifts of a shared
// machine hit every broker alike), then prints medians and ratios as a
// markdown table and writes every raw figure to benchmarks/results/latest.json.
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { brokerRunners, type BrokerName, type BrokerRunner, type RunningBroker } from './brokers.js'
import { parseOptions, USAGE, type BenchOptions } from './lib/args.js'
import { commandExists, fdLimits } from './lib/processes.js'
import { clockTicksPerSecond } from './lib/procfs.js'
import { markdownReport } from './lib/report.js'
import { makeBrokerTls } from './lib/tls-setup.js'
import { integrityRows, summarize, type CellRecord, type SkipRecord } from './lib/summary.js'
import { isClusterScenario, scenarios as allScenarios } from './scenarios/index.js'
import type { Scenario, ScenarioSettings } from './scenarios/types.js'

/** dist/benchmarks/run.js → repository root. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** Enough descriptors for 10,000 idle connections on each side, plus headroom. */
const WANTED_FDS = 16_384

function log (message: string): void {
  process.stderr.write(`${message}\n`)
}

function selectScenarios (options: BenchOptions): Scenario[] {
  const all = allScenarios(options.full)
  if (options.only === null) return all
  const chosen = all.filter((s) => options.only?.some((want) => s.id === want || s.id.startsWith(want)) === true)
  if (chosen.length === 0) throw new Error(`--only matched no scenario (known: ${all.map((s) => s.id).join(', ')})`)
  return chosen
}

/** Rotates the broker order each repeat so no broker always runs first or last. */
function rotate<T> (items: readonly T[], by: number): T[] {
  const shift = items.length === 0 ? 0 : by % items.length
  return [...items.slice(shift), ...items.slice(0, shift)]
}

function headline (scenario: Scenario, cell: CellRecord): string {
  if (cell.error !== null) return `error: ${cell.error.split('\n')[0] ?? ''}`
  const first = scenario.metrics[0]
  const value = first === undefined ? undefined : cell.outcome?.values[first.key]
  const figure = typeof value === 'number' ? `${value.toFixed(1)} ${first?.unit ?? ''}` : 'n/a'
  const notes = cell.outcome?.notes ?? []
  return notes.length > 0 ? `${figure} (${notes.join('; ')})` : figure
}

async function runCell (scenario: Scenario, runner: BrokerRunner, repeat: number, settings: ScenarioSettings, cpus: string | null): Promise<CellRecord> {
  const started = Date.now()
  let broker: RunningBroker | null = null
  try {
    broker = await runner.start({
      websocket: scenario.needsWebsocket,
      fdLimit: settings.loadgen.fdLimit,
      cpus,
      ...(scenario.redisAof === undefined ? {} : { redisAof: scenario.redisAof }),
      ...(scenario.needsTls === true && settings.tls !== undefined ? { tls: settings.tls } : {})
    })
    const outcome = await scenario.run({ broker, runner, settings })
    if (!broker.alive()) throw new Error(`broker exited during the run\n${broker.output()}`)
    return { scenario: scenario.id, broker: runner.name, repeat, elapsedMs: Date.now() - started, outcome, error: null }
  } catch (err) {
    let error = err instanceof Error ? err.message : String(err)
    if (broker !== null && !broker.alive()) error = `broker died: ${error}\n${broker.output()}`
    return { scenario: scenario.id, broker: runner.name, repeat, elapsedMs: Date.now() - started, outcome: null, error }
  } finally {
    await broker?.stop()
  }
}

async function main (): Promise<void> {
  const options = parseOptions(process.argv.slice(2), REPO_ROOT)
  if (options.help) {
    process.stdout.write(USAGE)
    return
  }
  const scenarios = selectScenarios(options)
  const runners = brokerRunners({ repoRoot: REPO_ROOT, culexBin: options.culexBin })
    .filter((r) => options.brokers.includes(r.name))
  const available = runners.filter((r) => r.unavailable === null)
  const unavailable = runners.flatMap((r) => (r.unavailable === null ? [] : [{ broker: r.name, reason: r.unavailable }]))
  for (const u of unavailable) log(`skipping ${u.broker}: ${u.reason}`)
  if (available.length === 0) throw new Error('no broker available to benchmark')

  const limits = fdLimits()
  const pinned = options.pin && commandExists('taskset') && os.availableParallelism() >= 2
  if (options.pin && !pinned) log('--pin ignored: needs taskset and at least 2 CPUs')
  const settings: ScenarioSettings = {
    quick: options.quick,
    full: options.full,
    protocolVersion: options.protocolVersion,
    keepLatencySamples: options.latencySamples,
    loadgen: { fdLimit: Math.min(limits.hard, WANTED_FDS), cpus: pinned ? '1' : null },
    // One certificate for every broker of the run, removed when the harness exits.
    ...(scenarios.some((s) => s.needsTls === true) ? { tls: await makeBrokerTls() } : {})
  }

  const cells: CellRecord[] = []
  const skips: SkipRecord[] = []
  const startedAt = new Date()
  for (let repeat = 0; repeat < options.repeats; repeat++) {
    for (const scenario of scenarios) {
      for (const runner of rotate(available, repeat)) {
        const only = runner.features.scenarios
        const reason = only !== undefined && !only.includes(scenario.id)
          ? 'not served by this stand-in'
          : runner.features.cluster === true && !isClusterScenario(scenario)
            ? 'a cluster runs the cluster-* scenarios only'
            : scenario.applicable(runner, settings)
        if (reason !== null) {
          if (repeat === 0) skips.push({ scenario: scenario.id, broker: runner.name, reason })
          continue
        }
        const cell = await runCell(scenario, runner, repeat, settings, pinned ? '0' : null)
        cells.push(cell)
        log(`[${repeat + 1}/${options.repeats}] ${scenario.id} × ${runner.name}: ${headline(scenario, cell)} (${(cell.elapsedMs / 1000).toFixed(1)} s)`)
      }
    }
  }

  const brokerNames: BrokerName[] = available.map((r) => r.name)
  const rows = summarize(scenarios, brokerNames, cells)
  const integrity = integrityRows(scenarios, brokerNames, cells)
  const context = [
    `${startedAt.toISOString()}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    `${options.repeats} repeat(s)${options.quick ? ', --quick sizes' : ''}${options.full ? ', --full' : ''}; MQTT ${options.protocolVersion === 5 ? '5' : '3.1.1'} (drain: 3.1.1)${pinned ? '; broker pinned to CPU 0, load generator to CPU 1' : ''}`,
    `brokers: ${available.map((r) => `${r.name} = ${r.description}`).join('; ')}`,
    `broker CPU from /proc/<pid>/stat utime+stime (CLK_TCK ${clockTicksPerSecond()}), RSS from VmRSS; loopback only; open-file limit ${settings.loadgen.fdLimit}`
  ]
  const report = markdownReport({
    heading: 'culex benchmarks',
    context,
    brokers: brokerNames,
    ratios: options.ratios,
    rows,
    integrity,
    skips,
    unavailable
  })
  process.stdout.write(report)

  await mkdir(path.dirname(options.out), { recursive: true })
  await writeFile(options.out, JSON.stringify({
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    host: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model ?? null, node: process.version, platform: `${os.type()} ${os.release()}` },
    options: { ...options, culexBin: path.relative(REPO_ROOT, options.culexBin), out: path.relative(REPO_ROOT, options.out) },
    brokers: available.map((r) => ({ name: r.name, description: r.description })),
    unavailable,
    skips,
    summary: rows,
    integrity,
    cells
  }, null, 2) + '\n')
  const shown = path.relative(process.cwd(), options.out)
  log(`results written to ${shown.startsWith('..') ? options.out : shown}`)
}

main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exitCode = 1
})
