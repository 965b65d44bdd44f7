/**
 * The JSON API under /api/v1/, in the style of EMQX's /api/v5: lists as
 * `{data, meta}` with paging (`page`, `limit`) and filters; errors as
 * `{code, message}` with 400, 401, 403 or 404. Each request goes through
 * named steps: 1. the session (401 without one); 2. for a change, the
 * same-origin check and the session's CSRF token (403); 3. the role (403 for
 * a viewer's change); 4. the input (400); 5. the handler.
 */
import type { IncomingMessage } from 'node:http'
import type { AdminSource, ClientState, ClientSummary } from './source.js'
import type { RateHistory } from './history.js'
import { tokenMatches, type Role, type Session, type SessionStore } from './sessions.js'
import { isStateChanging, sameOrigin } from './guard.js'

export const API_PREFIX = '/api/v1/'
export const MAX_LIMIT = 1000
export const DEFAULT_LIMIT = 50
/** a login body is small */
export const MAX_BODY = 4096
export const CSRF_HEADER = 'x-csrf-token'

export interface ApiResult {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

/** Checks a dashboard login; the role, or undefined when refused (after the login slow-down). */
export type Authenticate = (username: string, password: string, remoteAddress: string | undefined) => Promise<Role | undefined>

export interface ApiOptions {
  source: AdminSource
  history: RateHistory
  sessions: SessionStore
  authenticate: Authenticate
  secure: boolean
  /** longest topic accepted, in bytes */
  maxTopicLength: number
  cookie: (id: string) => string
  clearCookie: () => string
}

export class ApiError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) { super(message) }
}

const fail = (status: number, code: string, message: string): never => { throw new ApiError(status, code, message) }

export interface ApiRequest {
  req: IncomingMessage
  method: string
  /** the path below /api/v1/, split at `/`, each segment decoded */
  segments: string[]
  query: URLSearchParams
  session: Session | undefined
  body: () => Promise<unknown>
}

interface Page { page: number, limit: number }

function intParam (query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name)
  if (raw === null) return fallback
  if (!/^\d{1,9}$/.test(raw)) fail(400, 'BAD_REQUEST', `${name} must be a whole number from ${min} to ${max}`)
  const n = Number(raw)
  if (n < min || n > max) fail(400, 'BAD_REQUEST', `${name} must be a whole number from ${min} to ${max}`)
  return n
}

function pageOf (query: URLSearchParams): Page {
  return { page: intParam(query, 'page', 1, 1, 1_000_000), limit: intParam(query, 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT) }
}

export function paged<T> (items: readonly T[], { page, limit }: Page): { data: T[], meta: { page: number, limit: number, count: number, hasnext: boolean } } {
  const start = (page - 1) * limit
  return { data: items.slice(start, start + limit), meta: { page, limit, count: items.length, hasnext: start + limit < items.length } }
}

/** a topic name (no wildcards, no U+0000, within the length limit) [MQTT-4.7.1-1] [MQTT-4.7.3-2] */
function topicParam (query: URLSearchParams, name: string, maxBytes: number, allowEmpty: boolean): string {
  const topic = query.get(name) ?? ''
  if (topic === '' && !allowEmpty) fail(400, 'BAD_REQUEST', `${name} is required`)
  if (topic.includes('+') || topic.includes('#')) fail(400, 'BAD_REQUEST', `${name} must be a topic name, without the wildcards + and #`)
  if (topic.includes('\u0000')) fail(400, 'BAD_REQUEST', `${name} must not contain U+0000`)
  if (Buffer.byteLength(topic) > maxBytes) fail(400, 'BAD_REQUEST', `${name} is longer than ${maxBytes} bytes`)
  return topic
}

const STATES: readonly ClientState[] = ['connected', 'connecting', 'offline']

function filterClients (clients: ClientSummary[], query: URLSearchParams): ClientSummary[] {
  const id = query.get('clientid')?.toLowerCase()
  const user = query.get('username')?.toLowerCase()
  const state = query.get('state')
  if (state !== null && !(STATES as readonly string[]).includes(state)) fail(400, 'BAD_REQUEST', `state must be one of ${STATES.join(', ')}`)
  return clients
    .filter(c => (id === undefined || c.clientId.toLowerCase().includes(id)) &&
      (user === undefined || (c.username ?? '').toLowerCase().includes(user)) &&
      (state === null || c.state === state))
    .sort((a, b) => a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0)
}

export function createApi (opts: ApiOptions): (r: ApiRequest) => Promise<ApiResult> {
  const { source, history, sessions } = opts

  async function login (r: ApiRequest): Promise<ApiResult> {
    const body = await r.body()
    if (typeof body !== 'object' || body === null) return fail(400, 'BAD_REQUEST', 'expected a JSON object with username and password')
    const { username, password } = body as { username?: unknown, password?: unknown }
    if (typeof username !== 'string' || username === '' || typeof password !== 'string') return fail(400, 'BAD_REQUEST', 'username and password must be strings')
    const role = await opts.authenticate(username, password, r.req.socket.remoteAddress)
    if (role === undefined) return fail(401, 'BAD_USERNAME_OR_PWD', 'bad user name or password')
    if (r.session !== undefined) sessions.delete(r.session.id)
    const session = sessions.create(username, role)
    return { status: 200, body: { username, role, csrfToken: session.csrfToken }, headers: { 'set-cookie': opts.cookie(session.id) } }
  }

  function requireAdmin (session: Session): void {
    if (session.role !== 'admin') fail(403, 'FORBIDDEN', 'this needs the admin role')
  }

  async function route (r: ApiRequest, session: Session): Promise<ApiResult> {
    const [first, second, ...more] = r.segments
    const m = r.method
    switch (first) {
      case 'session':
        if (second === undefined && m === 'GET') return { status: 200, body: { username: session.username, role: session.role, csrfToken: session.csrfToken } }
        break
      case 'logout':
        if (second === undefined && m === 'POST') {
          sessions.delete(session.id)
          return { status: 204, headers: { 'set-cookie': opts.clearCookie() } }
        }
        break
      case 'overview':
        if (second === undefined && m === 'GET') return { status: 200, body: await source.overview() }
        break
      case 'stats':
        if (second === 'history' && more.length === 0 && m === 'GET') {
          const seconds = intParam(r.query, 'seconds', 600, 1, 600)
          return { status: 200, body: { interval: 1, rates: history.rateSamples(seconds), groups: history.groupDepths(seconds) } }
        }
        break
      case 'clients':
        if (more.length > 0) break
        if (second === undefined && m === 'GET') {
          const page = pageOf(r.query)
          return { status: 200, body: paged(filterClients(source.clients(), r.query), page) }
        }
        if (second !== undefined && m === 'GET') {
          const detail = await source.client(second)
          return detail === undefined ? fail(404, 'CLIENTID_NOT_FOUND', 'no client or stored session with this client id') : { status: 200, body: detail }
        }
        if (second !== undefined && m === 'DELETE') {
          requireAdmin(session)
          return source.disconnect(second) ? { status: 204 } : fail(404, 'CLIENTID_NOT_FOUND', 'no client connected with this client id')
        }
        break
      case 'retained':
        if (second !== undefined) break
        if (m === 'GET') {
          const parent = topicParam(r.query, 'parent', opts.maxTopicLength, true)
          const page = pageOf(r.query)
          const level = await source.retainedLevel(parent)
          const out = paged(level.nodes, page)
          return { status: 200, body: { data: out.data, meta: { ...out.meta, parent, truncated: level.truncated } } }
        }
        if (m === 'DELETE') {
          requireAdmin(session)
          const topic = topicParam(r.query, 'topic', opts.maxTopicLength, false)
          return await source.deleteRetained(topic) ? { status: 204 } : fail(404, 'NOT_FOUND', 'no message is retained on this topic')
        }
        break
      case 'shared-groups':
        if (second === undefined && m === 'GET') {
          const q = r.query.get('group')?.toLowerCase()
          const groups = source.sharedGroups().filter(g => q === undefined || g.group.toLowerCase().includes(q))
          return { status: 200, body: paged(groups, pageOf(r.query)) }
        }
        // README "Work queues": the dead letters a group holds, back into the groups they came from
        if (second === 'replay' && more.length === 0 && m === 'POST') {
          requireAdmin(session)
          const from = r.query.get('from')
          if (from === null || from.length === 0) fail(400, 'BAD_REQUEST', 'from: the group holding the dead letters, e.g. $share/dlq/$dlq/#')
          const limit = r.query.has('limit') ? intParam(r.query, 'limit', 0, 1, 1000000) : undefined
          const result = await source.replayDeadLetters(from as string, limit)
          return result === undefined ? fail(404, 'NOT_FOUND', 'no shared group with this key') : { status: 200, body: result }
        }
        break
    }
    return fail(404, 'NOT_FOUND', `no such endpoint: ${m} ${API_PREFIX}${r.segments.join('/')}`)
  }

  return async function handle (r: ApiRequest): Promise<ApiResult> {
    try {
      const changing = isStateChanging(r.method)
      // 2a. a change must come from this origin, logged in or not (login CSRF)
      if (changing && !sameOrigin(r.req, opts.secure)) fail(403, 'FORBIDDEN', 'cross-origin request refused')
      if (r.segments.length === 1 && r.segments[0] === 'login') {
        if (r.method !== 'POST') fail(404, 'NOT_FOUND', 'log in with POST')
        return await login(r)
      }
      // 1. the session
      const session = r.session
      if (session === undefined) return fail(401, 'UNAUTHORIZED', 'log in first')
      // someone is looking: shared groups' depths are worth sampling (not for a scanner without a session)
      history.touch()
      // 2b. the session's CSRF token
      if (changing) {
        const given = r.req.headers[CSRF_HEADER]
        if (!tokenMatches(session.csrfToken, typeof given === 'string' ? given : undefined)) fail(403, 'FORBIDDEN', `missing or wrong ${CSRF_HEADER} header`)
      }
      return await route(r, session)
    } catch (err) {
      if (err instanceof ApiError) return { status: err.status, body: { code: err.code, message: err.message } }
      throw err
    }
  }
}
