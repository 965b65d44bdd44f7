/**
 * The culex password file.
 *
 * Format (UTF-8 text, one user per line):
 *
 *   username:$culex$scrypt$<N>$<r>$<p>$<salt>$<hash>[$scram-sha-256$<i>$<salt>$<StoredKey>$<ServerKey>]
 *
 * - `$culex$scrypt$...`: a salted scrypt hash (RFC 7914) of the UTF-8
 *   password, checked for a plain username/password CONNECT.
 * - `$scram-sha-256$...`: the SCRAM-SHA-256 credentials (RFC 5802 §3, RFC
 *   7677): iteration count, salt, StoredKey, ServerKey. Present only when the
 *   password is printable ASCII, the range where culex can prove SASLprep is
 *   the identity (see scram.ts); other users log in with CONNECT only.
 * - Binary fields are canonical, padded base64 (RFC 4648 §4); numbers are
 *   plain decimal.
 * - Blank lines and lines starting with '#' are ignored. A username is not
 *   empty, contains no ':' and no control characters, does not start with
 *   '#', and is at most 65535 UTF-8 bytes (the MQTT string limit).
 *
 * The password itself is never stored.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { open, readFile, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { CulexError } from '../errors.js'
import { decodeBase64Strict, parsePositiveInt } from './encoding.js'
import {
  DEFAULT_SCRAM_ITERATIONS,
  SCRAM_SALT_BYTES,
  deriveScramCredentials,
  hasScramSafeText,
  type ScramCredentials
} from './scram.js'

export type { ScramCredentials } from './scram.js'

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number
  /** Block size. */
  r: number
  /** Parallelization. */
  p: number
}

export interface ScryptHash extends ScryptParams {
  salt: Buffer
  hash: Buffer
}

export interface Credentials {
  scrypt: ScryptHash
  /** Absent when the password is outside the range SCRAM can use (see file header). */
  scram?: ScramCredentials
}

/** username -> credentials, in file order. */
export type PasswordDb = Map<string, Credentials>

export interface HashOptions {
  scrypt?: Partial<ScryptParams>
  scramIterations?: number
}

/** Interactive-login strength (the scrypt paper's 2^14, r=8, p=1), ~50 ms. */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ N: 16384, r: 8, p: 1 })

const SCRYPT_SALT_BYTES = 16
const SCRYPT_HASH_BYTES = 32
const SCRAM_KEY_BYTES = 32
/** scrypt needs about 128·N·r bytes; a file asking for more than this is refused. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
const MAX_SCRAM_ITERATIONS = 10_000_000
const MAX_USERNAME_BYTES = 65535

const FILE_HEADER = '# culex password file: user:$culex$scrypt$N$r$p$salt$hash$scram-sha-256$iterations$salt$StoredKey$ServerKey\n'

function scryptAsync (password: Buffer, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => { err === null ? resolve(key) : reject(err) })
  })
}

function scryptOptions ({ N, r, p }: ScryptParams): ScryptOptions {
  // Node refuses to run when 128·N·r exceeds maxmem (default 32 MiB); give it
  // what the parameters need, which validateScryptParams has bounded.
  return { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 }
}

/** Why these parameters are unacceptable, or undefined when they are fine. */
function scryptParamsProblem ({ N, r, p }: ScryptParams): string | undefined {
  if (!Number.isSafeInteger(N) || N < 2 || (N & (N - 1)) !== 0) return 'scrypt N must be a power of two of at least 2'
  if (!Number.isSafeInteger(r) || r < 1 || r > 32) return 'scrypt r must be an integer from 1 to 32'
  if (!Number.isSafeInteger(p) || p < 1 || p > 16) return 'scrypt p must be an integer from 1 to 16'
  if (128 * N * r > MAX_SCRYPT_MEMORY) return `scrypt N·r needs more than ${MAX_SCRYPT_MEMORY / 1024 / 1024} MiB`
  return undefined
}

function scramIterationsProblem (iterations: number): string | undefined {
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) {
    return `SCRAM iteration count must be an integer from 1 to ${MAX_SCRAM_ITERATIONS}`
  }
  return undefined
}

/** Why `user` cannot be stored, or undefined when it can. */
export function usernameProblem (user: string): string | undefined {
  if (user.length === 0) return 'username is empty'
  if (user.includes(':')) return "username contains ':'"
  // Control characters would break the line format or hide in terminals.
  if (/[\u0000-\u001f\u007f]/.test(user)) return 'username contains a control character'
  if (user.startsWith('#')) return "username starts with '#' (a comment line)"
  // Lone surrogates cannot be encoded as UTF-8 [MQTT-1.5.4-1].
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(user)) return 'username is not valid Unicode'
  if (Buffer.byteLength(user, 'utf8') > MAX_USERNAME_BYTES) return `username is longer than ${MAX_USERNAME_BYTES} bytes`
  return undefined
}

function assertUsername (user: string): void {
  const problem = usernameProblem(user)
  if (problem !== undefined) throw new CulexError('CULEX_ERR_INVALID_USERNAME', [problem])
}

/** Hashes a password for storage: scrypt always, SCRAM-SHA-256 when the password allows it. */
export async function hashPassword (password: string, options: HashOptions = {}): Promise<Credentials> {
  if (password.length === 0) throw new CulexError('CULEX_ERR_INVALID_PASSWORD', ['password is empty'])
  const params: ScryptParams = { ...DEFAULT_SCRYPT_PARAMS, ...options.scrypt }
  const iterations = options.scramIterations ?? DEFAULT_SCRAM_ITERATIONS
  const problem = scryptParamsProblem(params) ?? scramIterationsProblem(iterations)
  if (problem !== undefined) throw new CulexError('CULEX_ERR_INVALID_HASH_PARAMETERS', [problem])

  const salt = randomBytes(SCRYPT_SALT_BYTES)
  const hash = await scryptAsync(Buffer.from(password, 'utf8'), salt, SCRYPT_HASH_BYTES, scryptOptions(params))
  const creds: Credentials = { scrypt: { ...params, salt, hash } }
  if (hasScramSafeText(password)) {
    creds.scram = await deriveScramCredentials(password, randomBytes(SCRAM_SALT_BYTES), iterations)
  }
  return creds
}

/**
 * Checks a password against stored credentials. The comparison is
 * constant-time (timingSafeEqual); the scrypt work is the same whether or not
 * the password is right. A Buffer is taken as the raw CONNECT password bytes.
 */
export async function verifyPassword (creds: Credentials, password: string | Buffer): Promise<boolean> {
  const problem = scryptParamsProblem(creds.scrypt)
  if (problem !== undefined) throw new CulexError('CULEX_ERR_INVALID_HASH_PARAMETERS', [problem])
  const bytes = typeof password === 'string' ? Buffer.from(password, 'utf8') : password
  const expected = creds.scrypt.hash
  const actual = await scryptAsync(bytes, creds.scrypt.salt, expected.length, scryptOptions(creds.scrypt))
  return timingSafeEqual(actual, expected)
}

let dummyCredentials: Promise<Credentials> | undefined

/**
 * Plain CONNECT check against a password database. For an unknown user the
 * same scrypt work is done against a dummy credential, so response time does
 * not tell which usernames exist.
 */
export async function checkPassword (db: PasswordDb, username: string, password: string | Buffer): Promise<boolean> {
  const creds = db.get(username)
  if (creds !== undefined) return await verifyPassword(creds, password)
  dummyCredentials ??= hashPassword(randomBytes(16).toString('hex'), { scramIterations: 1 })
  await verifyPassword(await dummyCredentials, password)
  return false
}

/** One password file line (without the newline). */
export function formatPasswordLine (user: string, creds: Credentials): string {
  assertUsername(user)
  const { N, r, p, salt, hash } = creds.scrypt
  let line = `${user}:$culex$scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`
  if (creds.scram !== undefined) {
    const { iterations, salt: scramSalt, storedKey, serverKey } = creds.scram
    line += `$scram-sha-256$${iterations}$${scramSalt.toString('base64')}$${storedKey.toString('base64')}$${serverKey.toString('base64')}`
  }
  return line
}

/** Parses password file text; `source` names the file in error messages. */
export function parsePasswordFile (text: string, source = 'password file'): PasswordDb {
  const db: PasswordDb = new Map()
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1
    const fail = (why: string): never => {
      throw new CulexError('CULEX_ERR_PASSWORD_FILE_SYNTAX', [`${source}: line ${lineNo}: ${why}`], { line: lineNo })
    }
    const line = (lines[i] as string).replace(/\r$/, '')
    if (line.trim() === '' || line.startsWith('#')) continue

    const colon = line.indexOf(':')
    if (colon < 0) fail("expected 'username:$culex$scrypt$...', found no ':'")
    const user = line.slice(0, colon)
    const userProblem = usernameProblem(user)
    if (userProblem !== undefined) fail(userProblem)
    if (db.has(user)) fail(`duplicate user ${JSON.stringify(user)}`)

    const fields = line.slice(colon + 1).trimEnd().split('$')
    if (fields[0] !== '' || fields[1] !== 'culex' || fields[2] !== 'scrypt') fail("credentials must start with '$culex$scrypt$'")
    if (fields.length !== 8 && fields.length !== 13) fail(`expected 8 or 13 '$'-separated fields, found ${fields.length}`)

    const int = (index: number, name: string): number => parsePositiveInt(fields[index] as string) ?? fail(`${name} is not a positive integer`)
    const bytes = (index: number, name: string, min: number, max: number): Buffer => {
      const value = decodeBase64Strict(fields[index] as string) ?? fail(`${name} is not valid base64`)
      if (value.length < min || value.length > max) fail(`${name} must be ${min === max ? `${min}` : `${min} to ${max}`} bytes, found ${value.length}`)
      return value
    }

    const params: ScryptParams = { N: int(3, 'scrypt N'), r: int(4, 'scrypt r'), p: int(5, 'scrypt p') }
    const paramsProblem = scryptParamsProblem(params)
    if (paramsProblem !== undefined) fail(paramsProblem)
    const creds: Credentials = {
      scrypt: { ...params, salt: bytes(6, 'scrypt salt', 8, 64), hash: bytes(7, 'scrypt hash', 16, 64) }
    }

    if (fields.length === 13) {
      if (fields[8] !== 'scram-sha-256') fail(`unknown mechanism ${JSON.stringify(fields[8])}, expected 'scram-sha-256'`)
      const iterations = int(9, 'SCRAM iteration count')
      const iterProblem = scramIterationsProblem(iterations)
      if (iterProblem !== undefined) fail(iterProblem)
      creds.scram = {
        iterations,
        salt: bytes(10, 'SCRAM salt', 8, 64),
        storedKey: bytes(11, 'SCRAM StoredKey', SCRAM_KEY_BYTES, SCRAM_KEY_BYTES),
        serverKey: bytes(12, 'SCRAM ServerKey', SCRAM_KEY_BYTES, SCRAM_KEY_BYTES)
      }
    }
    db.set(user, creds)
  }
  return db
}

/** Reads and parses a password file; errors name the file and line. */
export async function loadPasswordFile (path: string): Promise<PasswordDb> {
  const raw = await readFile(path)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw)
  } catch {
    throw new CulexError('CULEX_ERR_PASSWORD_FILE_SYNTAX', [`${path}: not valid UTF-8`])
  }
  return parsePasswordFile(text, path)
}

export function formatPasswordFile (db: PasswordDb): string {
  let text = FILE_HEADER
  for (const [user, creds] of db) text += formatPasswordLine(user, creds) + '\n'
  return text
}

/**
 * Writes the file atomically: a temporary file in the same directory, mode
 * 0600, fsync'd, then renamed over `path`. Readers (a broker reloading the
 * file) see the old or the new content, never a torn one; a crash leaves at
 * worst a stray temporary file.
 */
export async function writePasswordFile (path: string, db: PasswordDb): Promise<void> {
  const text = formatPasswordFile(db)
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  // 'wx': never follow or reuse an existing file at the temporary name.
  const fh = await open(tmp, 'wx', 0o600)
  try {
    try {
      // The umask can only remove bits from 0600, but be explicit.
      await fh.chmod(0o600)
      await fh.writeFile(text, 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  // Persist the rename itself. Not every platform can fsync a directory.
  try {
    const dh = await open(dir, 'r')
    try { await dh.sync() } finally { await dh.close() }
  } catch {}
}

/** Adds or replaces `user`; returns the stored credentials. */
export async function setUser (db: PasswordDb, user: string, password: string, options?: HashOptions): Promise<Credentials> {
  assertUsername(user)
  const creds = await hashPassword(password, options)
  db.set(user, creds)
  return creds
}

/** Removes `user`; returns false when there was no such user. */
export function deleteUser (db: PasswordDb, user: string): boolean {
  return db.delete(user)
}
