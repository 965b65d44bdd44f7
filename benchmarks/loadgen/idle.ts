// Idle connections: how much broker memory each connected-but-silent client
// costs, and how much broker CPU a connect (CONNECT → CONNACK) takes, over
// plain TCP or, when the job says so, over TLS (handshake included).
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { rssKiB } from '../lib/procfs.js'
import { connectOptions, MqttConn, type ConnectOptions } from './conn.js'
import type { IdleJob, IdleResult, NegotiatedTls } from './jobs.js'
import { ErrorLog, errorMessage, mapPool } from './pool.js'
import { MeasuredWindow, settle } from './window.js'

function optionsFor (job: IdleJob, clientId: string): ConnectOptions {
  const base = connectOptions(job.target, clientId, 'tcp')
  const options = job.connectTimeoutMs === undefined ? base : { ...base, connectTimeoutMs: job.connectTimeoutMs }
  if (job.tls === undefined) return options
  const port = job.target.tlsPort
  if (port === undefined || port === null) throw new Error('the broker has no TLS port')
  return { ...options, tls: { port, settings: job.tls } }
}

/** Each distinct handshake outcome once: one entry when the pin held. */
export function distinctNegotiated (seen: readonly NegotiatedTls[]): NegotiatedTls[] {
  const byKey = new Map<string, NegotiatedTls>()
  for (const n of seen) byKey.set(`${n.protocol} ${n.cipher} ${n.group ?? ''}`, n)
  return [...byKey.values()]
}

export async function runIdle (job: IdleJob): Promise<IdleResult> {
  const runId = randomBytes(3).toString('hex')
  const errors = new ErrorLog()
  const deadline = Date.now() + job.timeoutMs
  let timedOut = false
  let lastConnackNs = 0n
  const negotiated: NegotiatedTls[] = []
  const open = async (count: number, offset: number): Promise<MqttConn[]> => {
    const settled = await mapPool(count, job.concurrency, async (index): Promise<MqttConn> => {
      if (Date.now() > deadline) {
        timedOut = true
        throw new Error('time bound reached before connect')
      }
      const { conn } = await MqttConn.open(optionsFor(job, `bench-idle-${runId}-${offset + index}`))
      lastConnackNs = process.hrtime.bigint()
      if (conn.tls !== null) negotiated.push(conn.tls)
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
  const startNs = process.hrtime.bigint()
  const conns = await open(measured, warmupCount)
  const measure = window.close(lastConnackNs > 0n ? lastConnackNs : null)
  const endNs = process.hrtime.bigint()

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
    ...(job.tls === undefined ? {} : { negotiated: distinctNegotiated(negotiated) }),
    monotonicStartUs: Number(startNs / 1000n),
    monotonicEndUs: Number(endNs / 1000n),
    timedOut,
    stalled: false,
    errors: errors.list()
  }
}
