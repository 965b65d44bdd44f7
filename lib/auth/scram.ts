/**
 * Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for MQTT 5 enhanced
 * authentication (MQTT 5.0 §4.12, Authentication Method "SCRAM-SHA-256").
 *
 * One ScramServer object runs one exchange:
 *
 *   CONNECT  (Authentication Data = client-first-message)  -> start()
 *   AUTH 0x18 (Authentication Data = server-first-message)
 *   AUTH 0x18 (Authentication Data = client-final-message)  -> finish()
 *   CONNACK  (Authentication Data = server-final-message) on success
 *
 * Limitations, by design:
 * - No channel binding: the client may send "n" or "y" as its gs2 flag (RFC
 *   5802 §6: "y" means the client could bind but believes we cannot, which is
 *   true), and "p=..." is refused. SCRAM-SHA-256-PLUS is not offered.
 * - SASLprep (RFC 4013) is implemented only for printable ASCII, where it is
 *   the identity mapping. Usernames in the exchange must be printable ASCII;
 *   passwords outside printable ASCII get no SCRAM credentials at all (see
 *   hasScramSafeText) and can only log in with a plain CONNECT password.
 *   A full SASLprep needs Unicode tables Node does not expose.
 * - No authorization identity other than the authentication identity.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { decodeBase64Strict } from './encoding.js'

const pbkdf2Async = promisify(pbkdf2)

/** The MQTT 5 Authentication Method name (the SASL mechanism name, RFC 7677 §3). */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256'

/** RFC 7677 §4: the iteration count SHOULD be at least 4096. */
export const DEFAULT_SCRAM_ITERATIONS = 4096

/** Salt length used for new credentials (and for fake salts, so both look alike). */
export const SCRAM_SALT_BYTES = 16

/** Output length of SHA-256 / HMAC-SHA-256. */
const HASH_BYTES = 32

/** Messages of a well-behaved client are far below this; it bounds parsing work. */
const MAX_MESSAGE_BYTES = 4096

/** What the server stores per user (RFC 5802 §3 and §5). Never the password. */
export interface ScramCredentials {
  iterations: number
  salt: Buffer
  /** H(ClientKey) */
  storedKey: Buffer
  /** HMAC(SaltedPassword, "Server Key") */
  serverKey: Buffer
}

/**
 * True when SASLprep (RFC 4013) maps `text` to itself, which this module can
 * prove only for printable ASCII (U+0020..U+007E). ASCII control characters
 * are prohibited by SASLprep (RFC 3454 table C.2.1), so they are refused too.
 */
export function hasScramSafeText (text: string): boolean {
  return /^[\x20-\x7e]+$/.test(text)
}

function hmac (key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

function sha256 (data: Buffer): Buffer {
  return createHash('sha256').update(data).digest()
}

function xor (a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length)
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number)
  return out
}

/**
 * Derives the stored SCRAM credentials from a password (RFC 5802 §3):
 *   SaltedPassword := Hi(Normalize(password), salt, i)   (Hi is PBKDF2 with HMAC-SHA-256)
 *   ClientKey      := HMAC(SaltedPassword, "Client Key")
 *   StoredKey      := H(ClientKey)
 *   ServerKey      := HMAC(SaltedPassword, "Server Key")
 */
export async function deriveScramCredentials (password: string, salt: Buffer, iterations: number): Promise<ScramCredentials> {
  if (!hasScramSafeText(password)) {
    throw new RangeError('SCRAM credentials need a printable-ASCII password (SASLprep is implemented for ASCII only)')
  }
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError('SCRAM iteration count must be a positive integer')
  const saltedPassword = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha256')
  const clientKey = hmac(saltedPassword, 'Client Key')
  return {
    iterations,
    salt: Buffer.from(salt),
    storedKey: sha256(clientKey),
    serverKey: hmac(saltedPassword, 'Server Key')
  }
}

export type ScramLookup = (username: string) => ScramCredentials | undefined

export type ScramStartResult =
  | { serverFirst: Buffer }
  | { error: 'unknown-user' | 'malformed' }

export type ScramFinishResult =
  | { ok: true, serverFinal: Buffer, username: string }
  | { ok: false, error: 'bad-proof' | 'malformed' }

export interface ScramServer {
  /** Step 1: client-first-message in, server-first-message out. */
  start (clientFirstMessage: Buffer): ScramStartResult
  /** Step 2: client-final-message in, server-final-message out on success. */
  finish (clientFinalMessage: Buffer): ScramFinishResult
}

export interface ScramServerOptions {
  /**
   * Secret from which fake salts for unknown users are derived. It must be the
   * same for every exchange (or an attacker could ask twice and compare), so
   * the default is one random secret per process. Configure a persistent one
   * to keep fake salts stable across restarts too.
   */
  secret?: Buffer
  /**
   * Iteration count shown for unknown users. Set it to the count real users
   * have (the default matches hashPassword's default), or it gives them away.
   */
  fakeIterations?: number
  /**
   * 'fake' (default): hide unknown users until the proof step (RFC 5802 §5).
   * 'reject': answer start() with 'unknown-user', for a caller that chains
   * several credential sources and must try the next one.
   */
  unknownUser?: 'fake' | 'reject'
  /**
   * Produces the server's part of the nonce. Defaults to 18 random bytes in
   * base64. Tests inject fixed values to replay RFC 7677 §3.
   */
  serverNonce?: () => string
}

const processSecret = randomBytes(32)

type State =
  | { step: 'initial' }
  | {
    step: 'first-sent'
    username: string
    gs2Header: string
    clientFirstBare: string
    serverFirst: string
    nonce: string
    credentials: ScramCredentials
    /** True when credentials were invented for an unknown user. */
    fake: boolean
  }
  | { step: 'done' }

/** RFC 5802 §7: printable = %x21-2B / %x2D-7E (no ','). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/

/** Decodes a message that must be printable ASCII (see module limitations). */
function asciiMessage (message: Buffer): string | undefined {
  if (!Buffer.isBuffer(message) || message.length === 0 || message.length > MAX_MESSAGE_BYTES) return undefined
  for (const byte of message) if (byte < 0x20 || byte > 0x7e) return undefined
  return message.toString('latin1')
}

/**
 * saslname (RFC 5802 §7): ',' and '=' are sent as "=2C" and "=3D"; any other
 * '=' is invalid ("invalid-encoding").
 */
function decodeSaslName (text: string): string | undefined {
  if (text.length === 0) return undefined
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (c === ',') return undefined
    if (c !== '=') { out += c; continue }
    const escape = text.slice(i + 1, i + 3)
    if (escape === '2C') out += ','
    else if (escape === '3D') out += '='
    else return undefined
    i += 2
  }
  return out
}

/** attr-val extensions (RFC 5802 §7): ALPHA "=" value. */
function isExtension (attr: string): boolean {
  return /^[A-Za-z]=/.test(attr)
}

function defaultServerNonce (): string {
  return randomBytes(18).toString('base64')
}

function fakeCredentials (secret: Buffer, username: string, iterations: number): ScramCredentials {
  const salt = hmac(secret, `culex scram fake salt\u0000${username}`).subarray(0, SCRAM_SALT_BYTES)
  return {
    iterations,
    salt,
    storedKey: hmac(secret, `culex scram fake stored key\u0000${username}`),
    serverKey: hmac(secret, `culex scram fake server key\u0000${username}`)
  }
}

export function createScramServer (lookup: ScramLookup, options: ScramServerOptions = {}): ScramServer {
  const secret = options.secret ?? processSecret
  const fakeIterations = options.fakeIterations ?? DEFAULT_SCRAM_ITERATIONS
  const unknownUser = options.unknownUser ?? 'fake'
  const serverNonce = options.serverNonce ?? defaultServerNonce
  let state: State = { step: 'initial' }

  function start (clientFirstMessage: Buffer): ScramStartResult {
    if (state.step !== 'initial') {
      // One exchange per object: a second client-first is a protocol error.
      state = { step: 'done' }
      return { error: 'malformed' }
    }
    state = { step: 'done' }

    // client-first-message = gs2-header client-first-message-bare
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const text = asciiMessage(clientFirstMessage)
    if (text === undefined) return { error: 'malformed' }
    const firstComma = text.indexOf(',')
    const secondComma = text.indexOf(',', firstComma + 1)
    if (firstComma < 0 || secondComma < 0) return { error: 'malformed' }
    const cbindFlag = text.slice(0, firstComma)
    const authzid = text.slice(firstComma + 1, secondComma)
    const gs2Header = text.slice(0, secondComma + 1)
    const clientFirstBare = text.slice(secondComma + 1)

    // Channel binding (RFC 5802 §6): "n" and "y" are acceptable for a server
    // without channel binding support; "p=" asks for binding we cannot do.
    if (cbindFlag !== 'n' && cbindFlag !== 'y') return { error: 'malformed' }

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const attrs = clientFirstBare.split(',')
    // "m" is reserved; its presence MUST cause authentication failure (RFC 5802 §5.1).
    if (attrs[0]?.startsWith('m=') === true) return { error: 'malformed' }
    const userAttr = attrs[0]
    const nonceAttr = attrs[1]
    if (userAttr === undefined || nonceAttr === undefined) return { error: 'malformed' }
    if (!userAttr.startsWith('n=') || !nonceAttr.startsWith('r=')) return { error: 'malformed' }
    if (!attrs.slice(2).every(isExtension)) return { error: 'malformed' }
    const username = decodeSaslName(userAttr.slice(2))
    const clientNonce = nonceAttr.slice(2)
    if (username === undefined || !NONCE.test(clientNonce)) return { error: 'malformed' }

    if (authzid !== '') {
      // Only "act as yourself" is supported: an authzid naming someone else is refused.
      const authz = authzid.startsWith('a=') ? decodeSaslName(authzid.slice(2)) : undefined
      if (authz !== username) return { error: 'malformed' }
    }

    let credentials = lookup(username)
    let fake = false
    if (credentials === undefined) {
      if (unknownUser === 'reject') return { error: 'unknown-user' }
      // Do not reveal at this step that the user is unknown. In the RFC 5802
      // §5 exchange the server-first-message (salt, iteration count) goes out
      // before the client has proved anything, so an 'unknown-user' answer
      // here would let anyone enumerate accounts. Answer instead with a salt
      // and iteration count derived deterministically from a server secret
      // and the username, so repeated attempts see stable values as for a
      // real user; the exchange then fails at the proof step (RFC 5802 §5.1
      // "e": failure may be reported only at the end) exactly as a wrong
      // password does.
      credentials = fakeCredentials(secret, username, fakeIterations)
      fake = true
    }

    const serverPart = serverNonce()
    if (!NONCE.test(serverPart)) throw new RangeError('SCRAM server nonce must be printable ASCII without commas')
    const nonce = clientNonce + serverPart
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
    const serverFirst = `r=${nonce},s=${credentials.salt.toString('base64')},i=${credentials.iterations}`
    state = { step: 'first-sent', username, gs2Header, clientFirstBare, serverFirst, nonce, credentials, fake }
    return { serverFirst: Buffer.from(serverFirst, 'latin1') }
  }

  function finish (clientFinalMessage: Buffer): ScramFinishResult {
    const s = state
    // Whatever happens, this exchange is over: no second guess with the same nonce.
    state = { step: 'done' }
    if (s.step !== 'first-sent') return { ok: false, error: 'malformed' }

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const text = asciiMessage(clientFinalMessage)
    if (text === undefined) return { ok: false, error: 'malformed' }
    const proofAt = text.lastIndexOf(',p=')
    if (proofAt < 0) return { ok: false, error: 'malformed' }
    const withoutProof = text.slice(0, proofAt)
    const proof = decodeBase64Strict(text.slice(proofAt + 3))
    const attrs = withoutProof.split(',')
    const cbAttr = attrs[0]
    const nonceAttr = attrs[1]
    if (proof === undefined || proof.length !== HASH_BYTES) return { ok: false, error: 'malformed' }
    if (cbAttr === undefined || nonceAttr === undefined) return { ok: false, error: 'malformed' }
    if (!cbAttr.startsWith('c=') || !nonceAttr.startsWith('r=')) return { ok: false, error: 'malformed' }
    if (!attrs.slice(2).every(isExtension)) return { ok: false, error: 'malformed' }

    // c= carries base64(gs2-header) (no cbind-data without channel binding);
    // it must repeat the header of the first message (RFC 5802 §5.1, "c").
    const cbind = decodeBase64Strict(cbAttr.slice(2))
    if (cbind === undefined || !cbind.equals(Buffer.from(s.gs2Header, 'latin1'))) return { ok: false, error: 'malformed' }
    // The nonce must be the combined nonce of this exchange; a client-final
    // replayed from another exchange fails here.
    if (nonceAttr.slice(2) !== s.nonce) return { ok: false, error: 'malformed' }

    // RFC 5802 §3:
    //   AuthMessage     := client-first-message-bare + "," + server-first-message + "," + client-final-message-without-proof
    //   ClientSignature := HMAC(StoredKey, AuthMessage)
    //   ClientKey       := ClientProof XOR ClientSignature ; verified by H(ClientKey) == StoredKey
    //   ServerSignature := HMAC(ServerKey, AuthMessage)
    const authMessage = `${s.clientFirstBare},${s.serverFirst},${withoutProof}`
    const clientSignature = hmac(s.credentials.storedKey, authMessage)
    const clientKey = xor(proof, clientSignature)
    const storedKey = s.credentials.storedKey
    const matches = storedKey.length === HASH_BYTES && timingSafeEqual(sha256(clientKey), storedKey)
    if (!matches || s.fake) return { ok: false, error: 'bad-proof' }

    const serverSignature = hmac(s.credentials.serverKey, authMessage)
    return {
      ok: true,
      serverFinal: Buffer.from(`v=${serverSignature.toString('base64')}`, 'latin1'),
      username: s.username
    }
  }

  return { start, finish }
}
