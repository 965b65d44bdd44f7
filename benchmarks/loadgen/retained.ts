// Retained lookup: store many retained messages, then time how long (wall
// and broker CPU) a new subscription takes to receive the ones it matches.
import { randomBytes } from 'node:crypto'
import { connectOptions, MqttConn } from './conn.js'
import { encodePublishes, readPayloadHeader } from './encode.js'
import type { LookupResult, RetainedJob, RetainedLookup, RetainedResult, WindowMeasure } from './jobs.js'
import { ErrorLog, mapPoolStrict } from './pool.js'
import { Publisher } from './publisher.js'
import { retainedTopic } from './retained-topics.js'
import { MeasuredWindow, settle } from './window.js'

const CHECK_INTERVAL_MS = 20

async function store (job: RetainedJob, runId: string): Promise<{ measure: WindowMeasure, stored: number, timedOut: boolean }> {
  const encoded = encodePublishes({
    topic: retainedTopic(0, job.count),
    topicFor: (index) => retainedTopic(index, job.count),
    publisherIndex: 0,
    count: job.count,
    payloadBytes: job.payloadBytes,
    qos: 1,
    retain: true,
    protocolVersion: job.target.protocolVersion
  })
  const { conn } = await MqttConn.open(connectOptions(job.target, `bench-ret-pub-${runId}`, 'tcp'))
  await settle(job.target.brokerPid)
  const window = new MeasuredWindow(job.target.brokerPid)
  let timedOut = false
  const publisher = await new Promise<Publisher>((resolve) => {
    const timer = setTimeout(() => { timedOut = true; publisher.stop(); resolve(publisher) }, job.timeoutMs)
    const publisher: Publisher = new Publisher(conn, encoded, {
      qos: 1,
      inflight: 100,
      ratePerSecond: null,
      stampTime: false,
      onRefused: () => {},
      onProgress: () => { if (publisher.done) { clearTimeout(timer); resolve(publisher) } }
    })
    publisher.start()
  })
  const measure = window.close()
  conn.destroy()
  return { measure, stored: publisher.completed - publisher.nacked, timedOut }
}

async function lookup (job: RetainedJob, runId: string, spec: RetainedLookup, index: number, errors: ErrorLog): Promise<LookupResult> {
  const received = new Array<number>(spec.rounds).fill(0)
  let current = -1
  let lastNs = 0n
  let roundDone: () => void = () => {}
  // One connection per round, all opened before the window: the window then
  // holds only SUBSCRIBE → retained deliveries, never CONNECT handling.
  const conns = await mapPoolStrict(spec.rounds, 10, async (round) => {
    const { conn } = await MqttConn.open(connectOptions(job.target, `bench-ret-sub-${runId}-${index}-${round}`, 'tcp'), {
      publish: (packet) => {
        if (!packet.retain) return
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
        if (readPayloadHeader(payload) === null) return
        received[round]!++
        lastNs = process.hrtime.bigint()
        if (round === current && received[round]! >= spec.expected) roundDone()
      },
      closed: (error) => { if (error !== null) errors.add(error.message) }
    })
    return conn
  })
  await settle(job.target.brokerPid)
  const window = new MeasuredWindow(job.target.brokerPid)
  const startNs = process.hrtime.bigint()
  let ending = { timedOut: false, stalled: false }
  let completedRounds = 0
  for (const [round, conn] of conns.entries()) {
    current = round
    const roundStartNs = process.hrtime.bigint()
    ending = await new Promise<{ timedOut: boolean, stalled: boolean }>((resolve) => {
      let finished = false
      const finish = (timedOut: boolean, stalled: boolean): void => {
        if (finished) return
        finished = true
        clearInterval(timer)
        resolve({ timedOut, stalled })
      }
      roundDone = () => finish(false, false)
      const timer = setInterval(() => {
        const now = process.hrtime.bigint()
        const quietSince = lastNs > roundStartNs ? lastNs : roundStartNs
        if (now - startNs > BigInt(job.timeoutMs) * 1_000_000n) finish(true, false)
        else if (now - quietSince > BigInt(job.stallMs) * 1_000_000n) finish(false, true)
      }, CHECK_INTERVAL_MS)
      // QoS 0 subscription: retained messages come back at QoS 0, so the
      // window measures the lookup and the writes, not an ack exchange.
      conn.subscribeNoWait({ topic: spec.filter, qos: 0 })
    })
    if (ending.timedOut || ending.stalled) break
    completedRounds++
  }
  const measure = window.close(ending.timedOut || lastNs === 0n ? null : lastNs)
  for (const conn of conns) conn.destroy()
  return {
    filter: spec.filter,
    expected: spec.expected,
    rounds: spec.rounds,
    completedRounds,
    received: received.reduce((sum, n) => sum + n, 0),
    window: measure,
    ...ending,
    errors: []
  }
}

export async function runRetained (job: RetainedJob): Promise<RetainedResult> {
  const runId = randomBytes(3).toString('hex')
  const errors = new ErrorLog()
  const stored = job.alreadyStored === true ? { measure: new MeasuredWindow(job.target.brokerPid).close(), stored: 0, timedOut: false } : await store(job, runId)
  // Persistent brokers may still be writing after the last PUBACK.
  await settle(job.target.brokerPid, 30_000)
  const lookups: LookupResult[] = []
  for (const [index, spec] of job.lookups.entries()) {
    const result = await lookup(job, runId, spec, index, errors)
    lookups.push({ ...result, errors: errors.list() })
  }
  return { kind: 'retained', stored: stored.stored, store: stored.measure, storeTimedOut: stored.timedOut, lookups }
}
