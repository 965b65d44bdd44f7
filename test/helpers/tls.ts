/** A throwaway self-signed certificate for 127.0.0.1 / localhost, made with openssl. */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCert { dir: string, keyFile: string, certFile: string, cert: Buffer, cleanup: () => void }

export function makeSelfSignedCert (cn = 'localhost'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'culex-tls-'))
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'
  ], { stdio: 'ignore' })
  return { dir, keyFile, certFile, cert: readFileSync(certFile), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
