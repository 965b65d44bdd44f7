// Command-line options of `npm run bench`, parsed with node:util parseArgs.
import path from 'node:path'
import { parseArgs } from 'node:util'
import { BROKER_NAMES, DEFAULT_BROKERS, isBrokerName, type BrokerName } from '../brokers.js'
import type { ProtocolVersion } from '../loadgen/jobs.js'

export interface RatioPair {
  readonly numerator: BrokerName
  readonly denominator: BrokerName
}

export interface BenchOptions {
  readonly quick: boolean
  readonly full: boolean
  readonly repeats: number
  readonly only: readonly string[] | null
  readonly brokers: readonly BrokerName[]
  readonly protocolVersion: ProtocolVersion
  readonly culexBin: string
  readonly ratios: readonly RatioPair[]
  readonly pin: boolean
  readonly latencySamples: boolean
  readonly out: string
  readonly help: boolean
}

export const DEFAULT_RATIOS: readonly RatioPair[] = [
  { numerator: 'culex-memory', denominator: 'aedes' },
  { numerator: 'culex-memory', denominator: 'mosquitto' },
  { numerator: 'culex-level', denominator: 'culex-memory' },
  { numerator: 'culex-level', denominator: 'aedes1-level' },
  { numerator: 'culex-memory', denominator: 'culex-nometrics' },
  { numerator: 'culex-memory-dashboard', denominator: 'culex-memory' },
  { numerator: 'culex-memory', denominator: 'null-relay' },
  { numerator: 'null-relay', denominator: 'aedes1-level' },
  { numerator: 'culex-cluster', denominator: 'aedes-redis-cluster' },
  { numerator: 'culex-cluster', denominator: 'culex-memory' }
]

export const USAGE = `Usage: npm run bench -- [options]   (or: node dist/benchmarks/run.js [options])

  --quick              1 repeat and smaller counts (a couple of minutes)
  --full               also run the 1M retained-message lookup (slow)
  --repeats N          repeats per broker and scenario (default 3; --quick: 1)
  --only a,b           scenario ids or prefixes (e.g. fanin,latency-qos1,retained)
  --brokers a,b        subset of: ${BROKER_NAMES.join(', ')}
                       (default: all but null-relay, a stand-in that is not a broker: a naive relay, a
                       yardstick for latency, session-drain, idle-connections, connects-tls and reconnect-storm,
                       and culex-memory-dashboard, culex-memory
                       with the dashboard's listener on; see benchmarks/README.md). culex-cluster and
                       aedes-redis-cluster (3 nodes on a private redis-server) run the cluster-* scenarios only
  --protocol 4|5       MQTT version for the MQTT 5 scenarios (default 5; drain is always 3.1.1)
  --culex-bin PATH     culex CLI to run (default dist/bin/culex.js)
  --ratios a:b,c:d     ratio columns, numerator:denominator (default culex-memory:aedes,
                       culex-memory:mosquitto, culex-level:culex-memory, culex-level:aedes1-level,
                       culex-memory:culex-nometrics, culex-memory-dashboard:culex-memory,
                       culex-memory:null-relay, null-relay:aedes1-level, culex-cluster:aedes-redis-cluster,
                       culex-cluster:culex-memory)
  --pin                pin the broker to CPU 0 and the load generator to CPU 1 (taskset)
  --latency-samples    keep every latency sample in the JSON output
  --out PATH           JSON results file (default benchmarks/results/latest.json)
  --help
`

function list (value: string | undefined): string[] | null {
  if (value === undefined) return null
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

function brokerName (value: string): BrokerName {
  if (!isBrokerName(value)) throw new Error(`unknown broker ${value} (known: ${BROKER_NAMES.join(', ')})`)
  return value
}

export function parseOptions (argv: readonly string[], repoRoot: string): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      repeats: { type: 'string' },
      only: { type: 'string' },
      brokers: { type: 'string' },
      protocol: { type: 'string', default: '5' },
      'culex-bin': { type: 'string' },
      ratios: { type: 'string' },
      pin: { type: 'boolean', default: false },
      'latency-samples': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false }
    }
  })
  const quick = values.quick === true
  const repeats = values.repeats === undefined ? (quick ? 1 : 3) : Number(values.repeats)
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 50) throw new Error('--repeats must be an integer 1..50')
  const protocol = values.protocol === '4' ? 4 : values.protocol === '5' ? 5 : null
  if (protocol === null) throw new Error('--protocol must be 4 or 5')
  const ratios = list(values.ratios)?.map((pair): RatioPair => {
    const [numerator, denominator, extra] = pair.split(':')
    if (numerator === undefined || denominator === undefined || extra !== undefined) throw new Error(`bad ratio ${pair}, expected a:b`)
    return { numerator: brokerName(numerator), denominator: brokerName(denominator) }
  })
  return {
    quick,
    full: values.full === true,
    repeats,
    only: list(values.only),
    brokers: list(values.brokers)?.map(brokerName) ?? [...DEFAULT_BROKERS],
    protocolVersion: protocol,
    culexBin: path.resolve(values['culex-bin'] ?? path.join(repoRoot, 'dist', 'bin', 'culex.js')),
    ratios: ratios ?? DEFAULT_RATIOS,
    pin: values.pin === true,
    latencySamples: values['latency-samples'] === true,
    out: path.resolve(values.out ?? path.join(repoRoot, 'benchmarks', 'results', 'latest.json')),
    help: values.help === true
  }
}
