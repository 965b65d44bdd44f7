// What one idle TCP connection holds in the broker's JS heap, by constructor.
// Starts the broker (benchmarks/fixtures/memory.mjs around dist/bin/culex.js,
// or --bin) on loopback with the default config and memory persistence, opens
// a warm-up set, then N silent clean-session connections (no subscriptions),
// writes a heap snapshot, opens N more, writes another, and prints the
// difference per connection of the self sizes summed by label
// (lib/heap-snapshot.ts), once per protocol version asked for.
//
//   npx tsc -p benchmarks/tsconfig.json
//   node dist/benchmarks/heap-per-connection.js --connections 2000 --protocols 5,4 [--keepalive 60] [--bin path/to/culex.js] [--keep-snapshots]
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { labelTotals, perConnection } from './lib/heap-snapshot.js'
import { openMany, openOne, type Socketish } from './lib/idle-sockets.js'
import { freePort } from './lib/net.js'

interface Options { connections: number, protocols: Array<4 | 5>, keepalive: number, bin: string | undefined, minBytes: number, keepSnapshots: boolean, timeoutMs: number }

const MAX_CONNECTIONS = 10_000
const here = path.dirname(fileURLToPath(import.meta.url))

function parse (argv: string[]): Options {
  const options: Options = { connections: 2000, protocols: [5, 4], keepalive: 60, bin: undefined, minBytes: 4, keepSnapshots: false, timeoutMs: 120_000 }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--keep-snapshots') { options.keepSnapshots = true; continue }
    const value = argv[i + 1]
    if (value === undefined) throw new Error(`option ${argv[i] ?? ''} needs a value`)
    if (argv[i] === '--connections') options.connections = Math.min(MAX_CONNECTIONS, Math.max(100, Number(value)))
    else if (argv[i] === '--protocols') options.protocols = value.split(',').map((v) => (v === '4' ? 4 : 5))
    else if (argv[i] === '--keepalive') options.keepalive = Math.max(0, Math.min(65535, Number(value)))
    else if (argv[i] === '--bin') options.bin = value
    else if (argv[i] === '--min-bytes') options.minBytes = Number(value)
    else throw new Error(`unknown option ${argv[i] ?? ''}`)
    i++
  }
  return options
}

async function measureOne (protocolVersion: 4 | 5, options: Options): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'culex-heap-'))
  const port = await freePort()
  const child = fork(path.join(here, '..', '..', 'benchmarks', 'fixtures', 'memory.mjs'), [
    '--host', '127.0.0.1', '--port', String(port), '--ws-port', '0', '--persistence', 'memory', '--data-dir', dir, '--log-level', 'warn'
  ], { execArgv: ['--expose-gc'], env: { ...process.env, ...(options.bin !== undefined ? { CULEX_MEMORY_TARGET: options.bin } : {}) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const snapshot = async (name: string): Promise<string> => await new Promise((resolve) => {
    child.once('message', (m) => { resolve((m as { snapshot: string }).snapshot) })
    child.send({ snapshot: path.join(dir, name) })
  })
  const client = { transport: 'tcp' as const, protocolVersion, keepalive: options.keepalive }
  const ports = { tcp: port }
  const sockets: Socketish[] = []
  try {
    const deadline = Date.now() + options.timeoutMs
    for (;;) {
      try { sockets.push(await openOne(client, ports, 0)); break } catch { if (Date.now() > deadline) throw new Error('broker did not start'); await sleep(100) }
    }
    sockets.push(...await openMany(client, ports, Math.max(100, Math.round(options.connections / 10)), 1, deadline))
    sockets.push(...await openMany(client, ports, options.connections, 100_000, deadline))
    await sleep(1000)
    const a = labelTotals(await snapshot('n.heapsnapshot'))
    sockets.push(...await openMany(client, ports, options.connections, 200_000, deadline))
    await sleep(1000)
    const b = labelTotals(await snapshot('2n.heapsnapshot'))
    const rows = perConnection(a, b, options.connections, options.minBytes)
    const native = rows.reduce((sum, r) => sum + (r.label.startsWith('[native]') ? r.bytes : 0), 0)
    const js = rows.reduce((sum, r) => sum + r.bytes, 0) - native
    console.log(`\nMQTT ${protocolVersion === 5 ? '5' : '3.1.1'}, keepalive ${options.keepalive} s, ${options.connections} → ${2 * options.connections} connections: ${js.toFixed(0)} B of JS heap and ${native.toFixed(0)} B of Node's C++ objects ([native]) per connection\n`)
    console.log('| label (constructor, or kind ← first holder.edge) | objects per conn | bytes per conn |')
    console.log('|:--|--:|--:|')
    for (const r of rows) console.log(`| ${r.label.replace(/\|/g, '\\|')} | ${r.count.toFixed(2)} | ${r.bytes.toFixed(0)} |`)
  } finally {
    for (const s of sockets) s.destroy()
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    if (options.keepSnapshots) console.log(`\nsnapshots kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
}

const options = parse(process.argv.slice(2))
for (const protocolVersion of options.protocols) await measureOne(protocolVersion, options)
