/**
 * What the protocol gateway reports as it works, for metrics (lib/metrics).
 * Calls sit on the hot path: implementations only count.
 */
import type { Transport } from './protocol/transport-kind.js'

export type DropReason =
  | 'packet-too-large'
  | 'queue-full'
  | 'expired'
  | 'not-authorized'
  | 'no-subscribers'
  | 'retained-limit'
  | 'rate-limited'

export interface BrokerObserver {
  /** a transport accepted a socket */
  connectionOpened (transport: Transport): void
  /** CONNACK 0x00 went out */
  clientAccepted (transport: Transport, version: number): void
  /** a CONNACK with a failure code went out, or a CONNECT was refused by closing */
  connectRefused (reasonCode: number): void
  connectionClosed (transport: Transport, version: number | undefined, accepted: boolean): void
  /** a PUBLISH from a client */
  publishReceived (qos: number, bytes: number): void
  /** a PUBLISH to a client */
  publishSent (qos: number, bytes: number): void
  /** a message not delivered, and why */
  messageDropped (reason: DropReason, count: number): void
}

export const noopObserver: BrokerObserver = {
  connectionOpened () {},
  clientAccepted () {},
  connectRefused () {},
  connectionClosed () {},
  publishReceived () {},
  publishSent () {},
  messageDropped () {}
}
