/**
 * Who may take a session, and whether one is there to resume: decided at
 * CONNECT once the client has authenticated, before aedes discards (Clean
 * Start), resumes or takes over anything.
 *
 * 1. Ownership. A session belongs to the identity that made it: the
 *    authenticated user name, or "anonymous". With `sessionOwnership:
 *    'username'` (the default) a CONNECT of another identity with the
 *    session's Client Identifier is refused with CONNACK 0x87 Not authorized
 *    (3.1.1: return code 5), whatever its Clean Start: taking the session
 *    over would close the owner's connection, and resuming or discarding it
 *    would hand over or empty her queue. The owner's session and live
 *    connection stay untouched. An anonymous client cannot take a named
 *    user's session, nor a named user an anonymous one. A session stored
 *    before owners were recorded has no known owner and may be taken.
 *    `'any'` is mosquitto's behaviour: any client that may connect takes any
 *    session by its Client Identifier.
 * 2. Presence. [MQTT-3.2.2-2] (3.1.1) [MQTT-3.2.2-3] (5) Session Present is 1
 *    when a session is resumed, whether or not it holds subscriptions: a
 *    stored session, or a connected client's persistent one.
 */

export type SessionOwnership = 'username' | 'any'

export interface SessionClaim {
  /** the authenticated user name; null for an anonymous client */
  identity: string | null
  cleanStart: boolean
}

export interface ExistingSession {
  /** the stored session's owner: a user name, null (anonymous) or undefined (not recorded); absent: no stored session */
  stored?: { owner: string | null | undefined }
  /** a client connected with this Client Identifier now */
  live?: { identity: string | null, persistent: boolean }
}

export type SessionVerdict =
  | { kind: 'refuse', owner: string | null }
  | { kind: 'accept', existed: boolean }

export function judgeSessionClaim (mode: SessionOwnership, claim: SessionClaim, existing: ExistingSession): SessionVerdict {
  // the connected client holds the session now; otherwise whoever stored it
  const owner = existing.live !== undefined ? existing.live.identity : existing.stored?.owner
  if (mode === 'username' && owner !== undefined && owner !== claim.identity) return { kind: 'refuse', owner }
  return { kind: 'accept', existed: existing.stored !== undefined || existing.live?.persistent === true }
}
