// Latency under steady load: QoS 1 at 2000 msg/s, publisher and subscriber
// in the same load-generator process so both timestamps come from one
// monotonic clock (process.hrtime.bigint), embedded in the payload.
import { runFlowJob } from '../lib/loadgen-client.js'
import { flowNotes, integrityCounts, mqtt5Broker, sized } from './common.js'
import { targetFor, type Scenario } from './types.js'

const RATE = 2000

export const latency: Scenario = {
  id: 'latency-qos1',
  title: `latency: QoS 1 at a steady ${RATE} msg/s`,
  metrics: [
    { key: 'p50', label: 'p50 latency', unit: 'ms', better: 'lower' },
    { key: 'p99', label: 'p99 latency', unit: 'ms', better: 'lower' },
    { key: 'max', label: 'max latency', unit: 'ms', better: 'lower' },
    { key: 'cpuPct', label: 'broker CPU at this rate', unit: '% of a core', better: 'lower' }
  ],
  needsWebsocket: false,
  applicable: mqtt5Broker,
  run: async (context) => {
    const { settings } = context
    const seconds = sized(settings, 5, 2)
    const result = await runFlowJob({
      kind: 'flow',
      target: targetFor(context),
      publishers: 1,
      messagesPerPublisher: RATE * seconds,
      // One second's worth, sent unpaced before the window.
      warmupPerPublisher: RATE,
      payloadBytes: 64,
      publishQos: 1,
      inflight: 100,
      topicPrefix: 'lat',
      ratePerSecond: RATE,
      subscribers: 1,
      subscribeFilter: 'lat/#',
      subscribeQos: 1,
      subscriberTransport: 'tcp',
      delivery: 'every',
      measureLatency: true,
      keepLatencySamples: settings.keepLatencySamples,
      timeoutMs: (seconds + 20) * 1000,
      stallMs: 3_000
    }, settings.loadgen)
    const summary = result.latency
    const wallS = result.window.wallMs / 1000
    return {
      values: {
        p50: summary !== null && summary.count > 0 ? summary.p50Ms : null,
        p99: summary !== null && summary.count > 0 ? summary.p99Ms : null,
        max: summary !== null && summary.count > 0 ? summary.maxMs : null,
        cpuPct: wallS > 0 ? (100 * result.window.brokerCpuS) / wallS : null
      },
      integrity: integrityCounts(result.integrity),
      notes: flowNotes(result).filter((note) => !note.includes('too small to rate')),
      raw: [result]
    }
  }
}
