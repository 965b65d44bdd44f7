/** Runs the built `culex` command (dist/bin/culex.js) as a child process. */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'

export const CULEX_BIN = fileURLToPath(new URL('../../dist/bin/culex.js', import.meta.url))

export interface CulexProcess {
  child: ChildProcess
  /** JSON log lines parsed so far */
  logs: Array<Record<string, unknown>>
  stderr: () => string
  /** the mqtt:// URL of the TCP listener */
  url: string
  port: number
  exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

export async function startCulex (args: string[], env: Record<string, string> = {}, timeoutMs = 15000): Promise<CulexProcess> {
  const child = spawn(process.execPath, [CULEX_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  const logs: Array<Record<string, unknown>> = []
  let err = ''
  let out = ''
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  const url = await new Promise<string>((resolve, reject) => {
    let tcp: string | undefined
    // a child left running would hold the test process open through its pipes
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`culex did not start within ${timeoutMs} ms: ${err}`)) }, timeoutMs)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      let i: number
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i)
        out = out.slice(i + 1)
        try {
          const entry = JSON.parse(line) as Record<string, unknown>
          logs.push(entry)
          if (entry.listener === 'tcp' && typeof entry.url === 'string') tcp = entry.url
          if (entry.msg === 'culex started' && tcp) { clearTimeout(timer); resolve(tcp) }
        } catch { /* not JSON */ }
      }
    })
    void exit.then(({ code }) => { clearTimeout(timer); reject(new Error(`culex exited with ${code}: ${err}`)) })
  })
  return { child, logs, stderr: () => err, url, port: Number(new URL(url).port), exit }
}

/**
 * Runs culex to completion and returns its exit code and output. It waits for
 * 'close', not 'exit': 'exit' may come before the last of stdout and stderr
 * has been read. A run still going after `timeoutMs` is killed and fails.
 */
export async function runCulex (args: string[], env: Record<string, string> = {}, timeoutMs = 30000): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [CULEX_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, timeoutMs)
  const [code] = await once(child, 'close') as [number | null]
  clearTimeout(timer)
  if (timedOut) throw new Error(`culex ${args.join(' ')} still running after ${timeoutMs} ms: ${stderr}`)
  return { code, stdout, stderr }
}

/** `promise`, or a rejection naming `what` once `ms` have passed without it settling. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}
