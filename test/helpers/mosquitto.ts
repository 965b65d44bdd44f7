/** Runs mosquitto_pub / mosquitto_sub against a test broker. */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { within } from './cli.js'

const run = promisify(execFile)

export async function hasMosquittoClients (): Promise<boolean> {
  try {
    await run('mosquitto_pub', ['--help'])
    return true
  } catch (err) {
    // mosquitto_pub --help exits 1 after printing its usage
    return (err as { code?: unknown }).code === 1
  }
}

export async function mosquittoPub (args: string[]): Promise<void> {
  await run('mosquitto_pub', args, { timeout: 10000, killSignal: 'SIGKILL' })
}

/**
 * Ends a client process for good and waits until it has gone. A process
 * still running gets `graceMs` to finish by itself (mosquitto_sub -C n exits
 * after its n-th message), then SIGKILL, never SIGTERM: mosquitto_sub's
 * SIGTERM handler disconnects from inside the signal handler, so it may not
 * end. In one CI run a test file passed every assertion and then stayed open
 * until tap's timeout on two Sockets, which is what a living child's stdout
 * and stderr pipes look like; SIGTERM was how its mosquitto_subs were stopped.
 */
export async function stopChild (child: ChildProcess, graceMs = 500): Promise<void> {
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  if (!running()) return
  const exited = once(child, 'exit')
  const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())
  await Promise.race([exited, grace])
  if (!running()) return
  child.kill('SIGKILL')
  await exited
}

export interface SubProcess {
  child: ChildProcess
  lines: string[]
  /** resolves with the first n lines printed */
  lines$: (n: number, ms?: number) => Promise<string[]>
  /**
   * Resolves with the exit code; rejects if it is still running after `ms`
   * (the teardown that would stop it runs only once the test has finished
   * waiting, so an unbounded wait would last until tap's timeout).
   */
  exited: (ms?: number) => Promise<number | null>
}

/** Starts mosquitto_sub; it is stopped (stopChild) when `t` ends. */
export function mosquittoSub (t: Test, args: string[]): SubProcess {
  return lineProcess(t, 'mosquitto_sub', args)
}

/** Starts a client process whose stdout is read line by line (mosquitto_sub, a Paho script); stopped (stopChild) when `t` ends. */
export function lineProcess (t: Test, command: string, args: string[]): SubProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => stopChild(child))
  const lines: string[] = []
  const waiters: Array<() => void> = []
  let buf = ''
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      lines.push(line)
      for (const w of waiters.splice(0)) w()
    }
  })
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    lines,
    exited: (ms = 10000) => within(exit, ms, `${command} exited`),
    lines$ (n, ms = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${command} printed ${lines.length} of ${n} lines: ${lines.join(' | ')}`)), ms)
        const check = (): void => {
          if (lines.length >= n) { clearTimeout(timer); resolve(lines.slice(0, n)) } else waiters.push(check)
        }
        check()
      })
    }
  }
}

/** Resolves when the broker has processed a SUBSCRIBE for `filter` (mosquitto_sub prints nothing when its subscription is granted). */
export function subscribedTo (broker: { aedes: { on: (e: 'subscribe', l: (subs: Array<{ topic: string }>) => void) => unknown, removeListener: (e: 'subscribe', l: (subs: Array<{ topic: string }>) => void) => unknown } }, filter: string, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { broker.aedes.removeListener('subscribe', on); reject(new Error(`no SUBSCRIBE to ${filter}`)) }, ms)
    const on = (subs: Array<{ topic: string }>): void => {
      if (subs.some(s => s.topic === filter)) { clearTimeout(timer); broker.aedes.removeListener('subscribe', on); resolve() }
    }
    broker.aedes.on('subscribe', on)
  })
}
