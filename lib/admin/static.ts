/**
 * The dashboard's files, served by culex itself: the page and its ES modules
 * from lib/admin/ui/, uPlot from node_modules (pinned in package.json). All
 * are read once at start, and answered with an ETag; nothing is fetched from
 * elsewhere and nothing needs a build step.
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface StaticFile {
  body: Buffer
  type: string
  etag: string
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json'
}

/** lib/admin/ui next to this module, whether it runs from lib/ (tests) or dist/lib/ (built) */
export function uiDirectory (): string {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const candidate of [join(here, 'ui'), join(here, '..', '..', '..', 'lib', 'admin', 'ui')]) {
    if (existsSync(join(candidate, 'index.html'))) return candidate
  }
  throw new Error('the dashboard files (lib/admin/ui) were not found')
}

function file (body: Buffer, name: string): StaticFile {
  return {
    body,
    type: TYPES[extname(name)] ?? 'application/octet-stream',
    etag: '"' + createHash('sha256').update(body).digest('base64url').slice(0, 22) + '"'
  }
}

/** URL path below /ui/ → file */
export function loadStaticFiles (dir = uiDirectory()): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>()
  const walk = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub === '' ? name : `${sub}/${name}`
      if (statSync(join(dir, rel)).isDirectory()) walk(rel)
      else if (TYPES[extname(name)] !== undefined) files.set(rel, file(readFileSync(join(dir, rel)), name))
    }
  }
  walk('')
  const require = createRequire(import.meta.url)
  const uplot = dirname(require.resolve('uplot/package.json'))
  files.set('vendor/uPlot.esm.js', file(readFileSync(join(uplot, 'dist', 'uPlot.esm.js')), 'uPlot.esm.js'))
  files.set('vendor/uPlot.min.css', file(readFileSync(join(uplot, 'dist', 'uPlot.min.css')), 'uPlot.min.css'))
  return files
}
