/**
 * `culex passwd [-D] [--password PASS] FILE USER` — manage the password file
 * (the counterpart of mosquitto_passwd).
 *
 * - Without -D: create FILE if missing and add USER or replace USER's
 *   password. The password comes from --password, else from a prompt shown
 *   twice with echo off when stdin is a terminal, else from the first line of
 *   stdin (for scripts: `echo "$PASS" | culex passwd FILE USER`).
 * - With -D: delete USER from FILE.
 *
 * Exit codes: 0 success, 1 failure (bad file, unknown user, passwords differ,
 * ...), 2 usage error. The file is rewritten atomically with mode 0600.
 */
import { parseArgs } from 'node:util'
import { StringDecoder } from 'node:string_decoder'
import {
  deleteUser,
  loadPasswordFile,
  setUser,
  usernameProblem,
  writePasswordFile,
  type HashOptions,
  type PasswordDb
} from './password-file.js'

export interface PasswdIo {
  /** When `isTTY`, setRawMode (tty.ReadStream) is used to turn echo off. */
  stdin: NodeJS.ReadableStream & { setRawMode?: (mode: boolean) => unknown }
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  isTTY: boolean
}

export interface PasswdOptions {
  /** Hash strength; tests lower it. Defaults to hashPassword's defaults. */
  hashOptions?: HashOptions
}

export const PASSWD_USAGE = `Usage: culex passwd [-D] [--password PASS] FILE USER

Add USER to the password file FILE (created if missing) or change USER's
password; with -D, delete USER.

  -D, --delete         delete USER
      --password PASS  take the password from the command line (visible to
                       other local users in the process list; prefer stdin)
  -h, --help           show this help

Without --password the password is prompted for twice when stdin is a
terminal, or read from the first line of stdin otherwise.
`

/** MQTT passwords are Binary Data of at most 65535 bytes (MQTT 5.0 §1.5.6). */
const MAX_PASSWORD_CHARS = 65535

/** Ctrl-C at a prompt (raw mode delivers it as a character, not SIGINT). */
class Interrupted extends Error {}

class MismatchError extends Error {}

/**
 * Reads lines from a stream without consuming more than it needs, so one
 * stream can answer two prompts. In raw (terminal) mode it also interprets
 * the editing keys the terminal driver would otherwise handle.
 */
class LineReader {
  private readonly stream: NodeJS.ReadableStream
  private readonly decoder = new StringDecoder('utf8')
  private buffer = ''
  private ended = false
  private skipLf = false
  private wake: (() => void) | undefined
  private readonly onData = (chunk: Buffer | string): void => {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.write(chunk)
    this.wake?.()
  }

  private readonly onEnd = (): void => {
    this.buffer += this.decoder.end()
    this.ended = true
    this.wake?.()
  }

  constructor (stream: NodeJS.ReadableStream) {
    this.stream = stream
    stream.on('data', this.onData)
    stream.on('end', this.onEnd)
    stream.on('error', this.onEnd)
    stream.resume()
  }

  /** The next line without its terminator; undefined at end of input. */
  async readLine (raw: boolean): Promise<string | undefined> {
    let line = ''
    for (;;) {
      while (this.buffer.length > 0) {
        const c = this.buffer[0] as string
        this.buffer = this.buffer.slice(1)
        const skipLf = this.skipLf
        this.skipLf = false
        if (c === '\n' && skipLf) continue
        if (c === '\r' || c === '\n') {
          // Accept \n, \r and \r\n: raw terminals send \r for Enter.
          this.skipLf = c === '\r'
          return line
        }
        if (raw && c === '\u0003') throw new Interrupted()
        if (raw && c === '\u0004') {
          if (line === '') return undefined
          continue
        }
        if (raw && (c === '\u007f' || c === '\b')) {
          line = Array.from(line).slice(0, -1).join('')
          continue
        }
        line += c
        if (line.length > MAX_PASSWORD_CHARS) throw new RangeError('input line too long')
      }
      if (this.ended) return line === '' ? undefined : line
      await new Promise<void>((resolve) => { this.wake = resolve })
      this.wake = undefined
    }
  }

  close (): void {
    this.stream.removeListener('data', this.onData)
    this.stream.removeListener('end', this.onEnd)
    this.stream.removeListener('error', this.onEnd)
    this.stream.pause()
  }
}

async function readPasswordFromTty (io: PasswdIo, reader: LineReader): Promise<string | undefined> {
  const setRaw = typeof io.stdin.setRawMode === 'function' ? io.stdin.setRawMode.bind(io.stdin) : undefined
  // Echo off: in raw mode the terminal shows nothing we do not write.
  setRaw?.(true)
  try {
    io.stderr.write('Password: ')
    const first = await reader.readLine(true)
    io.stderr.write('\n')
    if (first === undefined) return undefined
    io.stderr.write('Reenter password: ')
    const second = await reader.readLine(true)
    io.stderr.write('\n')
    if (second !== first) throw new MismatchError()
    return first
  } finally {
    setRaw?.(false)
  }
}

async function obtainPassword (io: PasswdIo, given: string | undefined): Promise<string | undefined> {
  if (given !== undefined) return given
  const reader = new LineReader(io.stdin)
  try {
    return io.isTTY ? await readPasswordFromTty(io, reader) : await reader.readLine(false)
  } finally {
    reader.close()
  }
}

async function loadOrCreate (file: string): Promise<PasswordDb | undefined> {
  try {
    return await loadPasswordFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

function message (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export async function runPasswdCommand (argv: string[], io: PasswdIo, options: PasswdOptions = {}): Promise<number> {
  const usage = (why: string): number => {
    io.stderr.write(`culex passwd: ${why}\n${PASSWD_USAGE}`)
    return 2
  }
  const fail = (why: string): number => {
    io.stderr.write(`culex passwd: ${why}\n`)
    return 1
  }

  // Step 1: arguments.
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        delete: { type: 'boolean', short: 'D' },
        password: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      },
      allowPositionals: true,
      strict: true
    })
  } catch (err) {
    return usage(message(err))
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    io.stdout.write(PASSWD_USAGE)
    return 0
  }
  if (positionals.length !== 2) return usage('expected FILE and USER')
  const [file, user] = positionals as [string, string]
  const del = values.delete === true
  if (del && values.password !== undefined) return usage('-D takes no password')
  const userProblem = usernameProblem(user)
  if (userProblem !== undefined) return fail(`invalid username: ${userProblem}`)

  try {
    // Step 2: the current file. A file that does not parse is never
    // overwritten: the operator must fix it (the error names the line).
    const existing = await loadOrCreate(file)

    // Step 3a: delete.
    if (del) {
      if (existing === undefined) return fail(`${file}: no such file`)
      if (!deleteUser(existing, user)) return fail(`user ${JSON.stringify(user)} not found in ${file}`)
      await writePasswordFile(file, existing)
      return 0
    }

    // Step 3b: add or update.
    const db = existing ?? new Map()
    const password = await obtainPassword(io, values.password)
    if (password === undefined) return fail('no password given')
    if (password === '') return fail('empty password')
    const creds = await setUser(db, user, password, options.hashOptions)
    if (creds.scram === undefined) {
      io.stderr.write(`culex passwd: warning: the password is not printable ASCII; ${JSON.stringify(user)} can log in with a CONNECT password but not with SCRAM-SHA-256\n`)
    }
    await writePasswordFile(file, db)
    return 0
  } catch (err) {
    if (err instanceof MismatchError) return fail('passwords do not match')
    if (err instanceof Interrupted) return fail('interrupted')
    return fail(message(err))
  }
}
