// Port helpers. Every address the harness touches is loopback: the team rule
// is that benchmarks never generate load against anything off this machine.
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export const LOOPBACK = '127.0.0.1'

export function assertLoopback (host: string): void {
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host !== '::1') {
    throw new Error(`refusing non-loopback benchmark target ${host}`)
  }
}

/** Asks the kernel for a free port by binding port 0 and releasing it. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, LOOPBACK, () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port from listen(0)'))
      })
    })
  })
}

function tryConnect (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: LOOPBACK, port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

/**
 * Polls until `port` accepts TCP connections. `alive` lets the caller abort
 * early when the process that should open the port has already died.
 */
export async function waitForPort (port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before port ${port} opened`)
    if (await tryConnect(port)) return
    await sleep(50)
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`)
}
