// Turns per-repeat results into medians, spreads and integrity totals.
import type { BrokerName } from '../brokers.js'
import type { MetricDef, Outcome, Scenario } from '../scenarios/types.js'
import { median, spread } from './stats.js'

/** One scenario × broker × repeat. */
export interface CellRecord {
  readonly scenario: string
  readonly broker: BrokerName
  readonly repeat: number
  readonly elapsedMs: number
  readonly outcome: Outcome | null
  readonly error: string | null
}

export interface SkipRecord {
  readonly scenario: string
  readonly broker: BrokerName
  readonly reason: string
}

export interface BrokerFigure {
  readonly values: readonly number[]
  readonly median: number | null
  /** (max − min) / median across repeats. */
  readonly spread: number | null
}

export interface SummaryRow {
  readonly scenario: string
  readonly metric: MetricDef
  readonly byBroker: Partial<Record<BrokerName, BrokerFigure>>
}

export interface IntegrityRow {
  readonly scenario: string
  readonly broker: BrokerName
  readonly runs: number
  readonly failedRuns: number
  readonly lost: number
  readonly duplicated: number
  readonly reordered: number
  readonly refused: number
  readonly notes: readonly string[]
}

export function summarize (scenarios: readonly Scenario[], brokers: readonly BrokerName[], cells: readonly CellRecord[]): SummaryRow[] {
  const rows: SummaryRow[] = []
  for (const scenario of scenarios) {
    for (const metric of scenario.metrics) {
      const byBroker: Partial<Record<BrokerName, BrokerFigure>> = {}
      for (const broker of brokers) {
        const mine = cells.filter((c) => c.scenario === scenario.id && c.broker === broker)
        if (mine.length === 0) continue
        const values: number[] = []
        for (const cell of mine) {
          const value = cell.outcome?.values[metric.key]
          if (typeof value === 'number' && Number.isFinite(value)) values.push(value)
        }
        byBroker[broker] = { values, median: median(values), spread: spread(values) }
      }
      rows.push({ scenario: scenario.id, metric, byBroker })
    }
  }
  return rows
}

export function integrityRows (scenarios: readonly Scenario[], brokers: readonly BrokerName[], cells: readonly CellRecord[]): IntegrityRow[] {
  const rows: IntegrityRow[] = []
  for (const scenario of scenarios) {
    for (const broker of brokers) {
      const mine = cells.filter((c) => c.scenario === scenario.id && c.broker === broker)
      if (mine.length === 0) continue
      let lost = 0
      let duplicated = 0
      let reordered = 0
      let refused = 0
      const notes = new Set<string>()
      for (const cell of mine) {
        if (cell.error !== null) notes.add(`error: ${firstLine(cell.error)}`)
        if (cell.outcome === null) continue
        lost += cell.outcome.integrity?.lost ?? 0
        duplicated += cell.outcome.integrity?.duplicated ?? 0
        reordered += cell.outcome.integrity?.reordered ?? 0
        refused += cell.outcome.integrity?.refused ?? 0
        for (const note of cell.outcome.notes) notes.add(note)
      }
      rows.push({
        scenario: scenario.id,
        broker,
        runs: mine.length,
        failedRuns: mine.filter((c) => c.error !== null).length,
        lost,
        duplicated,
        reordered,
        refused,
        notes: [...notes]
      })
    }
  }
  return rows
}

function firstLine (text: string): string {
  return text.split('\n')[0] ?? text
}
