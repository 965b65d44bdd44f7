/**
 * A write the cluster's Redis refused or did not answer, and what the client
 * whose PUBLISH needed it is told. One mapping for every write a PUBLISH
 * waits on (a retained message today; routed QoS 1/2 messages use the same):
 * MQTT 5 gets its PUBACK with 0x80 Unspecified error and a Reason String
 * saying why, and the connection goes on; MQTT 3.1.1, whose PUBACK cannot
 * say it, is closed (the message was not accepted, so no PUBACK goes out).
 */
import { ReasonCode } from '../protocol/reason-codes.js'

/** Why Redis did not take a write. */
export type RefusalKind = 'out-of-memory' | 'read-only' | 'cannot-persist' | 'timeout' | 'unreachable' | 'other'

/** A cluster write Redis refused or did not answer; `cause` is ioredis' error. */
export class ClusterWriteRefused extends Error {
  constructor (readonly kind: RefusalKind, message: string, cause: unknown) {
    super(message, { cause })
    this.name = 'ClusterWriteRefused'
  }
}

function kindOf (message: string): RefusalKind {
  if (message.startsWith('OOM ')) return 'out-of-memory'
  if (message.startsWith('READONLY ')) return 'read-only'
  if (message.startsWith('MISCONF ')) return 'cannot-persist'
  if (message === 'Command timed out') return 'timeout'
  if (/Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE/.test(message)) return 'unreachable'
  return 'other'
}

const WHY: Record<RefusalKind, string> = {
  'out-of-memory': 'the cluster\'s Redis is out of memory (maxmemory) and refused the write',
  'read-only': 'the cluster\'s Redis is a read-only replica and refused the write',
  'cannot-persist': 'the cluster\'s Redis refused the write: it cannot persist to disk (MISCONF)',
  timeout: 'the cluster\'s Redis did not answer the write in time',
  unreachable: 'the cluster\'s Redis cannot be reached',
  other: 'the cluster\'s Redis refused the write'
}

/** Wraps an error of a Redis write (`what`: e.g. 'retained message') so the publisher's answer can be chosen. */
export function clusterWriteRefused (err: unknown, what: string): ClusterWriteRefused {
  if (err instanceof ClusterWriteRefused) return err
  const message = err instanceof Error ? err.message : String(err)
  const kind = kindOf(message)
  return new ClusterWriteRefused(kind, `${what} not stored: ${WHY[kind]}${kind === 'other' ? ` (${message})` : ''}`, err)
}

/** How the publisher of a message whose write was refused is answered. */
export type PublishRefusal =
  | { kind: 'ack', reasonCode: number, reason: string }
  | { kind: 'close', reason: string }

/**
 * The answer to a QoS 1/2 PUBLISH whose cluster write failed: MQTT 5 a
 * PUBACK/PUBREC 0x80 with the reason, 3.1.1 a closed connection; undefined
 * when `err` is not a refused cluster write (the caller's usual handling).
 */
export function publishRefusal (err: unknown, version: number): PublishRefusal | undefined {
  if (!(err instanceof ClusterWriteRefused)) return undefined
  if (version === 5) return { kind: 'ack', reasonCode: ReasonCode.UnspecifiedError, reason: err.message }
  return { kind: 'close', reason: err.message }
}
