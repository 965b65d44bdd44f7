// Fan-in: 10 publishers → 1 wildcard subscriber (bench/#), 64-byte payloads,
// at QoS 0, 1 and 2. QoS 1/2 publishers keep up to 100 messages in flight
// and the subscriber acknowledges everything it receives.
import { runFlowJob } from '../lib/loadgen-client.js'
import type { QoS } from '../loadgen/jobs.js'
import { flowNotes, flowRates, integrityCounts, mqtt5Broker, sized, warmupFor } from './common.js'
import { targetFor, type Scenario } from './types.js'

const PUBLISHERS = 10

const MESSAGES_PER_PUBLISHER: Record<QoS, { normal: number, quick: number }> = {
  0: { normal: 15_000, quick: 5_000 },
  1: { normal: 5_000, quick: 1_500 },
  2: { normal: 3_000, quick: 1_000 }
}

export function fanIn (qos: QoS): Scenario {
  return {
    id: `fanin-qos${qos}`,
    title: `fan-in QoS ${qos}: ${PUBLISHERS} publishers → 1 subscriber (bench/#)`,
    metrics: [
      { key: 'perCpu', label: 'msgs per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' },
      { key: 'perWall', label: 'msgs per wall s', unit: 'msg/s', better: 'higher' }
    ],
    needsWebsocket: false,
    applicable: mqtt5Broker,
    run: async (context) => {
      const { settings } = context
      const counts = MESSAGES_PER_PUBLISHER[qos]
      const messages = sized(settings, counts.normal, counts.quick)
      const result = await runFlowJob({
        kind: 'flow',
        target: targetFor(context),
        publishers: PUBLISHERS,
        messagesPerPublisher: messages,
        warmupPerPublisher: warmupFor(messages),
        payloadBytes: 64,
        publishQos: qos,
        inflight: 100,
        topicPrefix: 'bench',
        ratePerSecond: null,
        subscribers: 1,
        subscribeFilter: 'bench/#',
        subscribeQos: qos,
        subscriberTransport: 'tcp',
        delivery: 'every',
        measureLatency: false,
        keepLatencySamples: false,
        timeoutMs: sized(settings, 60_000, 20_000),
        stallMs: 3_000
      }, settings.loadgen)
      return {
        values: flowRates(result),
        integrity: integrityCounts(result.integrity),
        notes: flowNotes(result),
        raw: [result]
      }
    }
  }
}
