/**
 * Observability: Prometheus metrics, $SYS topics, health endpoints and
 * client lifecycle events. (Placeholder until the observability work lands.)
 */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { CulexBroker } from '../broker.js'
import type { HttpListener } from '../transports/http.js'
import { noopObserver, type BrokerObserver } from '../observer.js'

export interface ObservabilityTargets {
  broker: CulexBroker
  /** HTTP servers (ws, wss) that serve /metrics, /healthz, /readyz */
  http: HttpListener[]
}

export interface Observability {
  /** handed to createBroker before the broker exists */
  readonly observer: BrokerObserver
  /** starts $SYS, lifecycle events and HTTP routes once the broker and listeners exist */
  attach (targets: ObservabilityTargets): void
  close (): Promise<void>
}

export function createObservability (_config: Config, _logger: Logger): Observability {
  return { observer: noopObserver, attach () {}, async close () {} }
}
