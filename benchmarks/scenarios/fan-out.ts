// Fan-out: 1 publisher → 100 subscribers of the same topic at QoS 0; the
// figure is deliveries (messages × subscribers) per broker CPU-second.
import { runFlowJob } from '../lib/loadgen-client.js'
import { flowNotes, flowRates, integrityCounts, mqtt5Broker, sized, warmupFor } from './common.js'
import { targetFor, type Scenario } from './types.js'

const SUBSCRIBERS = 100

export const fanOut: Scenario = {
  id: 'fanout-qos0',
  title: `fan-out QoS 0: 1 publisher → ${SUBSCRIBERS} subscribers`,
  metrics: [
    { key: 'perCpu', label: 'deliveries per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' },
    { key: 'perWall', label: 'deliveries per wall s', unit: 'msg/s', better: 'higher' }
  ],
  needsWebsocket: false,
  applicable: mqtt5Broker,
  run: async (context) => {
    const { settings } = context
    const messages = sized(settings, 3_000, 1_000)
    const result = await runFlowJob({
      kind: 'flow',
      target: targetFor(context),
      publishers: 1,
      messagesPerPublisher: messages,
      warmupPerPublisher: warmupFor(messages),
      payloadBytes: 64,
      publishQos: 0,
      inflight: 0,
      topicPrefix: 'fan',
      ratePerSecond: null,
      subscribers: SUBSCRIBERS,
      subscribeFilter: 'fan/0',
      subscribeQos: 0,
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
