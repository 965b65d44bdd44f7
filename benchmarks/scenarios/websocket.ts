// WebSocket subscriber: a TCP publisher → a subscriber on ws://…/mqtt
// (subprotocol `mqtt`), QoS 0. Measures the broker's WebSocket path: framing
// and the stream adapter, on top of normal routing.
import { runFlowJob } from '../lib/loadgen-client.js'
import { flowNotes, flowRates, integrityCounts, mqtt5Broker, sized, warmupFor } from './common.js'
import { targetFor, type Scenario } from './types.js'

export const websocket: Scenario = {
  id: 'ws-subscriber',
  title: 'WebSocket subscriber: TCP publisher → ws:// subscriber, QoS 0',
  metrics: [
    { key: 'perCpu', label: 'msgs per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' },
    { key: 'perWall', label: 'msgs per wall s', unit: 'msg/s', better: 'higher' }
  ],
  needsWebsocket: true,
  applicable: (runner, settings) => mqtt5Broker(runner, settings) ?? (runner.features.websocket ? null : 'no WebSocket listener'),
  run: async (context) => {
    const { settings } = context
    const messages = sized(settings, 40_000, 20_000)
    const result = await runFlowJob({
      kind: 'flow',
      target: targetFor(context),
      publishers: 1,
      messagesPerPublisher: messages,
      warmupPerPublisher: warmupFor(messages),
      payloadBytes: 64,
      publishQos: 0,
      inflight: 0,
      topicPrefix: 'ws',
      ratePerSecond: null,
      subscribers: 1,
      subscribeFilter: 'ws/#',
      subscribeQos: 0,
      subscriberTransport: 'ws',
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
