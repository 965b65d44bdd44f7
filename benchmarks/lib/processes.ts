// Child-process plumbing shared by the broker runners and the load generator:
// raising the open-file limit, optional CPU pinning, keeping a tail of output
// for error reports, and never leaving a child behind when the harness exits.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'

export interface FdLimits { soft: number; hard: number }

/** The shell's view of RLIMIT_NOFILE (Node has no getrlimit). */
export function fdLimits (): FdLimits {
  const parse = (flag: string): number => {
    try {
      const out = execFileSync('/bin/sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim()
      return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number.parseInt(out, 10)
    } catch {
      return 1024
    }
  }
  return { soft: parse('-Sn'), hard: parse('-Hn') }
}

export interface SpawnOptions {
  /** Raise the soft fd limit to this (capped at the hard limit) for the child. */
  readonly fdLimit: number
  /** `taskset -c` CPU list, when pinning is requested and taskset exists. */
  readonly cpus: string | null
  readonly env?: NodeJS.ProcessEnv
  readonly stdin?: 'pipe' | 'ignore'
}

const live = new Set<ChildProcess>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // Last resort if the harness dies mid-run: no broker or load generator may
  // outlive it (they would keep ports and CPU on a shared machine).
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL')
  })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping ${live.size} child process(es)\n`)
      for (const child of live) child.kill('SIGKILL')
      process.exit(130)
    })
  }
}

/**
 * Spawns `command args` through `/bin/sh -c 'ulimit -n N; exec ...'`. The
 * `exec` keeps the pid, so the returned pid is the real broker's pid and its
 * /proc entry is the one we measure.
 */
export function spawnTracked (command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  installExitHook()
  const argv = options.cpus === null ? [command, ...args] : ['taskset', '-c', options.cpus, command, ...args]
  const script = 'ulimit -n "$0" 2>/dev/null; exec "$@"'
  const child = spawn('/bin/sh', ['-c', script, String(options.fdLimit), ...argv], {
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

/** Keeps the last `max` characters a stream produced, for error messages. */
export class OutputTail {
  private text = ''
  constructor (private readonly max = 4000) {}
  push (chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.max)
  }

  toString (): string {
    return this.text.trim()
  }
}

export function isRunning (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
export async function stopChild (child: ChildProcess, graceMs: number): Promise<void> {
  if (!isRunning(child)) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

export function commandExists (command: string): boolean {
  try {
    execFileSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
