/** What every transport listener offers server.ts. */
import type { AddressInfo } from 'node:net'

export interface Listener {
  readonly name: 'tcp' | 'tls' | 'ws' | 'wss'
  /** the address actually bound (the OS picks the port for "auto") */
  address (): AddressInfo
  /** a URL clients can use, e.g. mqtt://127.0.0.1:1883 */
  url (): string
  /** stop accepting new connections; resolves once the listener is closed */
  close (): Promise<void>
}

/** Port 0 is "off"; "auto" lets the OS pick. */
export function listenPort (port: number | 'auto'): number {
  return port === 'auto' ? 0 : port
}

export function hostForUrl (address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]` : address.address
}
