// Reconnect storm: persistent MQTT 5 sessions with messages queued while
// they were offline all come back within about a second (a fleet after a
// network outage). Measured: the time until every queued message has been
// delivered and acknowledged, the broker's peak RSS and its CPU, and the
// load generator's own CPU, to show it was not the bottleneck.
import { randomBytes } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { cpuSeconds, hwmKiB, listenOverflows, PeakSampler, rssKiB } from '../lib/procfs.js'
import { MqttConn } from './conn.js'
import { fillQueues, recordDeliveries, sessionOptions } from './drain.js'
import type { Ending, StormJob, StormResult } from './jobs.js'
import { ErrorLog, errorMessage, mapPoolStrict } from './pool.js'
import { pacedPool } from './paced.js'
import { DeliveryTracker } from './tracker.js'
import { MeasuredWindow, settle } from './window.js'

const CHECK_INTERVAL_MS = 50
const SUBSCRIBE_TIMEOUT_MS = 10_000
/** Sessions are created at this concurrency (outside the window). */
const SETUP_CONCURRENCY = 100
/** After the last delivery: how long the broker may take to go quiet (acknowledgements, persistence). */
const QUIET_MAX_MS = 15_000

const msSince = (startNs: bigint, ns: bigint): number => ns > startNs ? Number(ns - startNs) / 1e6 : 0

async function createSessions (job: StormJob, topic: string, clientId: (index: number) => string): Promise<void> {
  const conns = await mapPoolStrict(job.sessions, SETUP_CONCURRENCY, async (index) => {
    const { conn } = await MqttConn.open(sessionOptions(job, clientId(index)))
    const [code] = await conn.subscribe([{ topic, qos: 1 }], SUBSCRIBE_TIMEOUT_MS)
    if (code === undefined || code >= 0x80) throw new Error(`SUBACK 0x${(code ?? 0x80).toString(16)} for ${topic}`)
    await conn.disconnect()
    return conn
  })
  if (conns.length !== job.sessions) throw new Error(`${conns.length} of ${job.sessions} sessions created`)
}

export async function runStorm (job: StormJob): Promise<StormResult> {
  const runId = randomBytes(3).toString('hex')
  const topic = `storm/${runId}`
  const errors = new ErrorLog()
  const pid = job.target.brokerPid
  const clientId = (index: number): string => `bench-storm-${runId}-${index}`

  await createSessions(job, topic, clientId)
  await settle(pid, 30_000)
  const fill = await fillQueues(job, topic)
  await settle(pid, 30_000)

  const tracker = new DeliveryTracker(job.sessions, 1, job.messagesPerSession, 'every')
  let lastDeliveryNs = 0n
  let lastConnackNs = 0n
  let sessionsPresent = 0
  let reconnectsDone = false
  let check: () => void = () => {}
  const sampler = new PeakSampler(() => rssKiB(pid), job.rssIntervalMs)
  sampler.start()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  const overflowsAtStart = listenOverflows()
  const cpuAtStart = cpuSeconds(pid)
  const loadgenCpuAtStart = process.cpuUsage()
  const window = new MeasuredWindow(pid)
  const startNs = process.hrtime.bigint()
  const reconnecting = pacedPool(job.sessions, {
    spreadMs: job.spreadMs,
    concurrency: job.concurrency,
    deadline: Date.now() + job.timeoutMs
  }, async (index) => {
    const { conn, connack } = await MqttConn.open(sessionOptions(job, clientId(index)), {
      publish: recordDeliveries(tracker, index, () => {
        lastDeliveryNs = process.hrtime.bigint()
        if (tracker.complete) check()
      }),
      closed: (error) => { if (error !== null) errors.add(error.message) }
    })
    lastConnackNs = process.hrtime.bigint()
    if (connack.sessionPresent) sessionsPresent++
    return conn
  }).then((run) => { reconnectsDone = true; check(); return run })

  const ending = await new Promise<Omit<Ending, 'errors'>>((resolve) => {
    let finished = false
    const finish = (timedOut: boolean, stalled: boolean): void => {
      if (finished) return
      finished = true
      clearInterval(timer)
      resolve({ timedOut, stalled })
    }
    check = () => { if (tracker.complete) finish(false, false) }
    const timer = setInterval(() => {
      const nowNs = process.hrtime.bigint()
      if (msSince(startNs, nowNs) > job.timeoutMs) finish(true, false)
      else if (reconnectsDone) {
        const quietSince = lastDeliveryNs > lastConnackNs ? lastDeliveryNs : lastConnackNs
        if (msSince(quietSince, nowNs) > job.stallMs) finish(false, true)
      }
    }, CHECK_INTERVAL_MS)
    check()
  })
  const measure = window.close(ending.timedOut || lastDeliveryNs === 0n ? null : lastDeliveryNs)
  const loadgenCpu = process.cpuUsage(loadgenCpuAtStart)
  loopDelay.disable()
  const overflowsAtEnd = listenOverflows()
  // Connections stay open while the broker finishes: a late duplicate
  // delivery is still counted, and acknowledgement handling is billed to the storm.
  await settle(pid, QUIET_MAX_MS)
  const cpuUntilQuietS = cpuSeconds(pid) - cpuAtStart
  const quietNs = process.hrtime.bigint()
  const peakRssKiB = sampler.stop()
  const hwm = hwmKiB(pid)

  const run = await reconnecting
  let reconnected = 0
  for (const result of run.results) {
    if (result.status === 'fulfilled') { reconnected++; result.value.destroy() } else errors.add(`reconnect: ${errorMessage(result.reason)}`)
  }
  return {
    kind: 'storm',
    sessions: job.sessions,
    sessionsPresent,
    reconnected,
    fill,
    window: measure,
    cpuUntilQuietS,
    lastConnectStartedMs: run.stats.lastStartMs,
    lastConnackMs: msSince(startNs, lastConnackNs),
    concurrencyWaits: run.stats.concurrencyWaits,
    peakRssKiB,
    hwmKiB: hwm,
    loadgenCpuShare: (loadgenCpu.user + loadgenCpu.system) / 1000 / Math.max(1, measure.wallMs),
    loadgenLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    listenOverflows: overflowsAtStart === null || overflowsAtEnd === null ? null : overflowsAtEnd - overflowsAtStart,
    monotonicStartUs: Number(startNs / 1000n),
    monotonicQuietUs: Number(quietNs / 1000n),
    integrity: tracker.integrity(),
    ...ending,
    errors: errors.list()
  }
}
