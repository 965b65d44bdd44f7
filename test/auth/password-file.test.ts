import t from 'tap'
import { readFile, readdir, stat, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import {
  checkPassword,
  DEFAULT_SCRYPT_PARAMS,
  deleteUser,
  formatPasswordLine,
  hashPassword,
  loadPasswordFile,
  parsePasswordFile,
  setUser,
  verifyPassword,
  writePasswordFile,
  type HashOptions,
  type PasswordDb
} from '../../lib/auth/password-file.js'
import { CulexError } from '../../lib/errors.js'
import { createScramServer } from '../../lib/auth/scram.js'
import { clientFinal, clientFirst, verifyServerFinal } from '../helpers/scram-client.js'

// Cheap parameters keep the suite fast; one test below uses the defaults.
const FAST: HashOptions = { scrypt: { N: 1024 }, scramIterations: 16 }

t.test('hashPassword + verifyPassword', async (t) => {
  const creds = await hashPassword('s3cret pass', FAST)
  t.equal(creds.scrypt.N, 1024)
  t.equal(creds.scrypt.r, DEFAULT_SCRYPT_PARAMS.r)
  t.equal(creds.scrypt.salt.length, 16)
  t.equal(creds.scrypt.hash.length, 32)
  t.ok(creds.scram, 'printable ASCII password gets SCRAM credentials')
  t.equal(creds.scram?.iterations, 16)
  t.equal(await verifyPassword(creds, 's3cret pass'), true)
  t.equal(await verifyPassword(creds, Buffer.from('s3cret pass')), true, 'raw CONNECT bytes')
  t.equal(await verifyPassword(creds, 's3cret pasS'), false)
  t.equal(await verifyPassword(creds, ''), false)
  t.equal(await verifyPassword(creds, 's3cret pass '), false)
  const again = await hashPassword('s3cret pass', FAST)
  t.not(again.scrypt.salt.toString('hex'), creds.scrypt.salt.toString('hex'), 'fresh salt each time')
  t.not(again.scrypt.hash.toString('hex'), creds.scrypt.hash.toString('hex'))
})

t.test('default parameters are N=16384, r=8, p=1 and SCRAM i=4096', async (t) => {
  const creds = await hashPassword('default')
  t.same([creds.scrypt.N, creds.scrypt.r, creds.scrypt.p], [16384, 8, 1])
  t.equal(creds.scram?.iterations, 4096)
  t.ok(await verifyPassword(creds, 'default'))
})

t.test('checkPassword: right, wrong, unknown user (which still costs a hash)', async (t) => {
  const db: PasswordDb = new Map()
  await setUser(db, 'alice', 'pw', FAST)
  t.equal(await checkPassword(db, 'alice', 'pw'), true)
  t.equal(await checkPassword(db, 'alice', Buffer.from('pw')), true)
  t.equal(await checkPassword(db, 'alice', 'nope'), false)
  t.equal(await checkPassword(db, 'mallory', 'pw'), false)
  t.equal(await checkPassword(db, 'mallory', ''), false)
  // The dummy hash uses the default (N=16384) cost, like a default user.
  const start = process.hrtime.bigint()
  await checkPassword(db, 'mallory', 'pw')
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.ok(ms > 1, `unknown user took ${ms.toFixed(1)} ms of hashing`)
})

t.test('non-ASCII passwords: scrypt works, SCRAM credentials are omitted', async (t) => {
  const creds = await hashPassword('pässwörd', FAST)
  t.equal(creds.scram, undefined)
  t.ok(await verifyPassword(creds, 'pässwörd'))
  t.ok(await verifyPassword(creds, Buffer.from('pässwörd', 'utf8')))
  t.notOk(await verifyPassword(creds, 'passwort'))
})

t.test('hashPassword refuses empty passwords and bad parameters', async (t) => {
  await t.rejects(hashPassword('', FAST), { code: 'CULEX_ERR_INVALID_PASSWORD' })
  await t.rejects(hashPassword('x', { scrypt: { N: 1000 } }), { code: 'CULEX_ERR_INVALID_HASH_PARAMETERS' })
  await t.rejects(hashPassword('x', { scrypt: { N: 1024, r: 0 } }), { code: 'CULEX_ERR_INVALID_HASH_PARAMETERS' })
  await t.rejects(hashPassword('x', { scrypt: { N: 2 ** 20, r: 8 } }), { code: 'CULEX_ERR_INVALID_HASH_PARAMETERS' }, 'more than 256 MiB')
  await t.rejects(hashPassword('x', { ...FAST, scramIterations: 0 }), { code: 'CULEX_ERR_INVALID_HASH_PARAMETERS' })
})

t.test('stored SCRAM credentials authenticate a SCRAM exchange', async (t) => {
  const db: PasswordDb = new Map()
  await setUser(db, 'alice', 'pencil', FAST)
  const server = createScramServer((u) => db.get(u)?.scram)
  const first = clientFirst('alice')
  const started = server.start(first.message)
  if (!('serverFirst' in started)) return t.fail('start failed')
  const final = clientFinal(first, started.serverFirst, 'pencil')
  const finished = server.finish(final.message)
  t.ok(finished.ok)
  if (finished.ok) t.ok(verifyServerFinal(final, finished.serverFinal))
})

t.test('write and load round trip; the file never contains the password; mode 0600', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'passwd')
  const db: PasswordDb = new Map()
  await setUser(db, 'alice', 'alice-password-123', FAST)
  await setUser(db, 'bob smith', 'bøb-passwörd', FAST)
  await setUser(db, 'ユーザー', 'unicode-user-pw', FAST)
  await writePasswordFile(path, db)

  const text = await readFile(path, 'utf8')
  t.notMatch(text, 'alice-password-123')
  t.notMatch(text, 'bøb-passwörd')
  t.notMatch(text, 'unicode-user-pw')
  for (const pw of ['alice-password-123', 'unicode-user-pw']) {
    t.notMatch(text, Buffer.from(pw).toString('base64').slice(0, 12), 'not even base64-encoded')
  }
  t.match(text, /^alice:\$culex\$scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\$scram-sha-256\$16\$/m)
  t.match(text, /^bob smith:\$culex\$scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/m, 'no SCRAM part for a non-ASCII password')
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.same(await readdir(dir), ['passwd'], 'no temporary file left behind')

  const loaded = await loadPasswordFile(path)
  t.same([...loaded.keys()], ['alice', 'bob smith', 'ユーザー'], 'file order is kept')
  t.ok(await verifyPassword(loaded.get('alice')!, 'alice-password-123'))
  t.notOk(await verifyPassword(loaded.get('alice')!, 'unicode-user-pw'))
  t.ok(await verifyPassword(loaded.get('bob smith')!, 'bøb-passwörd'))
  t.ok(await verifyPassword(loaded.get('ユーザー')!, 'unicode-user-pw'))
  t.same(loaded.get('alice')!.scram, db.get('alice')!.scram, 'SCRAM credentials survive the round trip')
})

t.test('writePasswordFile replaces an existing file atomically and tightens its mode', async (t) => {
  const dir = t.testdir({ passwd: 'old content\n' })
  const path = join(dir, 'passwd')
  await chmod(path, 0o644)
  const db: PasswordDb = new Map()
  await setUser(db, 'u', 'p', FAST)
  await writePasswordFile(path, db)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.same([...(await loadPasswordFile(path)).keys()], ['u'])
  t.same(await readdir(dir), ['passwd'])
})

t.test('writePasswordFile into a missing directory fails and leaves nothing', async (t) => {
  const dir = t.testdir({})
  await t.rejects(writePasswordFile(join(dir, 'nope', 'passwd'), new Map()), { code: 'ENOENT' })
  t.same(await readdir(dir), [])
})

t.test('writePasswordFile cleans up its temporary file when the rename fails', async (t) => {
  const dir = t.testdir({ passwd: {} })
  // The target is a non-empty directory: rename(2) fails after the temp file is written.
  await writeFile(join(dir, 'passwd', 'keep'), 'x')
  await t.rejects(writePasswordFile(join(dir, 'passwd'), new Map()))
  t.same((await readdir(dir)).sort(), ['passwd'])
})

t.test('setUser replaces, deleteUser removes', async (t) => {
  const db: PasswordDb = new Map()
  await setUser(db, 'u', 'one', FAST)
  await setUser(db, 'u', 'two', FAST)
  t.equal(db.size, 1)
  t.notOk(await verifyPassword(db.get('u')!, 'one'))
  t.ok(await verifyPassword(db.get('u')!, 'two'))
  t.equal(deleteUser(db, 'u'), true)
  t.equal(deleteUser(db, 'u'), false)
  t.equal(db.size, 0)
})

t.test('usernames that cannot be stored are refused', async (t) => {
  const db: PasswordDb = new Map()
  for (const bad of ['', 'a:b', 'line\nbreak', 'tab\there', 'nul\u0000', '#comment', 'bad\ud800', 'x'.repeat(65536)]) {
    await t.rejects(setUser(db, bad, 'pw', FAST), { code: 'CULEX_ERR_INVALID_USERNAME' }, JSON.stringify(bad.slice(0, 20)))
  }
  t.equal(db.size, 0)
  t.throws(() => formatPasswordLine('a:b', { scrypt: { N: 2, r: 1, p: 1, salt: Buffer.alloc(16), hash: Buffer.alloc(32) } }))
})

t.test('blank lines, comments and CRLF are accepted', async (t) => {
  const db: PasswordDb = new Map()
  await setUser(db, 'u', 'pw', FAST)
  const line = formatPasswordLine('u', db.get('u')!)
  const parsed = parsePasswordFile(`# header\n\n   \r\n${line}\r\n# trailing\n`)
  t.same([...parsed.keys()], ['u'])
  t.ok(await verifyPassword(parsed.get('u')!, 'pw'))
  t.equal(parsePasswordFile('').size, 0)
})

t.test('malformed lines are refused with the line number', async (t) => {
  const db: PasswordDb = new Map()
  await setUser(db, 'good', 'pw', FAST)
  const good = formatPasswordLine('good', db.get('good')!)
  const scrypt = good.slice('good:'.length).split('$scram-sha-256$')[0] as string
  const scram = good.split('$scram-sha-256$')[1] as string
  const b64 = (n: number) => Buffer.alloc(n, 1).toString('base64')
  const cases: Array<[string, RegExp]> = [
    ['no colon here', /no ':'/],
    [':' + scrypt, /username is empty/],
    ['#x:' + scrypt, /.^/],
    ['u:plain-text-password', /must start with '\$culex\$scrypt\$'/],
    ['u:$culex$bcrypt$1$2$3$4$5', /must start with/],
    ['u:$culex$scrypt$1024$8$1$' + b64(16), /expected 8 or 13/],
    ['u:$culex$scrypt$1000$8$1$' + b64(16) + '$' + b64(32), /power of two/],
    ['u:$culex$scrypt$1024$0$1$' + b64(16) + '$' + b64(32), /not a positive integer/],
    ['u:$culex$scrypt$01024$8$1$' + b64(16) + '$' + b64(32), /not a positive integer/],
    ['u:$culex$scrypt$1024$8$99$' + b64(16) + '$' + b64(32), /scrypt p/],
    ['u:$culex$scrypt$1048576$64$1$' + b64(16) + '$' + b64(32), /scrypt r/],
    ['u:$culex$scrypt$1048576$8$1$' + b64(16) + '$' + b64(32), /MiB/],
    ['u:$culex$scrypt$1024$8$1$not*base64$' + b64(32), /scrypt salt is not valid base64/],
    ['u:$culex$scrypt$1024$8$1$' + b64(4) + '$' + b64(32), /scrypt salt must be 8 to 64 bytes/],
    ['u:$culex$scrypt$1024$8$1$' + b64(16) + '$' + b64(8), /scrypt hash must be 16 to 64 bytes/],
    ['u:$culex$scrypt$1024$8$1$' + b64(16) + '$QQ', /not valid base64/],
    ['u:$culex$scrypt$1024$8$1$' + b64(16) + '$QR==', /not valid base64/],
    ['u:' + scrypt + '$scram-sha-1$' + scram, /unknown mechanism "scram-sha-1"/],
    ['u:' + scrypt + '$scram-sha-256$0$' + scram.split('$').slice(1).join('$'), /SCRAM iteration count is not a positive integer/],
    ['u:' + scrypt + '$scram-sha-256$16$' + b64(16) + '$' + b64(31) + '$' + b64(32), /StoredKey must be 32 bytes/],
    ['u:' + scrypt + '$scram-sha-256$16$' + b64(16) + '$' + b64(32) + '$' + b64(33), /ServerKey must be 32 bytes/],
    ['u:' + scrypt + '$scram-sha-256$16$' + b64(16) + '$' + b64(32), /expected 8 or 13/],
    ['good:' + scrypt, /duplicate user "good"/],
    ['bad\u0001user:' + scrypt, /control character/]
  ]
  for (const [line, re] of cases) {
    const text = `# comment\n${good}\n${line}\n`
    if (line.startsWith('#')) {
      t.equal(parsePasswordFile(text).size, 1, 'a line starting with # is a comment')
      continue
    }
    const err = t.throws(() => parsePasswordFile(text, 'pw.txt')) as unknown
    t.ok(err instanceof CulexError, line)
    if (!(err instanceof CulexError)) continue
    t.equal(err.code, 'CULEX_ERR_PASSWORD_FILE_SYNTAX')
    t.equal(err.line, 3, `${line.slice(0, 40)} -> line 3`)
    t.match(err.message, /^pw\.txt: line 3: /)
    t.match(err.message, re, line.slice(0, 60))
  }
})

t.test('loadPasswordFile names the file; missing files reject with ENOENT; bad UTF-8 is refused', async (t) => {
  const dir = t.testdir({ bad: 'user-without-hash\n', latin1: Buffer.from([0x75, 0xe9, 0x3a, 0x24]) })
  await t.rejects(loadPasswordFile(join(dir, 'bad')), { code: 'CULEX_ERR_PASSWORD_FILE_SYNTAX', line: 1, message: new RegExp(`${dir}/bad: line 1`) })
  await t.rejects(loadPasswordFile(join(dir, 'latin1')), { message: /not valid UTF-8/ })
  await t.rejects(loadPasswordFile(join(dir, 'missing')), { code: 'ENOENT' })
})
