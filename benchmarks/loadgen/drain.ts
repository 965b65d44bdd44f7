// Persistent-session drain: many offline sessions, each with queued QoS 1
// messages, then all clients come back at once (a fleet reconnecting after
// an outage). Only the reconnect-and-drain phase is the figure of merit.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { IPublishPacket } from 'mqtt-packet'
import { connectOptions, MqttConn, type ConnectOptions } from './conn.js'
import { encodePublishes, readPayloadHeader } from './encode.js'
import type { DrainJob, DrainResult, WindowMeasure } from './jobs.js'
import { ErrorLog, errorMessage, mapPool, mapPoolStrict } from './pool.js'
import { Publisher } from './publisher.js'
import { DeliveryTracker } from './tracker.js'
import { MeasuredWindow, settle } from './window.js'

const SESSION_EXPIRY_S = 3600
const CHECK_INTERVAL_MS = 50

/** What the storm job shares with this one. */
/** A resumed session's PUBLISH handler: each numbered payload recorded for subscriber `index`, then `delivered()`. */
export function recordDeliveries (tracker: DeliveryTracker, index: number, delivered: () => void): (packet: IPublishPacket) => void {
  return (packet) => {
    const header = readPayloadHeader(typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload)
    if (header === null) { tracker.recordForeign(); return }
    tracker.record(index, header.publisher, header.seq)
    delivered()
  }
}

export type SessionLoad = Pick<DrainJob, 'target' | 'messagesPerSession' | 'payloadBytes' | 'timeoutMs'>

export function sessionOptions (job: Pick<DrainJob, 'target'>, clientId: string): ConnectOptions {
  return {
    ...connectOptions(job.target, clientId, 'tcp'),
    clean: false,
    // 3.1.1: clean=false alone keeps the session. MQTT 5 also needs a
    // Session Expiry Interval, or the session ends with the connection.
    sessionExpiryS: job.target.protocolVersion === 5 ? SESSION_EXPIRY_S : null
  }
}

/** Publishes messagesPerSession QoS 1 messages to `topic`, which every offline session subscribes to. */
export async function fillQueues (job: SessionLoad, topic: string): Promise<WindowMeasure> {
  const encoded = encodePublishes({
    topic,
    topicFor: null,
    publisherIndex: 0,
    count: job.messagesPerSession,
    payloadBytes: job.payloadBytes,
    qos: 1,
    retain: false,
    protocolVersion: job.target.protocolVersion
  })
  const { conn } = await MqttConn.open(connectOptions(job.target, `bench-drain-pub-${randomBytes(3).toString('hex')}`, 'tcp'))
  const window = new MeasuredWindow(job.target.brokerPid)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout while queueing messages')), job.timeoutMs)
    const publisher = new Publisher(conn, encoded, {
      qos: 1,
      inflight: 100,
      ratePerSecond: null,
      stampTime: false,
      onRefused: () => {},
      onProgress: () => { if (publisher.done) { clearTimeout(timer); resolve() } }
    })
    publisher.start()
  })
  const measure = window.close()
  await conn.disconnect()
  return measure
}

export async function runDrain (job: DrainJob): Promise<DrainResult> {
  const runId = randomBytes(3).toString('hex')
  const topic = `drain/${runId}`
  const errors = new ErrorLog()
  const clientId = (index: number): string => `bench-drain-${runId}-${index}`

  // 1. Create the persistent sessions with their QoS 1 subscription, then go offline.
  const first = await mapPoolStrict(job.sessions, job.concurrency, async (index) => {
    const { conn } = await MqttConn.open(sessionOptions(job, clientId(index)))
    const [code] = await conn.subscribe([{ topic, qos: 1 }], 10_000)
    if (code === undefined || code >= 0x80) throw new Error(`SUBACK 0x${(code ?? 0x80).toString(16)} for ${topic}`)
    return conn
  })
  await Promise.all(first.map(async (conn) => await conn.disconnect()))
  await settle(job.target.brokerPid)

  // 2. Queue messagesPerSession messages for every offline session.
  const fill = await fillQueues(job, topic)
  await settle(job.target.brokerPid, 30_000)

  // 3. Reconnect everyone and measure until every queued message has arrived.
  if (job.markPhases === 'callgrind') execFileSync('callgrind_control', ['--dump=queued', String(job.target.brokerPid)], { stdio: 'ignore' })
  const tracker = new DeliveryTracker(job.sessions, 1, job.messagesPerSession, 'every')
  let lastDeliveryNs = 0n
  let sessionsPresent = 0
  let reconnectsDoneNs = 0n
  let check: () => void = () => {}
  const startMs = Date.now()
  const startNs = process.hrtime.bigint()
  const window = new MeasuredWindow(job.target.brokerPid)
  const reconnecting = mapPool(job.sessions, job.concurrency, async (index) => {
    const { conn, connack } = await MqttConn.open(sessionOptions(job, clientId(index)), {
      publish: recordDeliveries(tracker, index, () => {
        lastDeliveryNs = process.hrtime.bigint()
        if (tracker.complete) check()
      }),
      closed: (error) => { if (error !== null) errors.add(error.message) }
    })
    if (connack.sessionPresent) sessionsPresent++
    return conn
  }).then((settled) => { reconnectsDoneNs = process.hrtime.bigint(); check(); return settled })

  const ending = await new Promise<{ timedOut: boolean, stalled: boolean }>((resolve) => {
    let finished = false
    const finish = (timedOut: boolean, stalled: boolean): void => {
      if (finished) return
      finished = true
      clearInterval(timer)
      resolve({ timedOut, stalled })
    }
    check = () => { if (tracker.complete) finish(false, false) }
    const timer = setInterval(() => {
      if (Date.now() - startMs > job.timeoutMs) finish(true, false)
      else if (reconnectsDoneNs > 0n) {
        const quietSince = lastDeliveryNs > reconnectsDoneNs ? lastDeliveryNs : reconnectsDoneNs
        if (process.hrtime.bigint() - quietSince > BigInt(job.stallMs) * 1_000_000n) finish(false, true)
      }
    }, CHECK_INTERVAL_MS)
    check()
  })
  const measure = window.close(ending.timedOut || lastDeliveryNs === 0n ? null : lastDeliveryNs)

  for (const result of await reconnecting) {
    if (result.status === 'fulfilled') result.value.destroy()
    else errors.add(`reconnect: ${errorMessage(result.reason)}`)
  }
  return {
    kind: 'drain',
    sessions: job.sessions,
    sessionsPresent,
    fill,
    window: measure,
    integrity: tracker.integrity(),
    monotonicStartUs: Number(startNs / 1000n),
    monotonicEndUs: Number((lastDeliveryNs > 0n ? lastDeliveryNs : process.hrtime.bigint()) / 1000n),
    timedOut: ending.timedOut,
    stalled: ending.stalled,
    errors: errors.list()
  }
}
