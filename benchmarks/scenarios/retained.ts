// Retained lookup: store N retained messages (100k; 1M as a separate
// scenario with --full), then for three filters — one topic, `ret/+/x`
// (0.1% of topics) and `ret/#` (all) — time a fresh subscription from
// SUBSCRIBE to its last retained message, in wall ms and broker CPU ms
// (the two small lookups averaged over 20 subscriptions each).
import { runRetainedJob } from '../lib/loadgen-client.js'
import { retainedLookups } from '../loadgen/retained-topics.js'
import { mqtt5Broker, perCpuSecond } from './common.js'
import type { MetricDef, Scenario } from './types.js'
import { targetFor } from './types.js'

const LOOKUP_LABELS = ['one topic', 'ret/+/x (0.1%)', 'ret/# (all)'] as const

function lookupMetrics (): MetricDef[] {
  return LOOKUP_LABELS.flatMap((label, i) => [
    { key: `lookup${i}Ms`, label: `${label}: SUBSCRIBE to last retained`, unit: 'ms', better: 'lower' as const },
    { key: `lookup${i}CpuMs`, label: `${label}: broker CPU per lookup`, unit: 'cpu-ms', better: 'lower' as const }
  ])
}

function formatCount (count: number): string {
  return count >= 1_000_000 ? `${count / 1_000_000}M` : `${count / 1000}k`
}

export function retained (normal: number, quick: number): Scenario {
  return {
    id: `retained-${formatCount(normal)}`,
    title: `retained lookup: ${formatCount(normal)} retained messages (quick: ${formatCount(quick)})`,
    metrics: [
      { key: 'storePerCpu', label: 'retained stores per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' },
      ...lookupMetrics()
    ],
    needsWebsocket: false,
    applicable: mqtt5Broker,
    run: async (context) => {
      const count = context.settings.quick ? quick : normal
      const lookups = retainedLookups(count)
      const result = await runRetainedJob({
        kind: 'retained',
        target: targetFor(context),
        count,
        payloadBytes: 32,
        lookups,
        timeoutMs: Math.max(60_000, count / 2),
        stallMs: 5_000
      }, context.settings.loadgen)
      const values: Record<string, number | null> = {
        storePerCpu: result.storeTimedOut ? null : perCpuSecond(result.stored, result.store)
      }
      const notes: string[] = []
      if (result.storeTimedOut) notes.push(`store hit the time bound after ${result.stored} messages`)
      let lost = 0
      for (const [i, lookup] of result.lookups.entries()) {
        const complete = lookup.completedRounds === lookup.rounds
        // Averages over the rounds; see RetainedLookup.rounds.
        values[`lookup${i}Ms`] = complete ? lookup.window.wallMs / lookup.rounds : null
        values[`lookup${i}CpuMs`] = complete ? (lookup.window.brokerCpuS * 1000) / lookup.rounds : null
        if (!complete) {
          notes.push(`${lookup.filter}: ${lookup.completedRounds}/${lookup.rounds} lookups complete, ${lookup.received} of ${lookup.expected * lookup.rounds} retained messages`)
        }
        if (lookup.window.brokerCpuS < 0.05) notes.push(`${lookup.filter}: broker CPU below the 10 ms tick resolution`)
        lost += Math.max(0, lookup.expected * lookup.rounds - lookup.received)
      }
      return { values, integrity: { lost, duplicated: 0, reordered: 0, refused: 0 }, notes, raw: [result] }
    }
  }
}
