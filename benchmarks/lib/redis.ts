// Redis for the cluster scenarios: a private redis-server per run (loopback,
// ephemeral port, temporary --dir, no RDB snapshots, AOF as the scenario
// states, stopped by PID), and its command counts from INFO commandstats,
// read over a raw socket so neither the harness nor the load generator needs
// a Redis client.
import { execFileSync } from 'node:child_process'
import net from 'node:net'
import { launch, removeDir, tempDir, type Launched, type LaunchOptions } from './launch.js'
import { assertLoopback, freePort, LOOPBACK } from './net.js'

/** `no`: no AOF; otherwise `--appendonly yes --appendfsync <this>`. */
export type RedisAof = 'no' | 'everysec' | 'always'

export function redisServerArgs (port: number, dir: string, aof: RedisAof): string[] {
  return [
    '--port', String(port),
    '--bind', LOOPBACK,
    '--save', '',
    '--dir', dir,
    '--daemonize', 'no',
    '--loglevel', 'warning',
    ...(aof === 'no' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', aof])
  ]
}

/** "7.0.15" from `redis-server --version`, or "?" */
export function redisServerVersion (): string {
  try {
    return /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5000 }))?.[1] ?? '?'
  } catch {
    return '?'
  }
}

export async function startRedisServer (aof: RedisAof, options: LaunchOptions): Promise<Launched> {
  const port = await freePort()
  const dir = await tempDir('redis')
  return await launch({ name: 'redis-server', command: 'redis-server', args: redisServerArgs(port, dir, aof), port, wsPort: null, cleanup: removeDir(dir) }, options)
}

/** Command name → calls, from the text of `INFO commandstats`. */
export function parseCommandstats (info: string): Record<string, number> {
  const calls: Record<string, number> = {}
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (match?.[1] !== undefined && match[2] !== undefined) calls[match[1]] = Number(match[2])
  }
  return calls
}

/**
 * Calls made between two readings, commands with none left out. `ignore`
 * drops the readings' own traffic (INFO, and the connection's HELLO/CLIENT
 * if any) so an idle Redis reads as zero.
 */
export function commandDelta (before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, ignore: readonly string[] = ['info']): Record<string, number> {
  const delta: Record<string, number> = {}
  for (const [command, calls] of Object.entries(after)) {
    if (ignore.includes(command)) continue
    const made = calls - (before[command] ?? 0)
    if (made > 0) delta[command] = made
  }
  return delta
}

export function totalCalls (counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((sum, calls) => sum + calls, 0)
}

/** "3× publish, 2× set": the busiest commands first, at most `max` of them. */
export function describeCommands (counts: Readonly<Record<string, number>>, max = 4): string {
  const sorted = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  const shown = sorted.slice(0, max).map(([command, calls]) => `${calls}× ${command}`)
  return sorted.length > max ? `${shown.join(', ')}, …` : shown.join(', ')
}

/**
 * The payload of one RESP bulk-string reply (`$<len>\r\n<data>\r\n`), or
 * null while incomplete. An error reply (`-ERR ...`) throws.
 */
export function parseBulkReply (data: Buffer): string | null {
  const headerEnd = data.indexOf('\r\n')
  if (headerEnd < 0) return null
  const header = data.subarray(0, headerEnd).toString()
  if (header.startsWith('-')) throw new Error(`redis: ${header.slice(1)}`)
  if (!header.startsWith('$')) throw new Error(`redis: unexpected reply ${header.slice(0, 40)}`)
  const length = Number(header.slice(1))
  if (!Number.isInteger(length) || length < 0) throw new Error(`redis: bad bulk length ${header}`)
  const start = headerEnd + 2
  if (data.length < start + length) return null
  return data.subarray(start, start + length).toString()
}

/** `INFO <section>` against the redis-server on the loopback `port`. */
export async function redisInfo (port: number, section: string, timeoutMs = 2000, host = LOOPBACK): Promise<string> {
  assertLoopback(host)
  return await new Promise((resolve, reject) => {
    const socket = net.connect({ host, port })
    const chunks: Buffer[] = []
    const done = (error: Error | null, text?: string): void => {
      clearTimeout(timer)
      socket.destroy()
      if (error !== null) reject(error)
      else resolve(text ?? '')
    }
    const timer = setTimeout(() => done(new Error(`redis INFO ${section}: no answer within ${timeoutMs} ms`)), timeoutMs)
    socket.once('error', (err) => done(err))
    socket.once('connect', () => socket.write(`*2\r\n$4\r\nINFO\r\n$${Buffer.byteLength(section)}\r\n${section}\r\n`))
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      try {
        const text = parseBulkReply(Buffer.concat(chunks))
        if (text !== null) done(null, text)
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)))
      }
    })
  })
}

export async function commandCounts (port: number): Promise<Record<string, number>> {
  return parseCommandstats(await redisInfo(port, 'commandstats'))
}
