// Harness side of the load generator: spawn it, hand it a job, parse the
// result, and kill it if it overruns the job's own time bound.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isLoadgenOutput, type DrainJob, type DrainResult, type FlowJob, type FlowResult, type IdleJob, type IdleResult, type Job, type JobResult, type RetainedJob, type RetainedResult, type SeedJob, type SeedResult, type StormJob, type StormResult, type TakeoverJob, type TakeoverResult, type WillJob, type WillResult } from '../loadgen/jobs.js'
import { OutputTail, spawnTracked } from './processes.js'

const LOADGEN_MAIN = fileURLToPath(new URL('../loadgen/main.js', import.meta.url))
/** Setup (connecting, subscribing, settling) happens outside the job's own timeout. */
const SETUP_ALLOWANCE_MS = 60_000

export interface LoadgenSettings {
  readonly fdLimit: number
  readonly cpus: string | null
}

export async function runLoadgen (job: Job, settings: LoadgenSettings): Promise<JobResult> {
  const child = spawnTracked(process.execPath, [LOADGEN_MAIN], { fdLimit: settings.fdLimit, cpus: settings.cpus, stdin: 'pipe' })
  const stdout: Buffer[] = []
  const stderr = new OutputTail()
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk))
  child.stdin?.end(JSON.stringify(job))

  const bound = job.timeoutMs * (job.kind === 'retained' ? job.lookups.length + 1 : 2) + SETUP_ALLOWANCE_MS
  const killer = setTimeout(() => child.kill('SIGKILL'), bound)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)))
  clearTimeout(killer)

  const lastLine = Buffer.concat(stdout).toString().trim().split('\n').pop() ?? ''
  let parsed: unknown
  try {
    parsed = JSON.parse(lastLine)
  } catch {
    throw new Error(`load generator ${path.basename(LOADGEN_MAIN)} exited ${code ?? 'by signal'} without a result\n${stderr.toString()}`)
  }
  if (!isLoadgenOutput(parsed)) throw new Error('load generator printed an unrecognised result')
  if (!parsed.ok) throw new Error(`load generator failed: ${parsed.error}`)
  if (parsed.result.kind !== job.kind) throw new Error(`expected a ${job.kind} result, got ${parsed.result.kind}`)
  return parsed.result
}

// Typed entry points: each narrows the result by its kind, so scenarios get
// the precise result type without casts.
export async function runFlowJob (job: FlowJob, settings: LoadgenSettings): Promise<FlowResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'flow') throw new Error('unreachable: kind checked above')
  return result
}

export async function runIdleJob (job: IdleJob, settings: LoadgenSettings): Promise<IdleResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'idle') throw new Error('unreachable: kind checked above')
  return result
}

export async function runDrainJob (job: DrainJob, settings: LoadgenSettings): Promise<DrainResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'drain') throw new Error('unreachable: kind checked above')
  return result
}

export async function runRetainedJob (job: RetainedJob, settings: LoadgenSettings): Promise<RetainedResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'retained') throw new Error('unreachable: kind checked above')
  return result
}

export async function runTakeoverJob (job: TakeoverJob, settings: LoadgenSettings): Promise<TakeoverResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'takeover') throw new Error('unreachable: kind checked above')
  return result
}

export async function runWillJob (job: WillJob, settings: LoadgenSettings): Promise<WillResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'will') throw new Error('unreachable: kind checked above')
  return result
}

export async function runSeedJob (job: SeedJob, settings: LoadgenSettings): Promise<SeedResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'seed') throw new Error('unreachable: kind checked above')
  return result
}

export async function runStormJob (job: StormJob, settings: LoadgenSettings): Promise<StormResult> {
  const result = await runLoadgen(job, settings)
  if (result.kind !== 'storm') throw new Error('unreachable: kind checked above')
  return result
}
