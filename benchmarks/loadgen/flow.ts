// Publishers → subscribers run: used for fan-in, fan-out, latency, shared
// group dispatch and the WebSocket subscriber scenario. Connections and
// subscriptions are set up first; the measured window covers only the
// publishing and delivery.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IPublishPacket } from 'mqtt-packet'
import { commandCounts, commandDelta } from '../lib/redis.js'
import { percentileSorted } from '../lib/stats.js'
import { connectOptions, MqttConn } from './conn.js'
import { encodePublishes, readPayloadHeader, WARMUP_PUBLISHER, type EncodedPublishes } from './encode.js'
import type { FlowJob, FlowResult, LatencySummary, Target } from './jobs.js'
import { ErrorLog, errorMessage, mapPoolStrict } from './pool.js'
import { Publisher } from './publisher.js'
import { DeliveryTracker } from './tracker.js'
import { MeasuredWindow, measuredPids, settle } from './window.js'

const CONNECT_CONCURRENCY = 50
const SUBSCRIBE_TIMEOUT_MS = 10_000
const CHECK_INTERVAL_MS = 50
const PERSISTENT_SESSION_EXPIRY_S = 3600

function payloadBuffer (packet: IPublishPacket): Buffer {
  return typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
}

function summarizeLatency (samples: Float64Array, count: number, keep: boolean): LatencySummary {
  const sorted = samples.slice(0, count).sort()
  return {
    count,
    p50Ms: percentileSorted(sorted, 50),
    p99Ms: percentileSorted(sorted, 99),
    maxMs: count > 0 ? sorted[count - 1]! : Number.NaN,
    samplesMs: keep ? Array.from(samples.subarray(0, count)) : null
  }
}

/** The target with its port set to the node `nodes[index % length]`, or unchanged without a cluster or a node list. */
export function nodeTarget (target: Target, nodes: readonly number[] | undefined, index: number): Target {
  if (target.cluster === undefined || nodes === undefined || nodes.length === 0) return target
  const node = target.cluster.nodes[nodes[index % nodes.length]!]
  if (node === undefined) throw new Error(`no cluster node ${nodes[index % nodes.length]!} (${target.cluster.nodes.length} nodes)`)
  return { ...target, port: node.port }
}

export async function runFlow (job: FlowJob): Promise<FlowResult> {
  const runId = randomBytes(3).toString('hex')
  const errors = new ErrorLog()
  const tracker = new DeliveryTracker(job.subscribers, job.publishers, job.messagesPerPublisher, job.delivery)
  const latencies = new Float64Array(job.measureLatency ? tracker.expected : 0)
  let latencyCount = 0
  let lastDeliveryNs = 0n
  let check: () => void = () => {}

  // 1. Encode everything up front so the window measures the broker, not us.
  const encode = (i: number, publisherIndex: number, count: number): EncodedPublishes => encodePublishes({
    topic: `${job.topicPrefix}/${i}`,
    topicFor: null,
    publisherIndex,
    count,
    payloadBytes: job.payloadBytes,
    qos: job.publishQos,
    retain: false,
    protocolVersion: job.target.protocolVersion
  })
  const encoded = Array.from({ length: job.publishers }, (_, i) => encode(i, i, job.messagesPerPublisher))
  const warmupBatches = Array.from({ length: job.publishers }, (_, i) => encode(i, WARMUP_PUBLISHER, job.warmupPerPublisher))
  const fanFactor = job.delivery === 'every' ? job.subscribers : 1
  const warmup = { expected: job.warmupPerPublisher * job.publishers * fanFactor, received: 0, done: () => {} }

  // 2. Subscribers, each counting what it receives.
  const subscribers = await mapPoolStrict(job.subscribers, CONNECT_CONCURRENCY, async (index) => {
    const target = nodeTarget(job.target, job.subscriberNodes, index)
    const options = connectOptions(target, `bench-sub-${runId}-${index}`, job.subscriberTransport)
    const persistent = job.persistentSubscribers === true
      ? { clean: false, sessionExpiryS: target.protocolVersion === 5 ? PERSISTENT_SESSION_EXPIRY_S : null }
      : {}
    const { conn } = await MqttConn.open({ ...options, ...persistent }, {
      publish: (packet) => {
        const header = readPayloadHeader(payloadBuffer(packet))
        if (header === null) { tracker.recordForeign(); return }
        if (header.publisher === WARMUP_PUBLISHER) {
          if (++warmup.received >= warmup.expected) warmup.done()
          return
        }
        const now = process.hrtime.bigint()
        lastDeliveryNs = now
        if (tracker.record(index, header.publisher, header.seq) && job.measureLatency) {
          latencies[latencyCount++] = Number(now - header.sentNs) / 1e6
        }
        if (tracker.complete) check()
      },
      closed: (error) => { if (error !== null) errors.add(`subscriber: ${error.message}`) }
    })
    return conn
  })
  const closeAll = (conns: MqttConn[]): void => { for (const conn of conns) conn.destroy() }

  const rejection = await subscribeAll(job, subscribers)
  if (rejection !== null) {
    closeAll(subscribers)
    return emptyResult(tracker, rejection, errors.list())
  }
  if (job.afterSubscribeMs !== undefined) await sleep(job.afterSubscribeMs)

  // 3. Publishers.
  const publisherConns = await mapPoolStrict(job.publishers, CONNECT_CONCURRENCY, async (index) => {
    const { conn } = await MqttConn.open(connectOptions(nodeTarget(job.target, job.publisherNodes, index), `bench-pub-${runId}-${index}`, 'tcp'), {
      closed: (error) => { if (error !== null) errors.add(`publisher: ${error.message}`) }
    })
    return conn
  })
  if (job.warmupPerPublisher > 0) {
    await warmUp(job, publisherConns, warmupBatches, warmup, fanFactor)
  }
  // Created after the warm-up: each Publisher takes over its connection's ack handler.
  const publishers = publisherConns.map((conn, i) => new Publisher(conn, encoded[i]!, {
    qos: job.publishQos,
    inflight: job.inflight,
    ratePerSecond: job.ratePerSecond === null ? null : job.ratePerSecond / job.publishers,
    stampTime: job.measureLatency,
    onProgress: () => check(),
    onRefused: (messages) => {
      tracker.excuse(job.delivery === 'every' ? messages * job.subscribers : messages)
      check()
    }
  }))

  // 4. Measure from a quiet broker.
  const pids = measuredPids(job.target)
  await settle(pids)
  const redisPort = job.target.cluster?.redisPort
  const redisBefore = redisPort === undefined ? null : await commandCounts(redisPort)
  const window = new MeasuredWindow(pids)
  const startMs = Date.now()
  const ending = await new Promise<{ timedOut: boolean, stalled: boolean, endNs: bigint | null }>((resolve) => {
    let finished = false
    const finish = (timedOut: boolean, stalled: boolean, endNs: bigint | null): void => {
      if (finished) return
      finished = true
      clearInterval(timer)
      resolve({ timedOut, stalled, endNs })
    }
    const allPublished = (): boolean => publishers.every((p) => p.done)
    check = () => {
      if (tracker.complete && allPublished()) {
        const lastAck = publishers.reduce((max, p) => (p.lastAckNs > max ? p.lastAckNs : max), 0n)
        finish(false, false, lastAck > lastDeliveryNs ? lastAck : lastDeliveryNs)
      }
    }
    // Stall clock: quiet time since the later of "everything was published"
    // and the last delivery. QoS 0 publishers are done as soon as their data
    // is handed to the socket, long before the broker has routed it.
    let publishedAtNs = 0n
    const timer = setInterval(() => {
      const now = process.hrtime.bigint()
      if (publishedAtNs === 0n && allPublished()) publishedAtNs = now
      const quietSince = lastDeliveryNs > publishedAtNs ? lastDeliveryNs : publishedAtNs
      if (Date.now() - startMs > job.timeoutMs) finish(true, false, null)
      else if (publishedAtNs > 0n && now - quietSince > BigInt(job.stallMs) * 1_000_000n) {
        finish(false, true, lastDeliveryNs > 0n ? lastDeliveryNs : null)
      }
    }, CHECK_INTERVAL_MS)
    for (const publisher of publishers) publisher.start()
    check()
  })
  const measure = window.close(ending.endNs)
  const redisCommands = redisPort === undefined || redisBefore === null ? null : commandDelta(redisBefore, await commandCounts(redisPort))

  for (const publisher of publishers) publisher.stop()
  closeAll(publisherConns)
  closeAll(subscribers)

  return {
    kind: 'flow',
    rejected: null,
    sent: publishers.reduce((sum, p) => sum + p.sent, 0),
    acked: publishers.reduce((sum, p) => sum + (job.publishQos > 0 ? p.completed : 0), 0),
    nacked: publishers.reduce((sum, p) => sum + p.nacked, 0),
    nackReasons: mergeCounts(publishers.map((p) => p.nackReasons)),
    deliveries: tracker.deliveries,
    integrity: tracker.integrity(),
    window: measure,
    latency: job.measureLatency ? summarizeLatency(latencies, latencyCount, job.keepLatencySamples) : null,
    redisCommands,
    timedOut: ending.timedOut,
    stalled: ending.stalled,
    errors: errors.list()
  }
}

/** Subscribes every subscriber; returns the first refusal (SUBACK ≥ 0x80), if any. */
async function subscribeAll (job: FlowJob, subscribers: MqttConn[]): Promise<FlowResult['rejected']> {
  for (const conn of subscribers) {
    let codes: number[]
    try {
      codes = await conn.subscribe([{ topic: job.subscribeFilter, qos: job.subscribeQos }], SUBSCRIBE_TIMEOUT_MS)
    } catch (err) {
      throw new Error(`subscribe ${job.subscribeFilter}: ${errorMessage(err)}`)
    }
    const code = codes[0] ?? 0x80
    if (code >= 0x80) return { filter: job.subscribeFilter, reasonCode: code }
  }
  return null
}

function emptyResult (tracker: DeliveryTracker, rejected: FlowResult['rejected'], errors: string[]): FlowResult {
  return {
    kind: 'flow',
    rejected,
    sent: 0,
    acked: 0,
    nacked: 0,
    nackReasons: {},
    deliveries: 0,
    integrity: { ...tracker.integrity(), lost: 0 },
    window: { wallMs: 0, brokerCpuS: 0, rssStartKiB: 0, rssEndKiB: 0 },
    latency: null,
    redisCommands: null,
    timedOut: false,
    stalled: false,
    errors
  }
}

function mergeCounts (counts: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> {
  const merged: Record<string, number> = {}
  for (const record of counts) {
    for (const [key, value] of Object.entries(record)) merged[key] = (merged[key] ?? 0) + value
  }
  return merged
}

interface WarmupState {
  expected: number
  received: number
  done: () => void
}

/** Runs the warm-up batches to completion (or stall/timeout), outside any window. */
async function warmUp (job: FlowJob, conns: readonly MqttConn[], batches: readonly EncodedPublishes[], state: WarmupState, fanFactor: number): Promise<void> {
  const publishers: Publisher[] = []
  await new Promise<void>((resolve) => {
    let lastReceived = -1
    let quietSinceMs = Date.now()
    const startMs = Date.now()
    const finish = (): void => { clearInterval(timer); resolve() }
    // Done only when every warm-up message has arrived AND been acknowledged
    // to its publisher: a late warm-up ack must not reach the measured run.
    const maybeFinish = (): void => {
      if (state.received >= state.expected && publishers.every((p) => p.done)) finish()
    }
    state.done = maybeFinish
    const timer = setInterval(() => {
      if (state.received !== lastReceived) { lastReceived = state.received; quietSinceMs = Date.now() }
      const published = publishers.every((p) => p.done)
      if (Date.now() - startMs > job.timeoutMs || (published && Date.now() - quietSinceMs > job.stallMs)) finish()
    }, CHECK_INTERVAL_MS)
    for (const [i, conn] of conns.entries()) {
      publishers.push(new Publisher(conn, batches[i]!, {
        qos: job.publishQos,
        inflight: job.inflight,
        ratePerSecond: null,
        stampTime: false,
        onProgress: maybeFinish,
        onRefused: (messages) => { state.expected -= messages * fanFactor }
      }))
    }
    for (const publisher of publishers) publisher.start()
  })
  for (const publisher of publishers) publisher.stop()
}
