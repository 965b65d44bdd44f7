// TLS for the connects-tls scenario: one throwaway certificate per harness
// run (made with openssl into a temporary directory, never committed), given
// to every broker, and one pinned protocol version, cipher suite and key
// exchange group. culex has no cipher setting, so the pin is enforced by the
// load generator's client offering nothing else; mosquitto is configured
// with the same pin as well, and the load generator checks what each
// handshake actually negotiated.
import { execFile } from 'node:child_process'
import { chmod, readFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import type { TlsClientSettings } from '../loadgen/jobs.js'
import { tempDir } from './launch.js'

const run = promisify(execFile)

/** What a broker listens with: the same files for every broker of a run. */
export interface BrokerTls {
  readonly keyFile: string
  readonly certFile: string
  /** The self-signed certificate in PEM, which clients trust as their CA. */
  readonly certPem: string
}

/**
 * TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256 over X25519: a suite both Node's
 * bundled OpenSSL and the system OpenSSL under mosquitto offer by default,
 * with a key exchange and signature (RSA 2048) that dominate a handshake.
 */
export const TLS_PIN = {
  version: 'TLSv1.2',
  cipher: 'ECDHE-RSA-AES128-GCM-SHA256',
  group: 'X25519'
} as const

export function clientSettings (tls: BrokerTls): TlsClientSettings {
  return {
    caPem: tls.certPem,
    ciphers: TLS_PIN.cipher,
    minVersion: TLS_PIN.version,
    maxVersion: TLS_PIN.version,
    ecdhCurve: TLS_PIN.group
  }
}

/** mosquitto.conf lines for a TLS listener with the pinned version and suite. */
export function mosquittoTlsListener (port: number, host: string, tls: BrokerTls): string[] {
  return [
    `listener ${port} ${host}`,
    `certfile ${tls.certFile}`,
    `keyfile ${tls.keyFile}`,
    'tls_version tlsv1.2',
    `ciphers ${TLS_PIN.cipher}`
  ]
}

/** A self-signed RSA 2048 certificate for 127.0.0.1, valid for a day. */
export async function makeBrokerTls (): Promise<BrokerTls> {
  const dir = await tempDir('tls')
  const keyFile = path.join(dir, 'key.pem')
  const certFile = path.join(dir, 'cert.pem')
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ])
  // mosquitto started as root drops to its own user before it reads the key:
  // this throwaway key must be readable by it.
  await chmod(dir, 0o755)
  await chmod(keyFile, 0o644)
  return { keyFile, certFile, certPem: await readFile(certFile, 'utf8') }
}
