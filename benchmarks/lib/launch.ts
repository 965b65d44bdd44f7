// Starting one broker process: spawn it, wait until its ports accept
// connections, and wire stop/cleanup. Shared by the single-broker runners
// and the cluster runners (several of these per cluster, plus redis-server).
import { readFileSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { waitForPort } from './net.js'
import { isRunning, OutputTail, spawnTracked, stopChild } from './processes.js'

export const START_TIMEOUT_MS = 15_000
export const STOP_GRACE_MS = 5_000

export interface LaunchSpec {
  readonly name: string
  readonly command: string
  readonly args: readonly string[]
  readonly port: number
  readonly wsPort: number | null
  /** further ports that must accept connections before the process counts as started */
  readonly morePorts?: readonly number[]
  readonly cleanup: () => Promise<void>
}

export interface LaunchOptions {
  readonly fdLimit: number
  readonly cpus: string | null
}

export interface Launched {
  readonly pid: number
  readonly port: number
  readonly wsPort: number | null
  stop: () => Promise<void>
  /** False once the process has exited (crashed, if we did not stop it). */
  alive: () => boolean
  /** Tail of the process's stdout/stderr, for error reports. */
  output: () => string
}

/** Spawns, waits until the ports accept connections, and wires stop/cleanup. */
export async function launch (spec: LaunchSpec, options: LaunchOptions): Promise<Launched> {
  const child = spawnTracked(spec.command, spec.args, { fdLimit: options.fdLimit, cpus: options.cpus })
  const tail = new OutputTail()
  child.stdout?.on('data', (chunk: Buffer) => tail.push(chunk))
  child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk))
  const pid = child.pid
  try {
    if (pid === undefined) throw new Error('spawn failed')
    // Readiness is "the TCP port accepts connections": it works the same for
    // every broker, whatever (if anything) it prints on startup.
    await waitForPort(spec.port, START_TIMEOUT_MS, () => isRunning(child))
    if (spec.wsPort !== null) await waitForPort(spec.wsPort, START_TIMEOUT_MS, () => isRunning(child))
    for (const more of spec.morePorts ?? []) await waitForPort(more, START_TIMEOUT_MS, () => isRunning(child))
  } catch (err) {
    await stopChild(child, 1000)
    await spec.cleanup()
    const reason = err instanceof Error ? err.message : String(err)
    throw new Error(`${spec.name} failed to start: ${reason}\n${tail.toString()}`)
  }
  return {
    pid,
    port: spec.port,
    wsPort: spec.wsPort,
    stop: async () => {
      await stopChild(child, STOP_GRACE_MS)
      await spec.cleanup()
    },
    alive: () => isRunning(child),
    output: () => tail.toString()
  }
}

// Temp dirs still in use; removed synchronously if the harness exits early
// (Ctrl-C, crash), after the exit hook in processes.ts killed the brokers.
const liveDirs = new Set<string>()
process.on('exit', () => {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
})

export async function tempDir (name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `culex-bench-${name}-`))
  liveDirs.add(dir)
  return dir
}

export const removeDir = (dir: string) => async (): Promise<void> => {
  await rm(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
}

export function packageVersion (repoRoot: string, packageDir: string): string {
  try {
    const manifest: unknown = JSON.parse(readFileSync(path.join(repoRoot, packageDir, 'package.json'), 'utf8'))
    const version = typeof manifest === 'object' && manifest !== null ? (manifest as Record<string, unknown>)['version'] : undefined
    return typeof version === 'string' ? version : '?'
  } catch {
    return '?'
  }
}
