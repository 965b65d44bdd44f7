/**
 * A throwaway PKI for TLS client-certificate tests, made with openssl: a CA,
 * a server certificate for 127.0.0.1 / localhost signed by it, client
 * certificates signed by it, and a client certificate from another CA (one
 * the broker must not trust).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface KeyPair {
  keyFile: string
  certFile: string
  key: Buffer
  cert: Buffer
}

export interface Pki {
  dir: string
  ca: KeyPair
  server: KeyPair
  /** a client certificate signed by the CA, with subject CN = `cn` */
  client (cn: string): KeyPair
  /** a client certificate with subject CN = `cn` from a CA the broker does not know */
  untrustedClient (cn: string): KeyPair
  cleanup (): void
}

function openssl (args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' })
}

function pair (keyFile: string, certFile: string): KeyPair {
  return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) }
}

function makeCa (dir: string, name: string): KeyPair {
  const keyFile = join(dir, `${name}.key`)
  const certFile = join(dir, `${name}.pem`)
  openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'
  ])
  return pair(keyFile, certFile)
}

let serial = 1

function signed (dir: string, ca: KeyPair, name: string, cn: string, extensions: string): KeyPair {
  const keyFile = join(dir, `${name}.key`)
  const csrFile = join(dir, `${name}.csr`)
  const certFile = join(dir, `${name}.pem`)
  const extFile = join(dir, `${name}.ext`)
  writeFileSync(extFile, extensions)
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${cn}`])
  openssl([
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', String(serial++),
    '-out', certFile, '-days', '1', '-extfile', extFile
  ])
  return pair(keyFile, certFile)
}

export function makePki (): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'culex-pki-'))
  const ca = makeCa(dir, 'test-ca')
  const server = signed(dir, ca, 'server', 'localhost',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n')
  let other: KeyPair | undefined
  let n = 0
  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
  return {
    dir,
    ca,
    server,
    client: (cn) => signed(dir, ca, `client-${n++}`, cn, clientExt),
    untrustedClient: (cn) => {
      other ??= makeCa(dir, 'other-ca')
      return signed(dir, other, `untrusted-${n++}`, cn, clientExt)
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}
