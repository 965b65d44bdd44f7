/**
 * The admin listener: an HTTP(S) server of its own (adminHost:adminPort)
 * that serves the dashboard (/ui/), its JSON API (/api/v1/), and /metrics,
 * /healthz and /readyz. The MQTT listeners never serve the dashboard or the
 * API. Every request: 1. the Host header is checked (DNS rebinding);
 * 2. the security headers are set; 3. the route answers.
 */
import http from 'node:http'
import https from 'node:https'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import type { ReadinessReport } from '../metrics/health.js'
import type { TlsFiles } from '../transports/tcp.js'
import { tlsServerOptions } from '../transports/tcp.js'
import { hostForUrl, listenPort } from '../transports/listener.js'
import { CulexError } from '../errors.js'
import { API_PREFIX, MAX_BODY, ApiError, createApi, type ApiResult, type Authenticate } from './api.js'
import { RateHistory } from './history.js'
import { SECURITY_HEADERS, hostAllowed } from './guard.js'
import { SessionStore, clearedCookie, sessionCookie, sessionIdFrom } from './sessions.js'
import { loadStaticFiles, type StaticFile } from './static.js'
import type { AdminSource } from './source.js'

export interface AdminServerOptions {
  host: string
  port: number | 'auto'
  tls?: TlsFiles | undefined
  source: AdminSource
  authenticate: Authenticate
  readiness: () => Promise<ReadinessReport | undefined>
  /** the Prometheus text; undefined when metrics are off */
  scrape: () => Promise<string | undefined>
  maxTopicLength: number
  logger: Logger
  /** history ticks, ms; default 1000 */
  sampleIntervalMs?: number
}

export interface AdminServer {
  address (): AddressInfo
  url (): string
  readonly sessions: SessionStore
  readonly history: RateHistory
  close (): Promise<void>
}

class BodyError extends Error {}

async function readJson (req: http.IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? ''
  if (!/^application\/json\b/i.test(type)) throw new BodyError('expected Content-Type: application/json')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new BodyError(`the body is larger than ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch {
    throw new BodyError('the body is not valid JSON')
  }
}

export async function startAdminServer (opts: AdminServerOptions): Promise<AdminServer> {
  const secure = opts.tls !== undefined
  const sessions = new SessionStore()
  const history = new RateHistory({ totals: () => opts.source.totals(), groups: () => opts.source.sharedGroups(), intervalMs: opts.sampleIntervalMs })
  const files = loadStaticFiles()
  const api = createApi({
    source: opts.source,
    history,
    sessions,
    authenticate: opts.authenticate,
    secure,
    maxTopicLength: opts.maxTopicLength,
    cookie: (id) => sessionCookie(id, secure),
    clearCookie: () => clearedCookie(secure)
  })
  let port = 0

  const send = (res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body?: string | Buffer): void => {
    res.writeHead(status, { ...SECURITY_HEADERS, ...headers }).end(body)
  }
  const sendJson = (res: http.ServerResponse, result: ApiResult): void => {
    const headers = { 'cache-control': 'no-store', ...result.headers }
    if (result.body === undefined) send(res, result.status, headers)
    else send(res, result.status, { ...headers, 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(result.body))
  }
  const sendFile = (req: http.IncomingMessage, res: http.ServerResponse, f: StaticFile): void => {
    const headers = { 'content-type': f.type, etag: f.etag, 'cache-control': 'no-cache' }
    if (req.headers['if-none-match'] === f.etag) send(res, 304, headers)
    else send(res, 200, headers, req.method === 'HEAD' ? undefined : f.body)
  }

  async function onRequest (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // 1. DNS rebinding: the page must have asked for this server by a name it has
    if (!hostAllowed(req.headers.host, port)) {
      send(res, 403, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, JSON.stringify({ code: 'FORBIDDEN', message: 'Host header not accepted' }))
      return
    }
    const url = new URL(req.url ?? '/', 'http://admin.invalid')
    const path = url.pathname
    const method = req.method ?? 'GET'
    if (path.startsWith(API_PREFIX)) {
      let segments: string[]
      try {
        segments = path.slice(API_PREFIX.length).split('/').filter(s => s !== '').map(decodeURIComponent)
      } catch {
        sendJson(res, { status: 400, body: { code: 'BAD_REQUEST', message: 'malformed percent-encoding in the path' } })
        return
      }
      const result = await api({
        req,
        method,
        segments,
        query: url.searchParams,
        session: sessions.get(sessionIdFrom(req.headers.cookie)),
        body: async () => {
          try {
            return await readJson(req)
          } catch (err) {
            if (err instanceof BodyError) throw new ApiError(400, 'BAD_REQUEST', err.message)
            throw err
          }
        }
      })
      sendJson(res, result)
      return
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, 405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }, 'method not allowed\n')
      return
    }
    if (path === '/healthz') {
      sendJson(res, { status: 200, body: { status: 'ok' } })
    } else if (path === '/readyz') {
      const report = await opts.readiness()
      sendJson(res, { status: report?.status === 'ready' ? 200 : 503, body: report ?? { status: 'not ready' } })
    } else if (path === '/metrics') {
      const text = await opts.scrape()
      if (text === undefined) send(res, 404, { 'content-type': 'text/plain' }, 'metrics are off\n')
      else send(res, 200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' }, text)
    } else if (path === '/' || path === '/ui') {
      send(res, 302, { location: '/ui/' })
    } else if (path.startsWith('/ui/')) {
      const f = files.get(path === '/ui/' ? 'index.html' : path.slice('/ui/'.length))
      if (f === undefined) send(res, 404, { 'content-type': 'text/plain' }, 'not found\n')
      else sendFile(req, res, f)
    } else {
      send(res, 404, { 'content-type': 'text/plain' }, 'not found\n')
    }
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    onRequest(req, res).catch((err: unknown) => {
      opts.logger.error({ err, path: req.url }, 'admin HTTP handler failed')
      if (!res.headersSent) res.writeHead(500, { ...SECURITY_HEADERS, 'cache-control': 'no-store' })
      res.end()
    })
  }
  const limits = { maxHeaderSize: 8192, headersTimeout: 10000, requestTimeout: 15000 }
  const server = opts.tls
    ? https.createServer({ ...tlsServerOptions({ ...opts.tls, requireCertificate: false }), ...limits }, handler)
    : http.createServer(limits, handler)
  server.listen(listenPort(opts.port), opts.host)
  try {
    await once(server, 'listening')
  } catch (err) {
    throw new CulexError('CULEX_ERR_LISTEN_FAILED', [`admin on ${opts.host}:${opts.port}: ${(err as Error).message}`], { cause: err })
  }
  const address = server.address() as AddressInfo
  port = address.port
  history.start()
  return {
    address: () => address,
    url: () => `${secure ? 'https' : 'http'}://${hostForUrl(address)}:${address.port}/ui/`,
    sessions,
    history,
    close: () => new Promise<void>((resolve) => {
      history.stop()
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
