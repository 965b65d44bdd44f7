/**
 * Health endpoints, in the Kubernetes sense:
 * - `/healthz` (liveness): 200 `{"status":"ok"}` while the process serves HTTP;
 * - `/readyz` (readiness): 200 `{"status":"ready",...}` when the listeners
 *   are open, the broker is not shutting down, the store accepts writes and,
 *   in a cluster, the node reaches Redis;
 *   otherwise 503 `{"status":"not ready",...,"reasons":[...]}`.
 */
import type { ServerResponse } from 'node:http'
import type { CulexBroker } from '../broker.js'
import type { Listener } from '../transports/listener.js'
import type { RouteHandler } from '../transports/http.js'
import { storeOf, type ObservableStore } from './sources.js'

export interface HealthOptions {
  broker: CulexBroker
  listeners: readonly Listener[]
  /** true once shutdown has begun */
  closing: () => boolean
  /** how long the store check may take before it counts as failed; default 2000 ms */
  storeTimeoutMs?: number
}

export interface ReadinessReport {
  status: 'ready' | 'not ready'
  listeners: Array<{ name: string, url: string }>
  /** 'ok', or what is wrong with the store */
  store: string
  reasons?: string[]
}

/**
 * Topic of the store probe: a retained message with an empty payload is a
 * delete [MQTT-3.3.1-6], and nothing is ever retained here (clients may not
 * publish under $SYS), so the probe changes nothing, but a store that is
 * closed or failing rejects it.
 */
export const STORE_PROBE_TOPIC = '$SYS/culex/readyz-probe'

/** Whether the store accepts writes: its own `isWritable()` if it has one, else the probe above. */
export async function checkStore (store: ObservableStore | undefined, timeoutMs: number): Promise<string> {
  if (store === undefined) return 'no store'
  let check: Promise<string>
  try {
    if (typeof store.isWritable === 'function') {
      check = store.isWritable().then(ok => ok ? 'ok' : 'not writable')
    } else if (typeof store.storeRetained === 'function') {
      check = store.storeRetained({ cmd: 'publish', topic: STORE_PROBE_TOPIC, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }).then(() => 'ok')
    } else {
      return 'ok'
    }
  } catch (err) {
    return `error: ${errorMessage(err)}`
  }
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs) })
  try {
    return await Promise.race([check.catch((err: unknown) => `error: ${errorMessage(err)}`), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export async function readiness (opts: HealthOptions): Promise<ReadinessReport> {
  const reasons: string[] = []
  const listeners = opts.listeners.map(l => ({ name: l.name, url: l.url() }))
  if (opts.closing() || opts.broker.aedes.closed) reasons.push('broker is shutting down')
  if (listeners.length === 0) reasons.push('no listener is open')
  const store = await checkStore(storeOf(opts.broker), opts.storeTimeoutMs ?? 2000)
  if (store !== 'ok') reasons.push(`store: ${store}`)
  const cluster = opts.broker.cluster?.problem()
  if (cluster !== undefined) reasons.push(`cluster: ${cluster}`)
  const report: ReadinessReport = { status: reasons.length === 0 ? 'ready' : 'not ready', listeners, store }
  if (reasons.length > 0) report.reasons = reasons
  return report
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body) + '\n')
}

export function healthRoutes (opts: HealthOptions): { healthz: RouteHandler, readyz: RouteHandler } {
  return {
    healthz (_req, res) {
      sendJson(res, 200, { status: 'ok' })
    },
    async readyz (_req, res) {
      const report = await readiness(opts)
      sendJson(res, report.status === 'ready' ? 200 : 503, report)
    }
  }
}
