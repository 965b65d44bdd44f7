// Figures shared by several scenarios. Every rate is given per broker
// CPU-second (the broker's utime+stime delta over the measured window) and
// per wall second; the CPU figure is the one that survives a noisy machine.
import type { BrokerRunner } from '../brokers.js'
import type { Ending, FlowResult, Integrity, WindowMeasure } from '../loadgen/jobs.js'
import { perSecond } from '../lib/stats.js'
import type { IntegrityCounts, ScenarioSettings } from './types.js'

/** Below this much broker CPU the 10 ms tick makes a per-CPU rate meaningless. */
export const MIN_CPU_S = 0.05
export const MIN_WALL_S = 0.001

export function perCpuSecond (count: number, window: WindowMeasure): number | null {
  return perSecond(count, window.brokerCpuS, MIN_CPU_S)
}

export function perWallSecond (count: number, window: WindowMeasure): number | null {
  return perSecond(count, window.wallMs / 1000, MIN_WALL_S)
}

export function integrityCounts (integrity: Integrity): IntegrityCounts {
  return { lost: integrity.lost, duplicated: integrity.duplicated, reordered: integrity.reordered, refused: integrity.refused }
}

export function addIntegrity (a: IntegrityCounts, b: IntegrityCounts): IntegrityCounts {
  return {
    lost: a.lost + b.lost,
    duplicated: a.duplicated + b.duplicated,
    reordered: a.reordered + b.reordered,
    refused: a.refused + b.refused
  }
}

export function endingNotes (ending: Ending, label = ''): string[] {
  const prefix = label === '' ? '' : `${label}: `
  const notes: string[] = []
  if (ending.timedOut) notes.push(`${prefix}hit the time bound`)
  if (ending.stalled) notes.push(`${prefix}deliveries stalled`)
  for (const error of ending.errors) notes.push(`${prefix}${error}`)
  return notes
}

export function cpuNote (window: WindowMeasure, label = ''): string[] {
  return window.brokerCpuS < MIN_CPU_S
    ? [`${label === '' ? '' : `${label}: `}broker CPU ${window.brokerCpuS.toFixed(2)} s too small to rate`]
    : []
}

/** Everything a reader needs to know about how a flow run ended. */
export function flowNotes (result: FlowResult, label = ''): string[] {
  const prefix = label === '' ? '' : `${label}: `
  const refusals = Object.entries(result.nackReasons).map(([code, count]) => `${count}× ${code}`)
  return [
    ...(refusals.length > 0 ? [`${prefix}broker refused publishes: ${refusals.join(', ')}`] : []),
    ...endingNotes(result, label),
    ...cpuNote(result.window, label)
  ]
}

/** Throughput metrics of a flow run under the given key prefix. */
export function flowRates (result: FlowResult, prefix = ''): Record<string, number | null> {
  const delivered = result.integrity.unique
  return {
    [`${prefix}perCpu`]: perCpuSecond(delivered, result.window),
    [`${prefix}perWall`]: perWallSecond(delivered, result.window)
  }
}

/** Everything but aedes1-level: that broker exists only for the drain comparison. */
export function mqtt5Broker (runner: BrokerRunner, _settings: ScenarioSettings): string | null {
  return runner.name === 'aedes1-level' ? 'only in the drain comparison (MQTT 3.1.1 broker)' : null
}

export function sized (settings: ScenarioSettings, normal: number, quick: number): number {
  return settings.quick ? quick : normal
}

/** Warm-up size for a flow of `messages` per publisher: a fifth of it, at least 100. */
export function warmupFor (messages: number): number {
  return Math.max(100, Math.round(messages / 5))
}
