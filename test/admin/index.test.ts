import t from 'tap'
import { join } from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dashboardAuthenticator } from '../../lib/admin/index.js'
import { SecurityPolicy } from '../../lib/auth/policy.js'
import { FailureDelay } from '../../lib/auth/rate-limit.js'
import { setUser, writePasswordFile } from '../../lib/auth/password-file.js'
import { silentLogger } from '../../lib/logging.js'
import { ConfigSchema } from '../../lib/config/schema.js'

t.test('dashboard logins: password file users, roles, the MQTT slow-down', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'culex-admin-auth-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const db = new Map()
  await setUser(db, 'alice', 'a', { scrypt: { N: 1024 } })
  await setUser(db, 'bob', 'b', { scrypt: { N: 1024 } })
  const passwordFile = join(dir, 'passwd')
  await writePasswordFile(passwordFile, db)
  const failures = new FailureDelay({ baseMs: 200 })
  const security = await SecurityPolicy.load({ allowAnonymous: true, passwordFile, certificateUsername: false, failureDelay: failures }, silentLogger())
  const auth = dashboardAuthenticator(security, ['alice'])
  t.equal(await auth('alice', 'a', '10.0.0.1'), 'admin')
  t.equal(await auth('bob', 'b', '10.0.0.1'), 'viewer', 'the default role')
  t.equal(await auth('bob', 'wrong', '10.0.0.2'), undefined)
  t.equal(await auth('nobody', '', '10.0.0.2'), undefined)
  t.equal(failures.delayFor('10.0.0.2'), 200, 'failures count in the delay MQTT logins use')
  const started = Date.now()
  t.equal(await auth('bob', 'b', '10.0.0.2'), 'viewer')
  t.ok(Date.now() - started >= 190, 'the next attempt from that address waited')

  const open = await SecurityPolicy.load({ allowAnonymous: true, certificateUsername: false }, silentLogger())
  t.equal(await dashboardAuthenticator(open, ['alice'])('alice', 'anything', '10.0.0.3'), undefined, 'no password file: nobody logs in')
})

t.test('dashboardAdmins: a list in a file, comma-separated text from a flag or the environment', async (t) => {
  t.same(ConfigSchema.parse({ dashboardAdmins: ['alice', 'bob'] }).dashboardAdmins, ['alice', 'bob'])
  t.same(ConfigSchema.parse({ dashboardAdmins: ' alice, bob ,' }).dashboardAdmins, ['alice', 'bob'])
  t.same(ConfigSchema.parse({}).dashboardAdmins, [])
  t.notOk(ConfigSchema.safeParse({ dashboardAdmins: [''] }).success)
})
