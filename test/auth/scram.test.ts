import t from 'tap'
import {
  createScramServer,
  deriveScramCredentials,
  hasScramSafeText,
  SCRAM_SALT_BYTES,
  type ScramCredentials,
  type ScramServerOptions
} from '../../lib/auth/scram.js'
import { clientFinal, clientFirst, parseServerFirst, verifyServerFinal } from '../helpers/scram-client.js'

// RFC 7677 §3: user "user", password "pencil".
const RFC = {
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ=='
}

const ITER = 64
const users = new Map<string, ScramCredentials>()
const secret = Buffer.alloc(32, 7)

t.before(async () => {
  users.set('alice', await deriveScramCredentials('correct horse', Buffer.alloc(16, 1), ITER))
  users.set('a,b=c', await deriveScramCredentials('pw', Buffer.alloc(16, 2), ITER))
  users.set('user', await deriveScramCredentials('pencil', Buffer.from(RFC.salt, 'base64'), 4096))
})

function server (options: ScramServerOptions = {}) {
  return createScramServer((name) => users.get(name), { secret, fakeIterations: ITER, ...options })
}

/** Runs a full exchange; returns the server's answers. */
function exchange (user: string, password: string, options: ScramServerOptions = {}) {
  const s = server(options)
  const first = clientFirst(user)
  const started = s.start(first.message)
  if (!('serverFirst' in started)) throw new Error(`start failed: ${started.error}`)
  const final = clientFinal(first, started.serverFirst, password)
  return { final, finished: s.finish(final.message), serverFirst: started.serverFirst }
}

t.test('RFC 7677 §3 example exchange is reproduced byte for byte', async (t) => {
  const s = server({ serverNonce: () => RFC.serverNonce })
  const started = s.start(Buffer.from(RFC.clientFirst))
  t.ok('serverFirst' in started)
  if (!('serverFirst' in started)) return
  t.equal(started.serverFirst.toString(), RFC.serverFirst)
  const finished = s.finish(Buffer.from(RFC.clientFinal))
  t.same(finished.ok, true)
  if (!finished.ok) return
  t.equal(finished.serverFinal.toString(), RFC.serverFinal)
  t.equal(finished.username, 'user')
})

t.test('the test client reproduces the RFC 7677 client messages', async (t) => {
  const first = clientFirst('user', 'rOprNGfwEbeRWgbNEkqO')
  t.equal(first.message.toString(), RFC.clientFirst)
  const final = clientFinal(first, Buffer.from(RFC.serverFirst), 'pencil')
  t.equal(final.message.toString(), RFC.clientFinal)
  t.ok(verifyServerFinal(final, Buffer.from(RFC.serverFinal)))
})

t.test('successful exchange with a random nonce; client verifies the server', async (t) => {
  const { final, finished, serverFirst } = exchange('alice', 'correct horse')
  t.ok(finished.ok)
  if (!finished.ok) return
  t.equal(finished.username, 'alice')
  t.ok(verifyServerFinal(final, finished.serverFinal), 'server proves knowledge of ServerKey')
  const parsed = parseServerFirst(serverFirst)
  t.equal(parsed.iterations, ITER)
  t.ok(parsed.nonce.length > 20, 'server appended its own nonce')
})

t.test('server nonces differ between exchanges', async (t) => {
  const a = exchange('alice', 'correct horse').serverFirst.toString()
  const b = exchange('alice', 'correct horse').serverFirst.toString()
  t.not(parseServerFirst(Buffer.from(a)).nonce, parseServerFirst(Buffer.from(b)).nonce)
})

t.test('usernames with , and = are decoded from =2C and =3D', async (t) => {
  const { finished } = exchange('a,b=c', 'pw')
  t.ok(finished.ok)
  if (finished.ok) t.equal(finished.username, 'a,b=c')
})

t.test('wrong password fails with bad-proof', async (t) => {
  const { final, finished } = exchange('alice', 'wrong horse')
  t.same(finished, { ok: false, error: 'bad-proof' })
  t.notOk(verifyServerFinal(final, Buffer.from('v=' + Buffer.alloc(32).toString('base64'))))
})

t.test('unknown user: first step looks like a real user, proof step fails (RFC 5802 §5)', async (t) => {
  const s1 = server()
  const first = clientFirst('mallory')
  const started = s1.start(first.message)
  t.ok('serverFirst' in started, 'no unknown-user answer at the first step')
  if (!('serverFirst' in started)) return
  const parsed = parseServerFirst(started.serverFirst)
  t.equal(parsed.salt.length, SCRAM_SALT_BYTES, 'fake salt has the real length')
  t.equal(parsed.iterations, ITER, 'fake iteration count is the configured one')
  // Deterministic: asking again shows the same salt, as for a real user.
  const again = server().start(clientFirst('mallory').message)
  t.ok('serverFirst' in again)
  if ('serverFirst' in again) t.same(parseServerFirst(again.serverFirst).salt, parsed.salt)
  // Different users get different salts.
  const other = server().start(clientFirst('trudy').message)
  if ('serverFirst' in other) t.not(parseServerFirst(other.serverFirst).salt.toString('hex'), parsed.salt.toString('hex'))
  // A different server secret gives a different salt.
  const otherSecret = server({ secret: Buffer.alloc(32, 9) }).start(clientFirst('mallory').message)
  if ('serverFirst' in otherSecret) t.not(parseServerFirst(otherSecret.serverFirst).salt.toString('hex'), parsed.salt.toString('hex'))

  const final = clientFinal(first, started.serverFirst, 'anything')
  t.same(s1.finish(final.message), { ok: false, error: 'bad-proof' })
})

t.test("unknownUser: 'reject' answers unknown-user at once", async (t) => {
  t.same(server({ unknownUser: 'reject' }).start(clientFirst('mallory').message), { error: 'unknown-user' })
  t.ok('serverFirst' in server({ unknownUser: 'reject' }).start(clientFirst('alice').message))
})

t.test("gs2 flag 'y' is accepted (we do not offer channel binding, RFC 5802 §6)", async (t) => {
  const s = server()
  const first = clientFirst('alice', undefined, 'y,,')
  const started = s.start(first.message)
  t.ok('serverFirst' in started)
  if (!('serverFirst' in started)) return
  const final = clientFinal(first, started.serverFirst, 'correct horse')
  t.ok(final.message.toString().startsWith('c=eSws,'), 'c= is base64("y,,")')
  t.ok(s.finish(final.message).ok)
})

t.test('authzid equal to the username is accepted, another one is refused', async (t) => {
  const s = server()
  const first = clientFirst('alice', undefined, 'n,a=alice,')
  const started = s.start(first.message)
  t.ok('serverFirst' in started)
  if ('serverFirst' in started) t.ok(s.finish(clientFinal(first, started.serverFirst, 'correct horse').message).ok)
  t.same(server().start(clientFirst('alice', undefined, 'n,a=root,').message), { error: 'malformed' })
})

t.test('malformed client-first-messages are refused', async (t) => {
  const cases: Record<string, string | Buffer> = {
    empty: '',
    'no gs2 header': 'n=alice,r=abc',
    'channel binding requested (p=)': 'p=tls-unique,,n=alice,r=abc',
    'unknown gs2 flag': 'x,,n=alice,r=abc',
    'reserved m= extension': 'n,,m=ext,n=alice,r=abc',
    'missing nonce': 'n,,n=alice',
    'nonce first': 'n,,r=abc,n=alice',
    'empty username': 'n,,n=,r=abc',
    'empty nonce': 'n,,n=alice,r=',
    'bad = escape in username': 'n,,n=al=ice,r=abc',
    'lowercase escape': 'n,,n=a=2cb,r=abc',
    'bad extension': 'n,,n=alice,r=abc,1=x',
    'non-ASCII username': Buffer.from('n,,n=ålice,r=abc', 'utf8'),
    'control character': 'n,,n=alice,r=ab\tc',
    'authzid without a=': 'n,alice,n=alice,r=abc',
    oversized: 'n,,n=alice,r=' + 'x'.repeat(5000)
  }
  for (const [name, message] of Object.entries(cases)) {
    t.same(server().start(Buffer.isBuffer(message) ? message : Buffer.from(message)), { error: 'malformed' }, name)
  }
})

t.test('extensions after the nonce are ignored', async (t) => {
  const s = server()
  const first = clientFirst('alice', 'nonce123')
  const withExt = { ...first, bare: first.bare + ',x=1', message: Buffer.from(first.gs2Header + first.bare + ',x=1') }
  const started = s.start(withExt.message)
  t.ok('serverFirst' in started)
  if ('serverFirst' in started) t.ok(s.finish(clientFinal(withExt, started.serverFirst, 'correct horse').message).ok)
})

t.test('malformed or tampered client-final-messages are refused', async (t) => {
  const tamper: Record<string, (good: string, withoutProof: string) => string> = {
    'no proof': (_g, w) => w,
    'proof not base64': (_g, w) => `${w},p=!!!!`,
    'proof too short': (_g, w) => `${w},p=${Buffer.alloc(16).toString('base64')}`,
    'wrong channel binding (n,, vs y,,)': (g) => g.replace('c=biws', 'c=eSws'),
    'channel binding not base64': (g) => g.replace('c=biws', 'c=b!ws'),
    'nonce changed': (g) => g.replace(/,r=([^,]+)/, ',r=$1x'),
    'attributes reordered': (g) => g.replace(/^c=biws,(r=[^,]+)/, '$1,c=biws'),
    'garbage': () => 'hello',
    'non-ASCII': (g) => g + '\u00e9'
  }
  for (const [name, mutate] of Object.entries(tamper)) {
    const s = server()
    const first = clientFirst('alice')
    const started = s.start(first.message)
    if (!('serverFirst' in started)) { t.fail('start failed'); continue }
    const final = clientFinal(first, started.serverFirst, 'correct horse')
    const mutated = mutate(final.message.toString(), final.withoutProof)
    t.same(s.finish(Buffer.from(mutated, 'utf8')), { ok: false, error: 'malformed' }, name)
  }
})

t.test('a flipped proof bit fails with bad-proof', async (t) => {
  const s = server()
  const first = clientFirst('alice')
  const started = s.start(first.message)
  if (!('serverFirst' in started)) return t.fail('start failed')
  const final = clientFinal(first, started.serverFirst, 'correct horse')
  const proofB64 = final.message.toString().split(',p=')[1] as string
  const proof = Buffer.from(proofB64, 'base64')
  proof[0] = (proof[0] as number) ^ 1
  t.same(s.finish(Buffer.from(`${final.withoutProof},p=${proof.toString('base64')}`)), { ok: false, error: 'bad-proof' })
})

t.test('a client-final replayed into another exchange is refused', async (t) => {
  const { final, finished } = exchange('alice', 'correct horse')
  t.ok(finished.ok)
  const s = server()
  const started = s.start(clientFirst('alice').message)
  t.ok('serverFirst' in started)
  t.same(s.finish(final.message), { ok: false, error: 'malformed' }, 'nonce of the old exchange does not match')
})

t.test('an exchange cannot be reused or driven out of order', async (t) => {
  t.same(server().finish(Buffer.from('c=biws,r=abc,p=' + Buffer.alloc(32).toString('base64'))), { ok: false, error: 'malformed' }, 'finish before start')

  const s = server()
  const first = clientFirst('alice')
  const started = s.start(first.message)
  t.same(s.start(first.message), { error: 'malformed' }, 'second start')
  if (!('serverFirst' in started)) return
  t.same(s.finish(clientFinal(first, started.serverFirst, 'correct horse').message), { ok: false, error: 'malformed' }, 'second start ended the exchange')

  const s2 = server()
  const first2 = clientFirst('alice')
  const started2 = s2.start(first2.message)
  if (!('serverFirst' in started2)) return
  const good = clientFinal(first2, started2.serverFirst, 'correct horse')
  t.ok(s2.finish(good.message).ok)
  t.same(s2.finish(good.message), { ok: false, error: 'malformed' }, 'same final twice')

  const s3 = server()
  const first3 = clientFirst('alice')
  const started3 = s3.start(first3.message)
  if (!('serverFirst' in started3)) return
  t.same(s3.finish(clientFinal(first3, started3.serverFirst, 'bad').message), { ok: false, error: 'bad-proof' })
  t.same(s3.finish(clientFinal(first3, started3.serverFirst, 'correct horse').message), { ok: false, error: 'malformed' }, 'no second guess after a failure')

  const s4 = server()
  t.same(s4.start(Buffer.from('garbage')), { error: 'malformed' })
  t.same(s4.finish(Buffer.from('c=biws,r=abc,p=' + Buffer.alloc(32).toString('base64'))), { ok: false, error: 'malformed' }, 'finish after a failed start')
})

t.test('an injected server nonce must be a valid nonce', async (t) => {
  t.throws(() => server({ serverNonce: () => 'a,b' }).start(clientFirst('alice').message), RangeError)
})

t.test('deriveScramCredentials refuses what SASLprep-for-ASCII cannot prove', async (t) => {
  t.ok(hasScramSafeText('pencil with spaces ~!'))
  t.notOk(hasScramSafeText('pässword'))
  t.notOk(hasScramSafeText('tab\there'))
  t.notOk(hasScramSafeText(''))
  await t.rejects(deriveScramCredentials('pässword', Buffer.alloc(16), 1), RangeError)
  await t.rejects(deriveScramCredentials('ok', Buffer.alloc(16), 0), RangeError)
})
