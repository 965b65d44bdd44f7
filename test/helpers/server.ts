/** Starts culex in-process on ephemeral loopback ports for a test. */
import type { Test } from 'tap'
import type { Client } from 'aedes'
import { startServer, type CulexServer, type StartOptions } from '../../lib/server.js'
import type { ConfigInput } from '../../lib/config/schema.js'
import { createLogger } from '../../lib/logging.js'

/** `options` (a logger, authenticators, a store) replace the silent defaults. */
export async function startTestServer (t: Test, overrides: ConfigInput = {}, options: StartOptions = {}): Promise<CulexServer> {
  const server = await startServer({
    host: '127.0.0.1',
    port: 'auto',
    wsPort: 'auto',
    tlsPort: 0,
    wssPort: 0,
    persistence: 'memory',
    logLevel: 'silent',
    ...overrides
  }, { logger: createLogger({ level: process.env.CULEX_TEST_LOG === '1' ? 'debug' : 'silent', pretty: false }), ...options })
  t.teardown(() => server.close())
  return server
}

export function tcpUrl (server: CulexServer): string {
  if (!server.tcp) throw new Error('no TCP listener')
  return `mqtt://127.0.0.1:${server.tcp.address().port}`
}

export function tcpPort (server: CulexServer): number {
  if (!server.tcp) throw new Error('no TCP listener')
  return server.tcp.address().port
}

export function wsUrl (server: CulexServer): string {
  if (!server.ws) throw new Error('no WebSocket listener')
  return `ws://127.0.0.1:${server.ws.address().port}/mqtt`
}

/** Resolves when the broker has let go of `clientId`'s connection. */
export function gone (server: CulexServer, clientId: string, ms = 5000): Promise<void> {
  const aedes = server.broker.aedes
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { aedes.removeListener('clientDisconnect', on); reject(new Error(`${clientId} still connected`)) }, ms)
    const on = (c: Client): void => {
      if (c.id !== clientId) return
      clearTimeout(timer)
      aedes.removeListener('clientDisconnect', on)
      resolve()
    }
    aedes.on('clientDisconnect', on)
  })
}
