/**
 * Dashboard sessions, kept in the server: the browser holds only an opaque
 * id in an `HttpOnly; SameSite=Strict` cookie (`Secure` under TLS), never a
 * credential or a token in script-readable storage (RabbitMQ's
 * CVE-2017-4966). Each session carries its own CSRF token, which the page
 * reads from the API and sends back in a header on every change.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'

export type Role = 'viewer' | 'admin'

export interface Session {
  readonly id: string
  readonly username: string
  readonly role: Role
  readonly csrfToken: string
  expiresAt: number
}

export const COOKIE_NAME = 'culex_session'

export interface SessionOptions {
  /** a session ends after this long without a request; default 30 minutes */
  idleMs?: number
  /** sessions kept at most; the least recently used goes first; default 1000 */
  maxSessions?: number
  now?: () => number
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>()
  private readonly idleMs: number
  private readonly maxSessions: number
  private readonly now: () => number

  constructor (opts: SessionOptions = {}) {
    this.idleMs = opts.idleMs ?? 30 * 60_000
    this.maxSessions = opts.maxSessions ?? 1000
    this.now = opts.now ?? Date.now
  }

  get size (): number { return this.sessions.size }

  create (username: string, role: Role): Session {
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      username,
      role,
      csrfToken: randomBytes(32).toString('base64url'),
      expiresAt: this.now() + this.idleMs
    }
    this.sessions.set(session.id, session)
    if (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next()
      if (oldest.done !== true) this.sessions.delete(oldest.value)
    }
    return session
  }

  /** the live session with this id, its idle timer restarted */
  get (id: string | undefined): Session | undefined {
    if (id === undefined) return undefined
    const session = this.sessions.get(id)
    if (session === undefined) return undefined
    const now = this.now()
    if (session.expiresAt <= now) {
      this.sessions.delete(id)
      return undefined
    }
    session.expiresAt = now + this.idleMs
    // least recently used first
    this.sessions.delete(id)
    this.sessions.set(id, session)
    return session
  }

  delete (id: string): void {
    this.sessions.delete(id)
  }

  /** drops every session of `username` (e.g. when it is removed) */
  deleteUser (username: string): void {
    for (const [id, s] of this.sessions) if (s.username === username) this.sessions.delete(id)
  }
}

/** The session cookie's value from a Cookie header. */
export function sessionIdFrom (cookieHeader: string | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === COOKIE_NAME) return part.slice(eq + 1).trim()
  }
  return undefined
}

export function sessionCookie (id: string, secure: boolean): string {
  return `${COOKIE_NAME}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`
}

export function clearedCookie (secure: boolean): string {
  return `${COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`
}

/** constant-time comparison of a CSRF token */
export function tokenMatches (expected: string, given: string | undefined): boolean {
  if (given === undefined) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}
