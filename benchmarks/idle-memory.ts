// Broker memory per idle connection, for each transport: TCP, TLS and
// WebSocket. Starts the broker (benchmarks/fixtures/memory.mjs around
// dist/bin/culex.js, or --bin) on loopback with all three listeners, opens a
// warm-up tenth, then N silent MQTT 5 connections (CONNECT, CONNACK) of one
// transport, and reports the growth per connection of RSS and, after a full
// GC, of the JS heap and of memory outside it (Buffers, TLS state). One
// broker per transport; every socket is closed and the broker stopped after.
//
//   npx tsc -p benchmarks/tsconfig.json
//   node dist/benchmarks/idle-memory.js --connections 5000 --transports tcp,tls,ws [--bin path/to/culex.js]
import { fork, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { openMany, openOne, type Socketish, type Transport } from './lib/idle-sockets.js'
import { freePort } from './lib/net.js'
import { rssKiB } from './lib/procfs.js'

interface Memory { rss: number, heapTotal: number, heapUsed: number, external: number, arrayBuffers: number }
interface Options { connections: number, transports: Transport[], bin: string | undefined, timeoutMs: number }

const MAX_CONNECTIONS = 20_000
const here = path.dirname(fileURLToPath(import.meta.url))

function parse (argv: string[]): Options {
  const options: Options = { connections: 5000, transports: ['tcp', 'tls', 'ws'], bin: undefined, timeoutMs: 120_000 }
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1]
    if (argv[i] === '--connections' && value !== undefined) { options.connections = Math.min(MAX_CONNECTIONS, Math.max(100, Number(value))); i++ } else if (argv[i] === '--transports' && value !== undefined) { options.transports = value.split(',') as Transport[]; i++ } else if (argv[i] === '--bin' && value !== undefined) { options.bin = value; i++ } else throw new Error(`unknown option ${argv[i] ?? ''}`)
  }
  return options
}

function selfSignedCert (dir: string): { key: string, cert: string } {
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
  return { key, cert }
}

async function measureOne (transport: Transport, options: Options, cert: { key: string, cert: string }): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'culex-idle-memory-'))
  const ports = { tcp: await freePort(), tls: await freePort(), ws: await freePort() }
  const child = fork(path.join(here, '..', '..', 'benchmarks', 'fixtures', 'memory.mjs'), [
    '--host', '127.0.0.1', '--port', String(ports.tcp), '--ws-port', String(ports.ws), '--tls-port', String(ports.tls), '--wss-port', '0',
    '--tls-key', cert.key, '--tls-cert', cert.cert, '--persistence', 'memory', '--data-dir', dataDir, '--log-level', 'warn'
  ], { execArgv: ['--expose-gc'], env: { ...process.env, ...(options.bin !== undefined ? { CULEX_MEMORY_TARGET: options.bin } : {}) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const measure = async (): Promise<Memory> => await new Promise((resolve) => {
    child.once('message', (m) => { resolve((m as { memory: Memory }).memory) })
    child.send('measure')
  })
  const sockets: Socketish[] = []
  try {
    const deadline = Date.now() + options.timeoutMs
    for (;;) {
      try { sockets.push(await openOne({ transport: 'tcp', protocolVersion: 5, keepalive: 0 }, ports, 0)); break } catch { if (Date.now() > deadline) throw new Error('broker did not start'); await sleep(100) }
    }
    sockets.pop()?.destroy()
    const warmup = Math.max(100, Math.round(options.connections / 10))
    sockets.push(...await openMany({ transport, protocolVersion: 5, keepalive: 0 }, ports, warmup, 1, deadline))
    await sleep(1000)
    const before = await measure()
    const rssBefore = rssKiB(child.pid as number)
    sockets.push(...await openMany({ transport, protocolVersion: 5, keepalive: 0 }, ports, options.connections, warmup + 1, deadline))
    await sleep(2000)
    const after = await measure()
    const rssAfter = rssKiB(child.pid as number)
    const per = (a: number, b: number): string => ((b - a) / options.connections / 1024).toFixed(2)
    console.log(`| ${transport} | ${options.connections} | ${((rssAfter - rssBefore) / options.connections).toFixed(2)} | ${per(before.heapTotal, after.heapTotal)} | ${per(before.heapUsed, after.heapUsed)} | ${per(before.external, after.external)} | ${per(before.arrayBuffers, after.arrayBuffers)} |`)
  } finally {
    for (const s of sockets) s.destroy()
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const options = parse(process.argv.slice(2))
const certDir = mkdtempSync(path.join(tmpdir(), 'culex-idle-cert-'))
try {
  const cert = selfSignedCert(certDir)
  console.log('| transport | connections | RSS KiB/conn | JS heap reserved KiB/conn | JS heap used KiB/conn (after GC) | external KiB/conn | of which ArrayBuffers KiB/conn |')
  console.log('|:--|--:|--:|--:|--:|--:|--:|')
  for (const transport of options.transports) await measureOne(transport, options, cert)
} finally {
  rmSync(certDir, { recursive: true, force: true })
}
