import t from 'tap'
import { PassThrough, Writable } from 'node:stream'
import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runPasswdCommand, PASSWD_USAGE, type PasswdIo } from '../../lib/auth/passwd-command.js'
import { loadPasswordFile, verifyPassword, type HashOptions } from '../../lib/auth/password-file.js'

const hashOptions: HashOptions = { scrypt: { N: 1024 }, scramIterations: 16 }

class Sink extends Writable {
  text = ''
  override _write (chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString()
    cb()
  }
}

interface FakeIo extends PasswdIo {
  stdin: PassThrough & { setRawMode?: (mode: boolean) => unknown }
  out: Sink
  err: Sink
  rawModes: boolean[]
}

function fakeIo (isTTY: boolean, input?: string): FakeIo {
  const stdin: PassThrough & { setRawMode?: (mode: boolean) => unknown } = new PassThrough()
  const rawModes: boolean[] = []
  if (isTTY) stdin.setRawMode = (mode: boolean) => { rawModes.push(mode); return stdin }
  if (input !== undefined) stdin.end(input)
  const out = new Sink()
  const err = new Sink()
  return { stdin, stdout: out, stderr: err, isTTY, out, err, rawModes }
}

function run (argv: string[], io: PasswdIo) {
  return runPasswdCommand(argv, io, { hashOptions })
}

t.test('--password creates the file (mode 0600) without storing the password', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const io = fakeIo(false)
  t.equal(await run(['--password', 'Hunter2-secret', file, 'alice'], io), 0)
  t.equal(io.err.text, '')
  t.equal(io.out.text, '')
  const text = await readFile(file, 'utf8')
  t.notMatch(text, 'Hunter2-secret')
  t.match(text, /^alice:\$culex\$scrypt\$/m)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const db = await loadPasswordFile(file)
  t.ok(await verifyPassword(db.get('alice')!, 'Hunter2-secret'))
  t.ok(db.get('alice')!.scram, 'SCRAM credentials stored')
})

t.test('adds users to an existing file and updates passwords in place', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  t.equal(await run(['--password', 'one', file, 'alice'], fakeIo(false)), 0)
  t.equal(await run(['--password', 'two', file, 'bob'], fakeIo(false)), 0)
  t.equal(await run(['--password=three', file, 'alice'], fakeIo(false)), 0)
  const db = await loadPasswordFile(file)
  t.same([...db.keys()], ['alice', 'bob'])
  t.ok(await verifyPassword(db.get('alice')!, 'three'))
  t.notOk(await verifyPassword(db.get('alice')!, 'one'))
  t.ok(await verifyPassword(db.get('bob')!, 'two'))
  t.same(await readdir(dir), ['passwd'], 'no temporary files left')
})

t.test('not a TTY: reads the first line of stdin', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const io = fakeIo(false, 'piped pass word\nsecond line ignored\n')
  t.equal(await run([file, 'carol'], io), 0)
  t.same(io.rawModes, [])
  t.equal(io.err.text, '', 'no prompt when not a terminal')
  const db = await loadPasswordFile(file)
  t.ok(await verifyPassword(db.get('carol')!, 'piped pass word'))
  t.notMatch(await readFile(file, 'utf8'), 'piped pass word')

  const crlf = fakeIo(false, 'windows\r\n')
  t.equal(await run([file, 'dave'], crlf), 0)
  t.ok(await verifyPassword((await loadPasswordFile(file)).get('dave')!, 'windows'), 'CRLF stripped')

  const noNewline = fakeIo(false, 'no-newline')
  t.equal(await run([file, 'erin'], noNewline), 0)
  t.ok(await verifyPassword((await loadPasswordFile(file)).get('erin')!, 'no-newline'))
})

t.test('not a TTY: input arriving in pieces', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const io = fakeIo(false)
  const done = run([file, 'frank'], io)
  io.stdin.write('par')
  await new Promise((resolve) => setImmediate(resolve))
  io.stdin.write(Buffer.from('tiäl', 'utf8').subarray(0, 4))
  await new Promise((resolve) => setImmediate(resolve))
  io.stdin.write(Buffer.from('tiäl\n', 'utf8').subarray(4))
  t.equal(await done, 0)
  t.ok(await verifyPassword((await loadPasswordFile(file)).get('frank')!, 'partiäl'), 'a UTF-8 character split across chunks')
  t.match(io.err.text, /warning: .*not printable ASCII.*SCRAM/, 'warns that SCRAM is unavailable')
})

t.test('not a TTY: empty or missing input fails', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const empty = fakeIo(false, '\n')
  t.equal(await run([file, 'x'], empty), 1)
  t.match(empty.err.text, /empty password/)
  const eof = fakeIo(false, '')
  t.equal(await run([file, 'x'], eof), 1)
  t.match(eof.err.text, /no password given/)
  t.same(await readdir(dir), [], 'no file created on failure')
})

t.test('TTY: prompts twice with echo off', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const io = fakeIo(true)
  const done = run([file, 'grace'], io)
  // A raw terminal sends \r for Enter, and DEL for backspace.
  io.stdin.write('tty-passX\u007f')
  io.stdin.write('word\r')
  await new Promise((resolve) => setImmediate(resolve))
  io.stdin.write('tty-password\r')
  t.equal(await done, 0)
  t.same(io.rawModes, [true, false], 'echo turned off, then restored')
  t.equal(io.err.text, 'Password: \nReenter password: \n')
  t.notMatch(io.out.text + io.err.text, 'tty-pass')
  t.ok(await verifyPassword((await loadPasswordFile(file)).get('grace')!, 'tty-password'))
})

t.test('TTY: \\r\\n line endings and both answers in one chunk', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const io = fakeIo(true, 'same\r\nsame\r\n')
  t.equal(await run([file, 'heidi'], io), 0)
  t.ok(await verifyPassword((await loadPasswordFile(file)).get('heidi')!, 'same'))
})

t.test('TTY: mismatched passwords fail and leave the file untouched', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  t.equal(await run(['--password', 'orig', file, 'ivan'], fakeIo(false)), 0)
  const before = await readFile(file, 'utf8')
  const io = fakeIo(true, 'first\rsecond\r')
  t.equal(await run([file, 'ivan'], io), 1)
  t.match(io.err.text, /passwords do not match/)
  t.same(io.rawModes, [true, false], 'echo restored after failure')
  t.equal(await readFile(file, 'utf8'), before)
})

t.test('TTY: Ctrl-C aborts, Ctrl-D at an empty prompt means no password', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  const ctrlC = fakeIo(true, 'abc\u0003')
  t.equal(await run([file, 'judy'], ctrlC), 1)
  t.match(ctrlC.err.text, /interrupted/)
  t.same(ctrlC.rawModes, [true, false])
  const ctrlD = fakeIo(true)
  ctrlD.stdin.write('\u0004')
  t.equal(await run([file, 'judy'], ctrlD), 1)
  t.match(ctrlD.err.text, /no password given/)
  t.same(await readdir(dir), [])
})

t.test('-D deletes a user', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  t.equal(await run(['--password', 'a', file, 'alice'], fakeIo(false)), 0)
  t.equal(await run(['--password', 'b', file, 'bob'], fakeIo(false)), 0)
  await chmod(file, 0o644)
  t.equal(await run(['-D', file, 'alice'], fakeIo(false)), 0)
  t.same([...(await loadPasswordFile(file)).keys()], ['bob'])
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const again = fakeIo(false)
  t.equal(await run(['--delete', file, 'alice'], again), 1)
  t.match(again.err.text, /user "alice" not found/)
  const missing = fakeIo(false)
  t.equal(await run(['-D', join(dir, 'nope'), 'alice'], missing), 1)
  t.match(missing.err.text, /no such file/)
})

t.test('a malformed existing file is reported and never overwritten', async (t) => {
  const dir = t.testdir({ passwd: 'alice:$culex$scrypt$1024\n' })
  const file = join(dir, 'passwd')
  const io = fakeIo(false)
  t.equal(await run(['--password', 'x', file, 'bob'], io), 1)
  t.match(io.err.text, /line 1/)
  t.equal(await readFile(file, 'utf8'), 'alice:$culex$scrypt$1024\n')
  const del = fakeIo(false)
  t.equal(await run(['-D', file, 'alice'], del), 1)
  t.equal(await readFile(file, 'utf8'), 'alice:$culex$scrypt$1024\n')
})

t.test('unreadable file fails with exit 1', { skip: process.getuid?.() === 0 ? 'root can read anything' : false }, async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  await writeFile(file, '')
  await chmod(file, 0o000)
  const io = fakeIo(false)
  t.equal(await run(['--password', 'x', file, 'bob'], io), 1)
  t.match(io.err.text, /EACCES|permission denied/i)
})

t.test('invalid usernames fail with exit 1', async (t) => {
  const dir = t.testdir({})
  for (const user of ['a:b', '#x', '']) {
    const io = fakeIo(false)
    t.equal(await run(['--password', 'x', join(dir, 'passwd'), user], io), 1, JSON.stringify(user))
    t.match(io.err.text, /invalid username/)
  }
  t.same(await readdir(dir), [])
})

t.test('usage errors exit 2', async (t) => {
  const cases: string[][] = [
    [],
    ['onlyfile'],
    ['a', 'b', 'c'],
    ['--bogus', 'f', 'u'],
    ['-D', '--password', 'x', 'f', 'u'],
    ['f', 'u', '--password']
  ]
  for (const argv of cases) {
    const io = fakeIo(false)
    t.equal(await run(argv, io), 2, argv.join(' '))
    t.match(io.err.text, /Usage: culex passwd/)
  }
})

t.test('--help prints usage and exits 0', async (t) => {
  const io = fakeIo(false)
  t.equal(await run(['--help'], io), 0)
  t.equal(io.out.text, PASSWD_USAGE)
})

t.test('-- lets a username start with a dash', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'passwd')
  t.equal(await run(['--password', 'p', '--', file, '-dash'], fakeIo(false)), 0)
  t.same([...(await loadPasswordFile(file)).keys()], ['-dash'])
})
