// Where a broker's time went during one measured window: reads a V8
// .cpuprofile (benchmarks/fixtures/profile.mjs writes one per broker run),
// keeps the samples between two monotonic timestamps (the reconnect storm's
// result gives its window as `monotonicStartUs` / `monotonicQuietUs`, the
// same clock V8 stamps samples with), and prints self time by function and
// by where the code lives, as fractions of that window.
//
//   node dist/benchmarks/profile-window.js prof/broker-123.cpuprofile [--from-us N] [--to-us N] [--top 20]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame { readonly functionName: string, readonly url: string, readonly lineNumber: number }
interface ProfileNode { readonly id: number, readonly callFrame: CallFrame }
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface Share { readonly name: string, readonly samples: number, readonly fraction: number }
export interface WindowProfile {
  readonly samples: number
  readonly spanMs: number
  /** Fraction of the window's samples that were not idle. */
  readonly busy: number
  readonly functions: readonly Share[]
  readonly places: readonly Share[]
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

/** Where a function lives: a package, Node's internals, culex's own code, or V8 itself. */
export function placeOf (frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName) || frame.url === '') return frame.functionName === '' ? '(native)' : frame.functionName
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url)
  if (pkg?.[1] !== undefined) return pkg[1]
  if (frame.url.startsWith('node:')) return 'node internals'
  const own = /\/dist\/(lib|bin)\/(.+)$/.exec(frame.url)
  if (own?.[2] !== undefined) return `culex ${own[1] ?? ''}/${own[2].split('/')[0] ?? ''}`
  return frame.url
}

function functionLabel (frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName)) return frame.functionName
  const file = frame.url.replace(/^.*\/(node_modules|dist)\//, '').replace(/^file:\/\//, '')
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName} ${file}:${frame.lineNumber + 1}`
}

function ranked (counts: Map<string, number>, total: number, top: number): Share[] {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, samples]) => ({ name, samples, fraction: total === 0 ? 0 : samples / total }))
}

/** Self time of the samples taken in [fromUs, toUs], by function and by place. */
export function profileWindow (profile: CpuProfile, fromUs: number, toUs: number, top: number): WindowProfile {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const functions = new Map<string, number>()
  const places = new Map<string, number>()
  let at = profile.startTime
  let count = 0
  let idle = 0
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (at < fromUs || at > toUs) continue
    const frame = byId.get(profile.samples[i] ?? -1)
    if (frame === undefined) continue
    count++
    first = Math.min(first, at)
    last = Math.max(last, at)
    if (frame.functionName === '(idle)') idle++
    const fn = functionLabel(frame)
    functions.set(fn, (functions.get(fn) ?? 0) + 1)
    const place = placeOf(frame)
    places.set(place, (places.get(place) ?? 0) + 1)
  }
  return {
    samples: count,
    spanMs: count === 0 ? 0 : (last - first) / 1000,
    busy: count === 0 ? 0 : (count - idle) / count,
    functions: ranked(functions, count, top),
    places: ranked(places, count, top)
  }
}

function table (title: string, shares: readonly Share[]): string {
  return [`| ${title} | share of window | samples |`, '|:--|--:|--:|',
    ...shares.map((s) => `| ${s.name.replace(/\|/g, '\\|')} | ${(s.fraction * 100).toFixed(1)}% | ${s.samples} |`)].join('\n')
}

function main (): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'from-us': { type: 'string' }, 'to-us': { type: 'string' }, top: { type: 'string', default: '20' } }
  })
  const file = positionals[0]
  if (file === undefined) throw new Error('usage: profile-window.js <file.cpuprofile> [--from-us N] [--to-us N] [--top N]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const from = values['from-us'] === undefined ? Number.NEGATIVE_INFINITY : Number(values['from-us'])
  const to = values['to-us'] === undefined ? Number.POSITIVE_INFINITY : Number(values['to-us'])
  const result = profileWindow(profile, from, to, Number(values.top))
  process.stdout.write([
    `${result.samples} samples over ${result.spanMs.toFixed(0)} ms, ${(result.busy * 100).toFixed(1)}% not idle`,
    '', table('where (self time)', result.places), '', table('function (self time)', result.functions), ''
  ].join('\n'))
}

if (process.argv[1]?.endsWith('profile-window.js') === true) main()
