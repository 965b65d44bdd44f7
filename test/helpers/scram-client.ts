/**
 * A SCRAM-SHA-256 client for tests, written from RFC 5802 §3/§5/§7 and RFC
 * 7677 independently of lib/auth/scram.ts, so that the server is checked
 * against the RFC rather than against itself.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'

export interface ClientFirst {
  /** client-first-message, to send as Authentication Data in CONNECT. */
  message: Buffer
  gs2Header: string
  bare: string
  clientNonce: string
}

export interface ClientFinal {
  /** client-final-message, to send as Authentication Data in AUTH. */
  message: Buffer
  /** The ServerSignature the server must prove in server-final-message. */
  expectedServerSignature: Buffer
  /** client-final-message-without-proof, for tests that tamper with messages. */
  withoutProof: string
  authMessage: string
}

function saslName (name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C')
}

export function clientFirst (user: string, clientNonce: string = randomBytes(18).toString('base64'), gs2Header = 'n,,'): ClientFirst {
  const bare = `n=${saslName(user)},r=${clientNonce}`
  return { message: Buffer.from(gs2Header + bare), gs2Header, bare, clientNonce }
}

function hmac (key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** Parses server-first-message; throws when it does not follow RFC 5802 §7. */
export function parseServerFirst (serverFirst: Buffer): { nonce: string, salt: Buffer, iterations: number } {
  const m = /^r=([^,]+),s=([A-Za-z0-9+/=]+),i=([0-9]+)$/.exec(serverFirst.toString())
  if (m === null) throw new Error(`bad server-first-message: ${serverFirst.toString()}`)
  return { nonce: m[1] as string, salt: Buffer.from(m[2] as string, 'base64'), iterations: Number(m[3]) }
}

export function clientFinal (first: ClientFirst, serverFirst: Buffer, password: string): ClientFinal {
  const { nonce, salt, iterations } = parseServerFirst(serverFirst)
  // RFC 5802 §5.1 "r": the server's nonce MUST start with the client's.
  if (!nonce.startsWith(first.clientNonce)) throw new Error('server nonce does not extend the client nonce')
  const saltedPassword = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = hmac(saltedPassword, 'Client Key')
  const storedKey = createHash('sha256').update(clientKey).digest()
  const withoutProof = `c=${Buffer.from(first.gs2Header).toString('base64')},r=${nonce}`
  const authMessage = `${first.bare},${serverFirst.toString()},${withoutProof}`
  const clientSignature = hmac(storedKey, authMessage)
  const proof = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) proof[i] = (clientKey[i] as number) ^ (clientSignature[i] as number)
  const serverKey = hmac(saltedPassword, 'Server Key')
  return {
    message: Buffer.from(`${withoutProof},p=${proof.toString('base64')}`),
    expectedServerSignature: hmac(serverKey, authMessage),
    withoutProof,
    authMessage
  }
}

/** True when server-final-message proves the server knows ServerKey. */
export function verifyServerFinal (final: ClientFinal, serverFinal: Buffer): boolean {
  const m = /^v=([A-Za-z0-9+/=]+)$/.exec(serverFinal.toString())
  if (m === null) return false
  const signature = Buffer.from(m[1] as string, 'base64')
  return signature.length === final.expectedServerSignature.length && timingSafeEqual(signature, final.expectedServerSignature)
}
