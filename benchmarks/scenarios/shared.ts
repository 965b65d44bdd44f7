// Shared-group dispatch: 1 QoS 1 publisher → a `$share/g/jobs/#` group of 10
// QoS 1 consumers, against the same load to a single plain subscriber. The
// group must deliver each message to exactly one member, so duplicates are
// counted across the group. Brokers without shared subscriptions refuse the
// filter (SUBACK 0x9E) and are reported as n/a.
import { runFlowJob } from '../lib/loadgen-client.js'
import type { FlowJob, FlowResult } from '../loadgen/jobs.js'
import { addIntegrity, flowNotes, integrityCounts, mqtt5Broker, perCpuSecond, sized, warmupFor } from './common.js'
import { targetFor, type Scenario, type ScenarioContext } from './types.js'

const GROUP_SIZE = 10

function job (context: ScenarioContext, subscribers: number, filter: string, delivery: FlowJob['delivery']): FlowJob {
  const { settings } = context
  // 100k: at about 100k deliveries per CPU-second that is 100 ticks of broker CPU, so one tick is 1%
  const messages = sized(settings, 100_000, 10_000)
  return {
    kind: 'flow',
    target: targetFor(context),
    publishers: 1,
    messagesPerPublisher: messages,
    warmupPerPublisher: warmupFor(messages),
    payloadBytes: 64,
    publishQos: 1,
    inflight: 100,
    topicPrefix: 'jobs',
    ratePerSecond: null,
    subscribers,
    subscribeFilter: filter,
    subscribeQos: 1,
    subscriberTransport: 'tcp',
    delivery,
    measureLatency: false,
    keepLatencySamples: false,
    timeoutMs: sized(settings, 60_000, 20_000),
    stallMs: 3_000
  }
}

function rejectionNote (result: FlowResult): string[] {
  return result.rejected === null
    ? []
    : [`n/a: SUBACK 0x${result.rejected.reasonCode.toString(16)} for ${result.rejected.filter}`]
}

export const shared: Scenario = {
  id: 'shared-dispatch',
  title: `shared-group dispatch: 1 publisher → $share/g/jobs/# (${GROUP_SIZE} consumers) vs 1 plain subscriber, QoS 1`,
  metrics: [
    { key: 'groupPerCpu', label: `$share group of ${GROUP_SIZE}: deliveries per broker CPU-s`, unit: 'msg/cpu-s', better: 'higher' },
    { key: 'plainPerCpu', label: 'plain subscriber: deliveries per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' }
  ],
  needsWebsocket: false,
  applicable: mqtt5Broker,
  run: async (context) => {
    const group = await runFlowJob(job(context, GROUP_SIZE, '$share/g/jobs/#', 'one'), context.settings.loadgen)
    const plain = await runFlowJob(job(context, 1, 'jobs/#', 'every'), context.settings.loadgen)
    const groupOk = group.rejected === null
    return {
      values: {
        groupPerCpu: groupOk ? perCpuSecond(group.integrity.unique, group.window) : null,
        plainPerCpu: perCpuSecond(plain.integrity.unique, plain.window)
      },
      integrity: groupOk ? addIntegrity(integrityCounts(group.integrity), integrityCounts(plain.integrity)) : integrityCounts(plain.integrity),
      notes: [
        ...rejectionNote(group),
        ...(groupOk ? flowNotes(group, 'group') : []),
        ...flowNotes(plain, 'plain')
      ],
      raw: [group, plain]
    }
  }
}
