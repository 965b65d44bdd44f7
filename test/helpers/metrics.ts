/** Scraping /metrics and reading the Prometheus text format, for the metrics tests. */
import type { CulexServer } from '../../lib/server.js'

export function httpBase (server: CulexServer): string {
  if (!server.ws) throw new Error('no WebSocket/HTTP listener')
  return `http://127.0.0.1:${server.ws.address().port}`
}

/** One scrape: every sample, keyed by name and its labels sorted, e.g. `culex_x{a="1",b="2"}`. */
export class Scrape {
  readonly samples = new Map<string, number>()
  readonly families = new Set<string>()

  constructor (readonly text: string) {
    for (const line of text.split('\n')) {
      if (line.startsWith('# TYPE ')) {
        this.families.add(line.split(' ')[2] as string)
        continue
      }
      if (line === '' || line.startsWith('#')) continue
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line)
      if (!m) throw new Error(`not a Prometheus sample line: ${line}`)
      this.samples.set(key(m[1] as string, parseLabels(m[3] ?? '')), Number(m[4]))
    }
  }

  /** the sample's value; undefined when the sample is absent */
  get (name: string, labels: Record<string, string> = {}): number | undefined {
    return this.samples.get(key(name, labels))
  }

  /** the sample's value, 0 when absent (a counter not yet incremented) */
  count (name: string, labels: Record<string, string> = {}): number {
    return this.get(name, labels) ?? 0
  }

  /** names of the samples present, any labels */
  has (name: string): boolean {
    for (const k of this.samples.keys()) if (k === name || k.startsWith(name + '{')) return true
    return false
  }
}

function parseLabels (s: string): Record<string, string> {
  const out: Record<string, string> = {}
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, '$1')
  return out
}

function key (name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels).sort().map(k => `${k}="${labels[k] as string}"`)
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`
}

export async function scrape (server: CulexServer): Promise<Scrape> {
  const res = await fetch(`${httpBase(server)}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return new Scrape(await res.text())
}

/** Bytes of an MQTT packet on the wire given its Remaining Length (spec 2.1.4: 1 to 4 length bytes). */
export function wireLength (remainingLength: number): number {
  let lengthBytes = 1
  for (let n = remainingLength; n > 127; n = Math.floor(n / 128)) lengthBytes++
  return 1 + lengthBytes + remainingLength
}
