/**
 * The layer rule of lib/ (README, "Architecture"): a module may import modules
 * of its own layer or of a lower one, never a higher one, and no import cycle
 * may form. Today's exceptions are listed in ALLOWED with the reason; each is
 * to be removed by the architecture work, and an entry that no longer matches
 * an import fails the test so the list can only shrink.
 */
import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Lowest first. A path ending in '/' names a folder and everything under it. */
export const LAYERS: ReadonlyArray<{ name: string, members: readonly string[] }> = [
  {
    name: 'wire facts',
    members: [
      'lib/version.ts', 'lib/logging.ts', 'lib/repeated-log.ts', 'lib/errors.ts',
      'lib/protocol/reason-codes.ts', 'lib/protocol/topic.ts', 'lib/protocol/utf8.ts',
      'lib/protocol/frame.ts', 'lib/protocol/codec.ts', 'lib/protocol/decode.ts',
      'lib/protocol/packet-id-table.ts', 'lib/protocol/auth.ts', 'lib/protocol/property-rules.ts', 'lib/protocol/transport-kind.ts',
      'lib/protocol/timer-wheel.ts',
      'lib/protocol/inbound/', 'lib/protocol/outbound/'
    ]
  },
  { name: 'aedes quarantine', members: ['lib/aedes-internals.ts'] },
  { name: 'services', members: ['lib/auth/', 'lib/persistence/', 'lib/config/', 'lib/cluster/', 'lib/store.ts', 'lib/shared/strategy-names.ts'] },
  { name: 'shared', members: ['lib/shared/'] },
  { name: 'gateway', members: ['lib/protocol/', 'lib/observer.ts'] },
  { name: 'broker', members: ['lib/broker.ts', 'lib/broker/'] },
  { name: 'edge', members: ['lib/transports/', 'lib/metrics/', 'lib/admin/'] },
  { name: 'entry', members: ['lib/server.ts', 'lib/index.ts'] }
]

/** Imports forbidden although the layers would allow them. */
export const FORBIDDEN: ReadonlyArray<{ from: string, to: string, why: string }> = [
  { from: 'lib/metrics/', to: 'lib/protocol/connection.ts', why: 'metrics see connections through the observer interface only' }
]

/** Today's violations; the architecture issue empties this list. */
export const ALLOWED: ReadonlyArray<{ from: string, to: string, why: string }> = [
]

type Edge = { from: string, to: string }

/** The most specific member (longest path) decides, so 'lib/protocol/topic.ts' beats 'lib/protocol/'. */
export function layerOf (file: string): number {
  let best = -1
  let bestLength = -1
  LAYERS.forEach((layer, index) => {
    for (const member of layer.members) {
      const hit = member.endsWith('/') ? file.startsWith(member) : file === member
      if (hit && member.length > bestLength) { best = index; bestLength = member.length }
    }
  })
  return best
}

const matches = (pattern: string, file: string): boolean => pattern.endsWith('/') ? file.startsWith(pattern) : file === pattern

/** Every way an edge set breaks the rule, as readable lines. */
export function violations (files: readonly string[], edges: readonly Edge[], allowed: readonly Edge[] = ALLOWED): string[] {
  const problems: string[] = []
  const isAllowed = (e: Edge): boolean => allowed.some(a => a.from === e.from && a.to === e.to)
  for (const file of files) {
    if (layerOf(file) < 0) problems.push(`${file} belongs to no layer: add it to LAYERS`)
  }
  for (const e of edges) {
    if (isAllowed(e)) continue
    const from = layerOf(e.from)
    const to = layerOf(e.to)
    if (from >= 0 && to > from) {
      problems.push(`${e.from} (${LAYERS[from]?.name}) imports ${e.to} (${LAYERS[to]?.name}), a higher layer`)
    }
    for (const f of FORBIDDEN) {
      if (matches(f.from, e.from) && matches(f.to, e.to)) problems.push(`${e.from} imports ${e.to}: ${f.why}`)
    }
  }
  for (const cycle of cycles(edges.filter(e => !isAllowed(e)))) problems.push(`import cycle: ${cycle.join(' -> ')}`)
  return problems
}

function cycles (edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>()
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to])
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (node: string): void => {
    state.set(node, 'open')
    stack.push(node)
    for (const to of next.get(node) ?? []) {
      if (state.get(to) === 'open') found.push([...stack.slice(stack.indexOf(to)), to])
      else if (state.get(to) === undefined) visit(to)
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of next.keys()) if (state.get(node) === undefined) visit(node)
  return found
}

function sources (dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap(name => {
    const path = `${dir}/${name}`
    if (statSync(join(root, path)).isDirectory()) return sources(path)
    return path.endsWith('.ts') ? [path] : []
  })
}

const IMPORT = /(?:\bfrom\s+|\bimport\s*\(?\s*)'(\.{1,2}\/[^']+)'/g

function importsOf (file: string): Edge[] {
  const text = readFileSync(join(root, file), 'utf8')
  return [...text.matchAll(IMPORT)].map(m => ({
    from: file,
    to: relative(root, resolve(root, dirname(file), m[1] as string)).replace(/\.js$/, '.ts')
  }))
}

const files = sources('lib')
const edges = files.flatMap(importsOf)

t.test('lib/ imports point down the layers, with no cycle', async (t) => {
  t.same(violations(files, edges), [], 'no import breaks the layer rule')
})

t.test('every allowed exception is still an import (the list only shrinks)', async (t) => {
  for (const a of ALLOWED) t.ok(edges.some(e => e.from === a.from && e.to === a.to), `${a.from} -> ${a.to} exists`)
})

t.test('the checker catches a wrong import, a forbidden one, a cycle and an unplaced file', async (t) => {
  const reports = (problems: string[], pattern: RegExp): boolean => problems.some(p => pattern.test(p))
  const wrong = { from: 'lib/protocol/topic.ts', to: 'lib/broker.ts' }
  t.ok(reports(violations(files, [...edges, wrong]), /^lib\/protocol\/topic\.ts \(wire facts\) imports lib\/broker\.ts \(broker\), a higher layer$/), 'an import up the layers')
  const forbidden = { from: 'lib/metrics/sys.ts', to: 'lib/protocol/connection.ts' }
  t.ok(reports(violations(files, [...edges, forbidden]), /metrics see connections through the observer/), 'a forbidden import')
  const loop = [{ from: 'lib/auth/acl.ts', to: 'lib/auth/policy.ts' }, { from: 'lib/auth/policy.ts', to: 'lib/auth/acl.ts' }]
  t.ok(reports(violations(files, loop), /^import cycle: lib\/auth\/(acl|policy)\.ts -> /), 'a cycle')
  t.ok(reports(violations([...files, 'lib/nowhere.ts'], edges), /^lib\/nowhere\.ts belongs to no layer/), 'an unplaced file')
  t.ok(violations(files, edges, []).length >= ALLOWED.length, 'without the allow-list, today\'s exceptions are reported')
})
