// Load generator entry point. It runs in its own process (spawned by the
// harness) so that generating load never competes with the harness, and so
// that its CPU is never mistaken for the broker's. Reads one Job as JSON on
// stdin, writes one LoadgenOutput as a JSON line on stdout.
import { text } from 'node:stream/consumers'
import { assertLoopback } from '../lib/net.js'
import { runDrain } from './drain.js'
import { runFlow } from './flow.js'
import { runIdle } from './idle.js'
import { isJob, type Job, type JobResult, type LoadgenOutput } from './jobs.js'
import { errorMessage } from './pool.js'
import { runRetained } from './retained.js'
import { runSeed } from './seed.js'
import { runStorm } from './storm.js'
import { runTakeover } from './takeover.js'
import { runWill } from './will.js'

async function run (job: Job): Promise<JobResult> {
  assertLoopback(job.target.host)
  switch (job.kind) {
    case 'flow': return await runFlow(job)
    case 'idle': return await runIdle(job)
    case 'drain': return await runDrain(job)
    case 'retained': return await runRetained(job)
    case 'takeover': return await runTakeover(job)
    case 'will': return await runWill(job)
    case 'seed': return await runSeed(job)
    case 'storm': return await runStorm(job)
  }
}

async function main (): Promise<void> {
  let output: LoadgenOutput
  try {
    const job: unknown = JSON.parse(await text(process.stdin))
    if (!isJob(job)) throw new Error('malformed job on stdin')
    output = { ok: true, result: await run(job) }
  } catch (err) {
    output = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : errorMessage(err) }
  }
  process.stdout.write(JSON.stringify(output) + '\n', () => {
    // Sockets, timers and pending connects must not keep us alive once the
    // result is out; the harness is waiting for this process to exit.
    process.exit(output.ok ? 0 : 1)
  })
}

void main()
