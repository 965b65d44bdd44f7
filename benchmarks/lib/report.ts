// Markdown rendering of a run: a table of medians with ratio columns, then
// the delivery-integrity table and what was skipped.
import type { BrokerName } from '../brokers.js'
import type { RatioPair } from './args.js'
import type { IntegrityRow, SkipRecord, SummaryRow } from './summary.js'

export interface ReportInput {
  readonly heading: string
  readonly context: readonly string[]
  readonly brokers: readonly BrokerName[]
  readonly ratios: readonly RatioPair[]
  readonly rows: readonly SummaryRow[]
  readonly integrity: readonly IntegrityRow[]
  readonly skips: readonly SkipRecord[]
  readonly unavailable: ReadonlyArray<{ readonly broker: BrokerName, readonly reason: string }>
}

export function formatNumber (value: number): string {
  const abs = Math.abs(value)
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 1 : 2)}M`
  if (abs >= 1e4) return `${(value / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

function cell (row: SummaryRow, broker: BrokerName): string {
  const figure = row.byBroker[broker]
  if (figure === undefined) return ''
  if (figure.median === null) return 'n/a'
  const spread = figure.spread === null ? '' : ` ±${Math.round((figure.spread * 100) / 2)}%`
  return `${formatNumber(figure.median)}${spread}`
}

function ratio (row: SummaryRow, pair: RatioPair): string {
  const a = row.byBroker[pair.numerator]?.median
  const b = row.byBroker[pair.denominator]?.median
  if (a === undefined || b === undefined || a === null || b === null || b === 0) return ''
  return `${(a / b).toFixed(2)}×`
}

function hasRatio (rows: readonly SummaryRow[], pair: RatioPair): boolean {
  return rows.some((row) => ratio(row, pair) !== '')
}

function table (header: readonly string[], align: readonly string[], body: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`
  return [line(header), `|${align.join('|')}|`, ...body.map(line)].join('\n')
}

/** One line per broker and reason, listing the scenarios it skipped. */
function groupSkips (skips: readonly SkipRecord[]): string[] {
  const groups = new Map<string, string[]>()
  for (const skip of skips) {
    const key = `${skip.broker}: ${skip.reason}`
    groups.set(key, [...(groups.get(key) ?? []), skip.scenario])
  }
  return [...groups].map(([key, scenarios]) => `- ${key} (${scenarios.join(', ')})`)
}

export function markdownReport (input: ReportInput): string {
  const ratios = input.ratios.filter((pair) => hasRatio(input.rows, pair))
  const header = ['scenario', 'metric', 'unit', ...input.brokers, ...ratios.map((p) => `${p.numerator} ÷ ${p.denominator}`)]
  const align = [':--', ':--', ':--', ...input.brokers.map(() => '--:'), ...ratios.map(() => '--:')]
  const body = input.rows
    .filter((row) => input.brokers.some((b) => row.byBroker[b] !== undefined))
    .map((row) => [
      row.scenario,
      `${row.metric.label} ${row.metric.better === 'higher' ? '↑' : '↓'}`,
      row.metric.unit,
      ...input.brokers.map((b) => cell(row, b)),
      ...ratios.map((p) => ratio(row, p))
    ])

  const integrity = table(
    ['scenario', 'broker', 'runs', 'lost', 'duplicated', 'reordered', 'refused', 'notes'],
    [':--', ':--', '--:', '--:', '--:', '--:', '--:', ':--'],
    input.integrity.map((r) => [
      r.scenario,
      r.broker,
      r.failedRuns > 0 ? `${r.runs} (${r.failedRuns} failed)` : String(r.runs),
      String(r.lost),
      String(r.duplicated),
      String(r.reordered),
      String(r.refused),
      r.notes.join('; ')
    ])
  )

  const skipped = [
    ...input.unavailable.map((u) => `- ${u.broker}: ${u.reason}`),
    ...groupSkips(input.skips)
  ]

  return [
    `## ${input.heading}`,
    '',
    ...input.context.map((line) => `- ${line}`),
    '',
    table(header, align, body),
    '',
    'Cells are medians over repeats (± half the max–min spread, as % of the median). ' +
      'Ratios are median A ÷ median B: with ↑ metrics a ratio above 1 favours A, with ↓ metrics a ratio below 1 does.',
    '',
    '### Delivery integrity (summed over repeats)',
    '',
    'lost = expected deliveries that never arrived; refused = publishes the broker rejected with a reason code ≥ 0x80 ' +
      '(the publisher was told, so they are not counted as lost).',
    '',
    integrity,
    ...(skipped.length > 0 ? ['', '### Skipped', '', ...skipped] : []),
    ''
  ].join('\n')
}
