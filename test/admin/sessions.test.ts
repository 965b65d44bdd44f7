import t from 'tap'
import { SessionStore, sessionIdFrom, sessionCookie, clearedCookie, tokenMatches, COOKIE_NAME } from '../../lib/admin/sessions.js'

t.test('sessions: random ids and tokens, idle expiry, bounded', async (t) => {
  let now = 1000
  const store = new SessionStore({ idleMs: 100, maxSessions: 2, now: () => now })
  const a = store.create('alice', 'admin')
  t.match(a.id, /^[A-Za-z0-9_-]{43}$/)
  t.match(a.csrfToken, /^[A-Za-z0-9_-]{43}$/)
  t.not(a.id, a.csrfToken)
  t.equal(store.get(a.id), a)
  now += 99
  t.equal(store.get(a.id), a, 'a request restarts the idle timer')
  now += 99
  t.equal(store.get(a.id), a)
  now += 100
  t.equal(store.get(a.id), undefined, 'idle too long')
  const b = store.create('b', 'viewer')
  const c = store.create('c', 'viewer')
  store.get(b.id)
  const d = store.create('d', 'viewer')
  t.equal(store.size, 2)
  t.equal(store.get(c.id), undefined, 'the least recently used goes first')
  t.equal(store.get(b.id), b)
  t.equal(store.get(d.id), d)
  store.deleteUser('d')
  t.equal(store.get(d.id), undefined)
  store.delete(b.id)
  t.equal(store.get(b.id), undefined)
  t.equal(store.get(undefined), undefined)
})

t.test('cookies', async (t) => {
  t.equal(sessionIdFrom(`x=1; ${COOKIE_NAME}=abc ; y=2`), 'abc')
  t.equal(sessionIdFrom('x=1'), undefined)
  t.equal(sessionIdFrom(undefined), undefined)
  t.equal(sessionCookie('abc', false), `${COOKIE_NAME}=abc; Path=/; HttpOnly; SameSite=Strict`)
  t.equal(sessionCookie('abc', true), `${COOKIE_NAME}=abc; Path=/; HttpOnly; SameSite=Strict; Secure`)
  t.match(clearedCookie(true), /Max-Age=0; Secure$/)
  t.ok(tokenMatches('abc', 'abc'))
  t.notOk(tokenMatches('abc', 'abd'))
  t.notOk(tokenMatches('abc', 'ab'))
  t.notOk(tokenMatches('abc', undefined))
})
