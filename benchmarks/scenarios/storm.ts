// Reconnect storm (issue 19): persistent MQTT 5 sessions, each with one QoS 1
// subscription and messages queued while offline, all reconnect within about
// a second. Figures: the time until every queued message is delivered and
// acknowledged, the last CONNACK, the broker's peak RSS and its CPU for the
// whole storm (until it is quiet again).
import { runStormJob } from '../lib/loadgen-client.js'
import type { StormResult } from '../loadgen/jobs.js'
import { endingNotes, integrityCounts, MIN_CPU_S, mqtt5Broker, perCpuSecond, sized } from './common.js'
import { targetFor, type Outcome, type Scenario } from './types.js'

export const STORM_MESSAGES_PER_SESSION = 5
export const STORM_SPREAD_MS = 1000
/** Above this share of a core the load generator may itself have slowed the storm. */
export const LOADGEN_BUSY_SHARE = 0.9
/** An event-loop delay p99 above this means the load generator was starved of CPU by other processes. */
export const LOADGEN_LOOP_DELAY_MS = 50

export function stormOutcome (result: StormResult): Outcome {
  const { integrity } = result
  const complete = integrity.lost === 0 && !result.timedOut
  const notes = [
    `connects started over ${Math.round(result.lastConnectStartedMs)} ms (${result.concurrencyWaits} waited for a free slot); load generator at ${Math.round(result.loadgenCpuShare * 100)}% of a core, event-loop delay p99 ${result.loadgenLoopDelayP99Ms.toFixed(0)} ms; listen-queue overflows ${result.listenOverflows ?? 'unknown'}`,
    ...(result.loadgenCpuShare >= LOADGEN_BUSY_SHARE ? ['the load generator was near one full core: it may have been the bottleneck'] : []),
    ...(result.loadgenLoopDelayP99Ms >= LOADGEN_LOOP_DELAY_MS ? ['the load generator waited for CPU (event-loop delay): the machine, not only the broker, set the pace'] : []),
    ...(result.reconnected < result.sessions ? [`${result.sessions - result.reconnected} of ${result.sessions} reconnects failed`] : []),
    ...(result.sessionsPresent < result.reconnected ? [`${result.reconnected - result.sessionsPresent} reconnects had no session`] : []),
    ...endingNotes(result)
  ]
  return {
    values: {
      deliveredMs: complete ? result.window.wallMs : null,
      lastConnackMs: result.reconnected === result.sessions ? result.lastConnackMs : null,
      peakRssMiB: result.peakRssKiB / 1024,
      cpuS: result.cpuUntilQuietS,
      perCpu: result.cpuUntilQuietS >= MIN_CPU_S ? perCpuSecond(integrity.unique, { ...result.window, brokerCpuS: result.cpuUntilQuietS }) : null
    },
    integrity: integrityCounts(integrity),
    notes,
    raw: [result]
  }
}

export const storm: Scenario = {
  id: 'reconnect-storm',
  title: `reconnect storm: persistent MQTT 5 sessions × ${STORM_MESSAGES_PER_SESSION} queued QoS 1 messages reconnect within ${STORM_SPREAD_MS} ms`,
  metrics: [
    { key: 'deliveredMs', label: 'every queued message delivered and acked', unit: 'ms', better: 'lower' },
    { key: 'lastConnackMs', label: 'last CONNACK', unit: 'ms', better: 'lower' },
    { key: 'peakRssMiB', label: 'peak broker RSS during the storm', unit: 'MiB', better: 'lower' },
    { key: 'cpuS', label: 'broker CPU for the storm, until quiet', unit: 'cpu-s', better: 'lower' },
    { key: 'perCpu', label: 'delivered msgs per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' }
  ],
  needsWebsocket: false,
  applicable: mqtt5Broker,
  run: async (context) => {
    const { settings } = context
    const result = await runStormJob({
      kind: 'storm',
      target: targetFor(context, 5),
      sessions: sized(settings, 10_000, 1_000),
      messagesPerSession: STORM_MESSAGES_PER_SESSION,
      payloadBytes: 64,
      spreadMs: STORM_SPREAD_MS,
      // Connects awaiting their CONNACK, at most: inside mosquitto's listen
      // backlog (100), so no broker is timed by SYN retries. 500 overflowed it
      // (230-436 drops a storm) on a loaded machine without making any
      // broker faster; on a quiet one, 100 round trips of ~1 ms allow 10k/s.
      concurrency: 100,
      rssIntervalMs: 20,
      timeoutMs: sized(settings, 120_000, 60_000),
      stallMs: 5_000
    }, settings.loadgen)
    return stormOutcome(result)
  }
}
