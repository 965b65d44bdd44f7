// Reads a V8 heap snapshot (.heapsnapshot, the JSON that v8.writeHeapSnapshot
// writes) into self sizes summed per label, so that two snapshots taken at N
// and 2N idle connections can be subtracted: what one connection holds, by
// constructor. A label is the constructor's name for a named object; for an
// anonymous one (a plain Object, an array, a closure's context, a string...)
// it is the kind followed by the object that first holds it and the edge's
// name, since "(array)" alone says nothing about who owns it.
import { readFileSync } from 'node:fs'

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]], edge_fields: string[], edge_types: [string[], ...unknown[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

export interface LabelTotal { count: number, bytes: number }

const GENERIC_OBJECTS = new Set(['Object', 'Array', 'system / Context', 'Set', 'Map'])

export function labelTotals (file: string): Map<string, LabelTotal> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as SnapshotJson
  const { meta } = snap.snapshot
  const nodeWidth = meta.node_fields.length
  const edgeWidth = meta.edge_fields.length
  const nType = meta.node_fields.indexOf('type')
  const nName = meta.node_fields.indexOf('name')
  const nSize = meta.node_fields.indexOf('self_size')
  const nEdges = meta.node_fields.indexOf('edge_count')
  const eType = meta.edge_fields.indexOf('type')
  const eName = meta.edge_fields.indexOf('name_or_index')
  const eTo = meta.edge_fields.indexOf('to_node')
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const { nodes, edges, strings } = snap
  const count = nodes.length / nodeWidth

  const kindOf = (node: number): string => nodeTypes[nodes[node * nodeWidth + nType] as number] ?? '?'
  const nameOf = (node: number): string => strings[nodes[node * nodeWidth + nName] as number] ?? '?'
  const ownLabel = (node: number): string => {
    const kind = kindOf(node)
    if (kind === 'object') return nameOf(node)
    // Node's C++ objects (the embedder graph): outside the JS heap
    if (kind === 'native' || kind === 'synthetic') return `[native] ${nameOf(node)}`
    if (kind === 'closure') return `(closure ${nameOf(node) || 'anonymous'})`
    if (kind === 'hidden' || kind === 'array' || kind === 'code') return `(${kind} ${nameOf(node).slice(0, 40)})`
    return `(${kind})`
  }

  // the first strong retainer of each node, and the edge's name
  const owner = new Int32Array(count).fill(-1)
  const ownerEdge: string[] = new Array<string>(count)
  let edge = 0
  for (let from = 0; from < count; from++) {
    const edgeCount = nodes[from * nodeWidth + nEdges] as number
    for (let i = 0; i < edgeCount; i++, edge += edgeWidth) {
      const type = edgeTypes[edges[edge + eType] as number]
      if (type === 'weak' || type === 'shortcut') continue
      const to = (edges[edge + eTo] as number) / nodeWidth
      if (owner[to] !== -1) continue
      owner[to] = from
      const nameOrIndex = edges[edge + eName] as number
      // element indexes and keys with digits in them (client ids) name one entry, not a kind of entry
      const name = type === 'element' || type === 'hidden' ? '[]' : (strings[nameOrIndex] ?? '?')
      ownerEdge[to] = /\d{3}/.test(name) ? '<key>' : name
    }
  }

  const totals = new Map<string, LabelTotal>()
  for (let node = 0; node < count; node++) {
    const own = ownLabel(node)
    const generic = own.startsWith('(') || GENERIC_OBJECTS.has(own) || own === '[native] system / JSArrayBufferData'
    const by = owner[node] as number
    const label = generic && by !== -1 ? `${own} ← ${ownLabel(by)}.${ownerEdge[node] ?? ''}` : own
    const total = totals.get(label) ?? { count: 0, bytes: 0 }
    total.count++
    total.bytes += nodes[node * nodeWidth + nSize] as number
    totals.set(label, total)
  }
  return totals
}

/** Per-connection growth from `a` to `b`, largest first, rows under `minBytes` folded into one. */
export function perConnection (a: Map<string, LabelTotal>, b: Map<string, LabelTotal>, connections: number, minBytes: number): Array<{ label: string, count: number, bytes: number }> {
  const rows: Array<{ label: string, count: number, bytes: number }> = []
  let rest = { count: 0, bytes: 0 }
  for (const [label, after] of b) {
    const before = a.get(label) ?? { count: 0, bytes: 0 }
    const row = { label, count: (after.count - before.count) / connections, bytes: (after.bytes - before.bytes) / connections }
    if (Math.abs(row.bytes) >= minBytes) rows.push(row)
    else rest = { count: rest.count + row.count, bytes: rest.bytes + row.bytes }
  }
  for (const [label, before] of a) {
    if (b.has(label)) continue
    rest = { count: rest.count - before.count / connections, bytes: rest.bytes - before.bytes / connections }
  }
  rows.sort((x, y) => y.bytes - x.bytes)
  rows.push({ label: `(rows under ${minBytes} B each)`, ...rest })
  return rows
}
