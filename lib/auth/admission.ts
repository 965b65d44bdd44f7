/**
 * The gateway's ConnectionPolicy: connection admission limits, the ACL, the
 * subscription limit and per-client publish rates, each configurable with a
 * documented default (README, "Security and limits").
 */
import type { IConnectPacket } from 'mqtt-packet'
import { ReasonCode } from '../protocol/reason-codes.js'
import { RateLimiter } from './rate-limit.js'
import type { SecurityPolicy } from './policy.js'

/** A connection as the policy sees it (the gateway's Connection is one). */
export interface PolicySubject {
  readonly client: { readonly id: string }
  /** the Client Identifier of the CONNECT, before the broker assigns one */
  readonly connectClientId: string | undefined
  /** who the client authenticated as (user name, certificate CN, or SCRAM user) */
  readonly authenticatedAs: string | undefined
  readonly username: string | undefined
  readonly meta: { readonly remoteAddress: string | undefined }
}

/** Admission, authorization and limits the gateway applies (lib/broker.ts builds it). */
export interface ConnectionPolicy {
  /** at CONNECT: undefined to go on, or the reason code to refuse it with */
  admit (conn: PolicySubject, connect: IConnectPacket): number | undefined
  mayPublish (conn: PolicySubject, topic: string): boolean
  maySubscribe (conn: PolicySubject, filter: string): boolean
  /** may the client be sent messages on `topic` (the ACL's read right)? */
  mayReceive (conn: PolicySubject, topic: string): boolean
  /** per PUBLISH from the client: false when it exceeds its message rate */
  takePublish (conn: PolicySubject): boolean
  /** subscriptions one client may hold */
  readonly maxSubscriptions: number
}

export interface Limits {
  /** connected clients at most; further CONNECTs get 0x89 Server busy (3.1.1: 3) */
  maxConnections: number
  /** new connections per second from one address (burst twice that); 0x9F (3.1.1: 3); 0 = no limit */
  connectionRate: number
  /** subscriptions one client may hold; 0x97 (3.1.1: 0x80) */
  maxSubscriptionsPerClient: number
  /** PUBLISH packets per second one client may send (burst twice that); DISCONNECT 0x96; 0 = no limit */
  publishRate: number
  /** longest Client Identifier; CONNACK 0x85 (3.1.1: 2) */
  maxClientIdLength: number
}

export const defaultLimits: Limits = {
  maxConnections: 100000,
  connectionRate: 0,
  maxSubscriptionsPerClient: 1000,
  publishRate: 0,
  maxClientIdLength: 256
}

export function createConnectionPolicy (
  limits: Limits,
  security: SecurityPolicy | undefined,
  connectedClients: () => number
): ConnectionPolicy {
  const perAddress = limits.connectionRate > 0
    ? new RateLimiter({ capacity: limits.connectionRate * 2, refillPerSecond: limits.connectionRate })
    : undefined
  const perClient = new WeakMap<PolicySubject, RateLimiter>()
  const aclClient = (conn: PolicySubject): { clientId: string, username: string | undefined } =>
    ({ clientId: conn.client.id ?? conn.connectClientId ?? '', username: conn.authenticatedAs ?? conn.username })

  return {
    maxSubscriptions: limits.maxSubscriptionsPerClient,
    admit (conn: PolicySubject, connect: IConnectPacket): number | undefined {
      if (connect.clientId.length > limits.maxClientIdLength) return ReasonCode.ClientIdentifierNotValid
      if (perAddress && !perAddress.take(conn.meta.remoteAddress ?? 'unknown')) return ReasonCode.ConnectionRateExceeded
      if (connectedClients() >= limits.maxConnections) return ReasonCode.ServerBusy
      return undefined
    },
    mayPublish (conn, topic) {
      return security === undefined || security.mayPublish(aclClient(conn), topic)
    },
    maySubscribe (conn, filter) {
      return security === undefined || security.maySubscribe(aclClient(conn), filter)
    },
    mayReceive (conn, topic) {
      // as aedes' path checks it (lib/broker/hooks/forward.ts): the identity authentication settled on
      return security === undefined || security.mayReceive({ clientId: conn.client.id, username: conn.authenticatedAs }, topic)
    },
    takePublish (conn) {
      if (limits.publishRate <= 0) return true
      let bucket = perClient.get(conn)
      if (!bucket) perClient.set(conn, bucket = new RateLimiter({ capacity: limits.publishRate * 2, refillPerSecond: limits.publishRate, maxKeys: 1 }))
      return bucket.take('publish')
    }
  }
}
