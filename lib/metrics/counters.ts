/**
 * The BrokerObserver the protocol gateway calls on its hot path: plain
 * integer additions into fixed slots, nothing else. Prometheus (prometheus.ts)
 * and $SYS (sys.ts) read these totals when they report, so the cost per
 * packet is the same whether metrics are scraped or not, and one set of
 * numbers feeds both. (prom-client's labelled `inc`, even through a bound
 * `labels(...)` child, hashes the label set on every call.)
 */
import type { BrokerObserver, DropReason } from '../observer.js'
import type { Transport } from '../protocol/transport-kind.js'

export const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss']
/** protocol levels a CONNECT can be accepted with: 3 (3.1), 4 (3.1.1), 5 */
export const PROTOCOL_VERSIONS = [3, 4, 5] as const

type PerTransport = Record<Transport, number>

const perTransport = (): PerTransport => ({ tcp: 0, tls: 0, ws: 0, wss: 0 })

export class TrafficCounters implements BrokerObserver {
  /** sockets a transport accepted, before any CONNECT */
  readonly socketsOpened = perTransport()
  /** CONNACK 0x00 sent */
  readonly accepted = perTransport()
  /** connected now, by transport, then by protocol level (index 3..5) */
  readonly connected: Record<Transport, number[]> = { tcp: [0, 0, 0, 0, 0, 0], tls: [0, 0, 0, 0, 0, 0], ws: [0, 0, 0, 0, 0, 0], wss: [0, 0, 0, 0, 0, 0] }
  /** most clients connected at once since start */
  maxConnected = 0
  connectedNow = 0
  /** by MQTT 5 reason code (3.1.1 return codes arrive mapped to theirs) */
  readonly refused = new Map<number, number>()
  /** PUBLISH packets by QoS (index 0..2), and their bytes on the wire */
  readonly received = [0, 0, 0]
  readonly sent = [0, 0, 0]
  bytesReceived = 0
  bytesSent = 0
  readonly dropped = new Map<string, number>()

  connectionOpened (transport: Transport): void {
    this.socketsOpened[transport]++
  }

  clientAccepted (transport: Transport, version: number): void {
    this.accepted[transport]++
    const byVersion = this.connected[transport]
    byVersion[version] = (byVersion[version] ?? 0) + 1
    if (++this.connectedNow > this.maxConnected) this.maxConnected = this.connectedNow
  }

  connectRefused (reasonCode: number): void {
    this.refused.set(reasonCode, (this.refused.get(reasonCode) ?? 0) + 1)
  }

  connectionClosed (transport: Transport, version: number | undefined, accepted: boolean): void {
    if (!accepted || version === undefined) return
    const byVersion = this.connected[transport]
    byVersion[version] = (byVersion[version] ?? 1) - 1
    this.connectedNow--
  }

  publishReceived (qos: number, bytes: number): void {
    this.received[qos] = (this.received[qos] ?? 0) + 1
    this.bytesReceived += bytes
  }

  publishSent (qos: number, bytes: number): void {
    this.sent[qos] = (this.sent[qos] ?? 0) + 1
    this.bytesSent += bytes
  }

  messageDropped (reason: DropReason, count: number): void {
    this.drop(reason, count)
  }

  /** drops reported by the store as well as by the gateway; reason as the reporter names it */
  drop (reason: string, count: number): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + count)
  }

  get messagesReceived (): number { return sum(this.received) }
  get messagesSent (): number { return sum(this.sent) }
  get messagesDropped (): number { return sum(this.dropped.values()) }
}

function sum (values: Iterable<number>): number {
  let total = 0
  for (const v of values) total += v
  return total
}

/** A reason code as a Prometheus label: `0x86`. */
export function hexCode (code: number): string {
  return '0x' + code.toString(16).padStart(2, '0')
}
