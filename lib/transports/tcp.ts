/** MQTT over TCP (spec 4.2) and over TLS. */
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import type { CulexBroker } from '../broker.js'
import { hostForUrl, listenPort, type Listener } from './listener.js'
import { CulexError } from '../errors.js'

export interface TlsFiles {
  key: Buffer
  cert: Buffer
  ca?: Buffer | undefined
  /** ask for a client certificate and refuse connections without a valid one */
  requireCertificate?: boolean
}

export function tlsServerOptions (files: TlsFiles): tls.TlsOptions {
  return {
    key: files.key,
    cert: files.cert,
    ca: files.ca,
    requestCert: files.requireCertificate === true,
    rejectUnauthorized: files.requireCertificate === true
  }
}

/** The CN of the verified client certificate, if any. */
export function certificateCN (socket: tls.TLSSocket): string | undefined {
  if (!socket.authorized) return undefined
  const cn = socket.getPeerCertificate().subject?.CN
  return typeof cn === 'string' && cn.length > 0 ? cn : undefined
}

export async function listenTcp (broker: CulexBroker, host: string, port: number | 'auto'): Promise<Listener> {
  // small MQTT packets must not wait for Nagle's algorithm: the server sets
  // TCP_NODELAY on each accepted handle, before its Socket is made
  const server = net.createServer({ noDelay: true }, (socket) => {
    broker.handle(socket, { transport: 'tcp', remoteAddress: socket.remoteAddress })
  })
  return listen(server, 'tcp', 'mqtt', host, port)
}

export async function listenTls (broker: CulexBroker, host: string, port: number | 'auto', files: TlsFiles): Promise<Listener> {
  const server = tls.createServer({ ...tlsServerOptions(files), noDelay: true }, (socket) => {
    broker.handle(socket, { transport: 'tls', remoteAddress: socket.remoteAddress, certificateCN: certificateCN(socket) })
  })
  server.on('tlsClientError', (err) => broker.logger.debug({ err: err.message }, 'TLS handshake failed'))
  return listen(server, 'tls', 'mqtts', host, port)
}

async function listen (server: net.Server, name: 'tcp' | 'tls', scheme: string, host: string, port: number | 'auto'): Promise<Listener> {
  server.listen(listenPort(port), host)
  try {
    await once(server, 'listening')
  } catch (err) {
    throw new CulexError('CULEX_ERR_LISTEN_FAILED', [`${name} on ${host}:${port}: ${(err as Error).message}`], { cause: err })
  }
  const address = server.address() as net.AddressInfo
  return {
    name,
    address: () => address,
    url: () => `${scheme}://${hostForUrl(address)}:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
