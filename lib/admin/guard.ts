/**
 * The checks every admin request passes before it reaches a handler, and
 * the headers every answer carries:
 * - the Host header names this server by an IP address, `localhost` or the
 *   machine's host name, so a page of another site that rebinds its DNS name
 *   to this address (DNS rebinding) is refused;
 * - a state-changing request comes from this origin (`Origin`, or else
 *   `Sec-Fetch-Site`); the per-session CSRF token is checked by the API;
 * - a strict Content-Security-Policy (no inline script or style), `nosniff`,
 *   no referrer, no framing. No CORS header is ever sent, so pages of other
 *   origins cannot read the API.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'
import { hostname } from 'node:os'

export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

export const SECURITY_HEADERS: Readonly<OutgoingHttpHeaders> = Object.freeze({
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
})

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

export function isStateChanging (method: string | undefined): boolean {
  return STATE_CHANGING.has(method ?? 'GET')
}

/** `host:port` or `[v6]:port` split; undefined when malformed */
export function splitHost (host: string): { name: string, port: string | undefined } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host)
  if (m === null) return undefined
  return { name: (m[1] as string).toLowerCase(), port: m[2] }
}

/**
 * Whether the Host header names this server: an IP literal, `localhost` or
 * this machine's name, and the port the listener is on.
 */
export function hostAllowed (host: string | undefined, port: number, extraNames: readonly string[] = [hostname()]): boolean {
  if (host === undefined) return false
  const parts = splitHost(host)
  if (parts === undefined) return false
  if ((parts.port ?? '80') !== String(port) && (parts.port ?? '443') !== String(port)) return false
  const name = parts.name.startsWith('[') ? parts.name.slice(1, -1) : parts.name
  if (isIP(name) !== 0 || name === 'localhost') return true
  return extraNames.some(n => n.toLowerCase() === name)
}

/** A state-changing request that a page of another origin sent is refused. */
export function sameOrigin (req: IncomingMessage, secure: boolean): boolean {
  const origin = req.headers.origin
  if (origin !== undefined) return origin === `${secure ? 'https' : 'http'}://${req.headers.host ?? ''}`
  const site = req.headers['sec-fetch-site']
  if (site !== undefined) return site === 'same-origin' || site === 'none'
  // neither header: not sent by a browser's cross-site request (curl, scripts); the CSRF token still applies
  return true
}
