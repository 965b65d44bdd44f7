// Idle connections: how much broker memory each connected-but-silent client
// costs, and how much broker CPU a connect (CONNECT → CONNACK) takes.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { rssKiB } from '../lib/procfs.js'
import { connectOptions, MqttConn } from './conn.js'
import type { IdleJob, IdleResult } from './jobs.js'
import { ErrorLog, errorMessage, mapPool } from './pool.js'
import { MeasuredWindow, settle } from './window.js'

export async function runIdle (job: IdleJob): Promise<IdleResult> {
  const runId = randomBytes(3).toString('hex')
  const errors = new ErrorLog()
  const deadline = Date.now() + job.timeoutMs
  let timedOut = false
  let lastConnackNs = 0n
  const open = async (count: number, offset: number): Promise<MqttConn[]> => {
    const settled = await mapPool(count, job.concurrency, async (index): Promise<MqttConn> => {
      if (Date.now() > deadline) {
        timedOut = true
        throw new Error('time bound reached before connect')
      }
      const { conn } = await MqttConn.open(connectOptions(job.target, `bench-idle-${runId}-${offset + index}`, 'tcp'))
      lastConnackNs = process.hrtime.bigint()
      return conn
    })
    const conns: MqttConn[] = []
    for (const result of settled) {
      if (result.status === 'fulfilled') conns.push(result.value)
      else errors.add(errorMessage(result.reason))
    }
    return conns
  }

  // A first tenth of the connections, kept open but not measured, absorbs
  // one-off costs (JIT, heap growth, connection-pool setup) that would
  // otherwise be spread over the per-connection figures.
  const warmupCount = Math.min(job.connections - 1, Math.max(100, Math.round(job.connections / 10)))
  const warm = await open(warmupCount, 0)
  await settle(job.target.brokerPid)
  await sleep(500)

  const measured = job.connections - warmupCount
  const window = new MeasuredWindow(job.target.brokerPid)
  const conns = await open(measured, warmupCount)
  const measure = window.close(lastConnackNs > 0n ? lastConnackNs : null)

  // Let the broker finish per-connection work and a GC cycle before reading
  // RSS, so the figure is the steady cost of holding the connections.
  await settle(job.target.brokerPid)
  await sleep(500)
  const rssIdle = rssKiB(job.target.brokerPid)

  for (const conn of [...warm, ...conns]) conn.destroy()
  return {
    kind: 'idle',
    requested: measured,
    opened: conns.length,
    failed: measured - conns.length,
    warmup: warm.length,
    window: measure,
    rssIdleKiB: rssIdle,
    timedOut,
    stalled: false,
    errors: errors.list()
  }
}
