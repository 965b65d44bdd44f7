/**
 * The HTTP(S) server that carries MQTT over WebSocket (spec 6) at `wsPath`,
 * with `ws@8` and `createWebSocketStream`. Other HTTP endpoints (health,
 * metrics, dashboard) register routes on the same server.
 */
import http from 'node:http'
import https from 'node:https'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { CulexBroker } from '../broker.js'
import { hostForUrl, listenPort, type Listener } from './listener.js'
import { tlsServerOptions, certificateCN, type TlsFiles } from './tcp.js'
import type { TLSSocket } from 'node:tls'
import { CulexError } from '../errors.js'

/** [MQTT-6.0.0-3] the subprotocols culex accepts ("mqttv3.1" for old 3.1 clients). */
export const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>

export interface HttpListener extends Listener {
  /** serves GET `path` on this server */
  route (path: string, handler: RouteHandler): void
}

export interface HttpListenOptions {
  host: string
  port: number | 'auto'
  wsPath: string
  tls?: TlsFiles | undefined
  /** largest WebSocket message accepted, in bytes */
  maxPayload: number
}

export async function listenHttp (broker: CulexBroker, opts: HttpListenOptions): Promise<HttpListener> {
  const routes = new Map<string, RouteHandler>()
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] as string
    const handler = req.method === 'GET' ? routes.get(path) : undefined
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      broker.logger.error({ err, path }, 'HTTP handler failed')
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  }
  // handshake limits: small headers, and a request must arrive quickly
  const limits = { maxHeaderSize: 8192, headersTimeout: 10000, requestTimeout: 15000 }
  const server = opts.tls
    ? https.createServer({ ...tlsServerOptions(opts.tls), ...limits }, onRequest)
    : http.createServer(limits, onRequest)
  const name = opts.tls ? 'wss' as const : 'ws' as const

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    handleProtocols (protocols) {
      for (const p of MQTT_SUBPROTOCOLS) if (protocols.has(p)) return p
      return false
    }
  })

  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== opts.wsPath) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws)
      socket.setNoDelay(true)
      const cn = opts.tls ? certificateCN(req.socket as TLSSocket) : undefined
      broker.handle(stream, { transport: name, remoteAddress: req.socket.remoteAddress, certificateCN: cn })
    })
  })

  server.listen(listenPort(opts.port), opts.host)
  try {
    await once(server, 'listening')
  } catch (err) {
    throw new CulexError('CULEX_ERR_LISTEN_FAILED', [`${name} on ${opts.host}:${opts.port}: ${(err as Error).message}`], { cause: err })
  }
  const address = server.address() as AddressInfo
  return {
    name,
    address: () => address,
    url: () => `${name}://${hostForUrl(address)}:${address.port}${opts.wsPath}`,
    route (path, handler) { routes.set(path, handler) },
    close: () => new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate()
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
