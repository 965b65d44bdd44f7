/**
 * Password authentication end to end: `culex passwd` (the built CLI) writes
 * the file, the broker checks CONNECT credentials against it (CONNACK 0x86 /
 * 3.1.1 return code 4 on failure), repeated failures from one address are
 * answered ever more slowly, and SIGHUP / `server.reload()` pick up changes
 * without dropping anyone.
 */
import t from 'tap'
import type { Test } from 'tap'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import type { CulexServer } from '../../../lib/server.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { startCulex, runCulex } from '../../helpers/cli.js'
import { connackCode, passwd, rawConnect, tempDir, uniqueId, type Version } from '../../helpers/security.js'
import { waitFor } from '../../helpers/wait.js'

const BAD = { 5: ReasonCode.BadUserNameOrPassword, 4: 4 } as const

/** A password file with alice / "secret" and bob / "hunter2", made by the CLI. */
async function passwordFile (t: Test): Promise<string> {
  const file = join(tempDir(t), 'passwords')
  await passwd(['--password', 'secret', file, 'alice'])
  await passwd(['--password', 'hunter2', file, 'bob'])
  return file
}

/** A round trip through the broker proves a client is still connected and served. */
async function roundTrip (t: Test, client: MqttClient, topic: string): Promise<void> {
  const inbox = collect(client)
  await client.subscribeAsync(topic, { qos: 1 })
  await client.publishAsync(topic, 'ping', { qos: 1 })
  const [m] = await inbox.next(1)
  t.equal(m?.payload.toString(), 'ping', `${topic}: still connected and served`)
  await client.unsubscribeAsync(topic)
}

t.test('culex passwd writes a 0600 file without the password, and -D deletes a user', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'passwords')
  await passwd(['--password', 'secret', file, 'alice'])
  await passwd(['--password', 'secret', file, 'bob'])
  const text = readFileSync(file, 'utf8')
  t.match(text, /^alice:\$culex\$scrypt\$/m, 'alice has a hashed entry')
  t.match(text, /^bob:\$culex\$scrypt\$/m, 'bob has a hashed entry')
  for (const encoding of ['utf8', 'base64', 'hex'] as const) {
    t.notOk(text.includes(Buffer.from('secret').toString(encoding).replace(/=+$/, '')), `the password does not appear (${encoding})`)
  }
  const [aliceSalt, bobSalt] = ['alice', 'bob'].map(u => new RegExp(`^${u}:\\$culex\\$scrypt\\$\\d+\\$\\d+\\$\\d+\\$([^$]+)\\$`, 'm').exec(text)?.[1])
  t.ok(aliceSalt !== undefined && aliceSalt !== bobSalt, 'the same password is salted differently for two users')
  t.equal(statSync(file).mode & 0o777, 0o600, 'mode 0600')

  await passwd(['-D', file, 'alice'])
  const after = readFileSync(file, 'utf8')
  t.notMatch(after, /^alice:/m, '-D removed alice')
  t.match(after, /^bob:/m, 'bob stays')
  t.equal(statSync(file).mode & 0o777, 0o600, 'still 0600 after the rewrite')

  const missing = await runCulex(['passwd', '-D', file, 'alice'])
  t.equal(missing.code, 1, 'deleting an unknown user fails')
  t.equal(readFileSync(file, 'utf8'), after, 'and leaves the file untouched')
})

t.test('CONNECT with a password file', async (t) => {
  const file = await passwordFile(t)
  const server = await startTestServer(t, { passwordFile: file, allowAnonymous: false })
  const port = tcpPort(server)
  for (const version of [5, 4] as const) {
    // each failure is followed by a success, which forgives the address its failures (no delay builds up)
    await t.test(`v${version}: the right password connects`, async (t) => {
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
      const client = await connectClient(t, tcpUrl(server), { protocolVersion: version, username: 'bob', password: 'hunter2' })
      await roundTrip(t, client, `pw/${version}`)
    })
    await t.test(`[MQTT-3.1.4-2] [MQTT-3.2.2-7] v${version}: a wrong password gets ${version === 5 ? '0x86' : '4'} and a close`, async (t) => {
      const { client, code } = await rawConnect(t, port, version, { username: 'alice', password: Buffer.from('Secret') })
      t.equal(code, BAD[version])
      await client.waitClose()
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
    })
    await t.test(`v${version}: an unknown user gets the same answer as a wrong password`, async (t) => {
      const { client, code } = await rawConnect(t, port, version, { username: 'mallory', password: Buffer.from('secret') })
      t.equal(code, BAD[version])
      await client.waitClose()
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
    })
    await t.test(`v${version}: a user name without a password is refused`, async (t) => {
      t.equal(await connackCode(t, port, version, { username: 'alice' }), BAD[version])
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
    })
    await t.test(`v${version}: another user's password does not work`, async (t) => {
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('hunter2') }), BAD[version])
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
    })
    await t.test(`v${version}: no credentials with allowAnonymous false: ${version === 5 ? '0x87' : '5'}`, async (t) => {
      t.equal(await connackCode(t, port, version), version === 5 ? ReasonCode.NotAuthorized : 5)
      t.equal(await connackCode(t, port, version, { username: 'alice', password: Buffer.from('secret') }), 0)
    })
  }
  await t.test('a password that is a prefix, an extension or another case of the right one fails', async (t) => {
    t.equal(await connackCode(t, port, 5, { username: 'alice', password: Buffer.from('secre') }), BAD[5])
    t.equal(await connackCode(t, port, 5, { username: 'alice', password: Buffer.from('secret!') }), BAD[5])
    t.equal(await connackCode(t, port, 5, { username: 'alice', password: Buffer.from('SECRET') }), BAD[5])
    t.equal(await connackCode(t, port, 5, { username: 'alice', password: Buffer.from('secret') }), 0)
  })
})

/** Time from CONNECT to CONNACK. */
async function timedConnect (t: Test, port: number, version: Version, username: string, password: string): Promise<{ code: number, ms: number }> {
  const started = process.hrtime.bigint()
  const code = await connackCode(t, port, version, { username, password: Buffer.from(password) })
  return { code, ms: Number(process.hrtime.bigint() - started) / 1e6 }
}

t.test('repeated failures from one address are slowed down; a success forgives them', async (t) => {
  const file = await passwordFile(t)
  const server = await startTestServer(t, { passwordFile: file, allowAnonymous: false })
  const port = tcpPort(server)
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const { code, ms } = await timedConnect(t, port, i % 2 === 0 ? 5 : 4, 'alice', `guess-${i}`)
    t.equal(code, BAD[i % 2 === 0 ? 5 : 4], `failure ${i + 1} refused`)
    times.push(ms)
  }
  t.comment(`failure answer times (ms): ${times.map(ms => ms.toFixed(0)).join(', ')}`)
  const first = times[0] as number
  t.ok((times[3] as number) >= first + 200, `the 4th failure takes >= 200 ms longer than the first (${(times[3] as number).toFixed(0)} vs ${first.toFixed(0)})`)
  t.ok((times[4] as number) >= first + 400, `the 5th takes longer still (${(times[4] as number).toFixed(0)})`)
  t.ok((times[4] as number) > (times[3] as number), 'the delay grows')

  // the right password still gets in (after the delay), and then the slate is clean
  const ok = await timedConnect(t, port, 5, 'alice', 'secret')
  t.equal(ok.code, 0, 'the right password is accepted after failures')
  const fresh = await timedConnect(t, port, 5, 'alice', 'wrong again')
  t.equal(fresh.code, BAD[5])
  // without the reset this would be the 6th failure, delayed 2000 ms; a
  // 1000 ms margin leaves room for a loaded machine's jitter
  t.ok(fresh.ms < first + 1000, `after a success a failure is answered promptly again (${fresh.ms.toFixed(0)} ms, not the 2000 ms a 6th failure waits)`)
})

t.test('parallel guesses from one address are not a way around the failure delay', async (t) => {
  const file = await passwordFile(t)
  const server = await startTestServer(t, { passwordFile: file, allowAnonymous: false })
  const port = tcpPort(server)
  // two free failures: the next one is delayed 250 ms, then 500, 1000, 2000 ...
  for (let i = 0; i < 2; i++) t.equal((await timedConnect(t, port, 5, 'alice', `warm-up-${i}`)).code, BAD[5])
  const started = Date.now()
  const guesses = await Promise.all([0, 1, 2, 3].map(i => timedConnect(t, port, 5, 'alice', `parallel-${i}`)))
  const slowest = Math.max(...guesses.map(g => g.ms))
  t.comment(`4 parallel guesses answered in ${guesses.map(g => g.ms.toFixed(0)).join(', ')} ms (all within ${Date.now() - started} ms)`)
  t.same(guesses.map(g => g.code), [BAD[5], BAD[5], BAD[5], BAD[5]], 'all refused')
  // sequentially these four would wait 250 + 500 + 1000 + 2000 ms; in parallel the
  // attacker must not get all four answers after a single 250 ms delay
  t.ok(slowest >= 1000, `the 4th of 4 parallel guesses waits at least the delay of the failures before it (slowest ${slowest.toFixed(0)} ms, expected >= 1000)`)
})

t.test('SIGHUP reloads the password file: a new user can connect, connected clients stay', async (t) => {
  const file = await passwordFile(t)
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--password-file', file, '--allow-anonymous', 'false'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const loaded = (): number => culex.logs.filter(l => l.msg === 'security configuration loaded').length
  t.equal(loaded(), 1, 'loaded once at start-up')

  const alice = await connectClient(t, culex.url, { protocolVersion: 5, username: 'alice', password: 'secret', clientId: uniqueId('alice') })
  let aliceClosed = false
  alice.on('close', () => { aliceClosed = true })
  const alice311 = await connectClient(t, culex.url, { protocolVersion: 4, username: 'bob', password: 'hunter2', clientId: uniqueId('bob') })
  let bobClosed = false
  alice311.on('close', () => { bobClosed = true })
  t.equal(await connackCode(t, culex.port, 5, { username: 'carol', password: Buffer.from('c4rol') }), BAD[5], 'carol is unknown before the reload')

  await passwd(['--password', 'c4rol', file, 'carol'])
  t.equal(await connackCode(t, culex.port, 5, { username: 'carol', password: Buffer.from('c4rol') }), BAD[5], 'the file is not re-read without SIGHUP')
  culex.child.kill('SIGHUP')
  await t.resolves(waitFor(() => loaded() === 2), 'SIGHUP reloads the security configuration')
  t.equal(culex.logs.filter(l => l.msg === 'security configuration loaded').at(-1)?.users, 3, 'three users now')

  t.equal(await connackCode(t, culex.port, 5, { username: 'carol', password: Buffer.from('c4rol') }), 0, 'carol connects after SIGHUP (v5)')
  t.equal(await connackCode(t, culex.port, 4, { username: 'carol', password: Buffer.from('c4rol') }), 0, 'carol connects after SIGHUP (3.1.1)')
  t.notOk(aliceClosed || bobClosed, 'no connected client was dropped by the reload')
  await roundTrip(t, alice, 'reload/alice')
  await roundTrip(t, alice311, 'reload/bob')

  await t.test('deleting a user and reloading refuses new logins, and keeps the live session', async (t) => {
    await passwd(['-D', file, 'alice'])
    culex.child.kill('SIGHUP')
    await t.resolves(waitFor(() => loaded() === 3))
    t.equal(await connackCode(t, culex.port, 5, { username: 'alice', password: Buffer.from('secret') }), BAD[5], 'alice can no longer log in')
    t.equal(await connackCode(t, culex.port, 5, { username: 'carol', password: Buffer.from('c4rol') }), 0)
    t.notOk(aliceClosed, 'the connection alice already had is not dropped')
  })

  await t.test('a broken file on SIGHUP keeps the previous configuration', async (t) => {
    writeFileSync(file, 'this is not a password file\n')
    culex.child.kill('SIGHUP')
    await t.resolves(waitFor(() => culex.logs.some(l => typeof l.msg === 'string' && l.msg.startsWith('reload failed'))), 'the failure is logged')
    t.equal(await connackCode(t, culex.port, 5, { username: 'carol', password: Buffer.from('c4rol') }), 0, 'carol still gets in with the old configuration')
    t.equal(culex.child.exitCode, null, 'the broker keeps running')
  })
})

t.test('server.reload() in-process: a new user can connect, connected clients stay', async (t) => {
  const file = await passwordFile(t)
  const server: CulexServer = await startTestServer(t, { passwordFile: file, allowAnonymous: false })
  const port = tcpPort(server)
  const bob = await connectClient(t, tcpUrl(server), { protocolVersion: 5, username: 'bob', password: 'hunter2' })
  let closed = false
  bob.on('close', () => { closed = true })
  await passwd(['--password', 'd4ve', file, 'dave'])
  t.equal(await connackCode(t, port, 5, { username: 'dave', password: Buffer.from('d4ve') }), BAD[5], 'not before the reload')
  await server.reload()
  t.equal(await connackCode(t, port, 5, { username: 'dave', password: Buffer.from('d4ve') }), 0, 'dave connects after reload()')
  t.equal(await connackCode(t, port, 4, { username: 'dave', password: Buffer.from('d4ve') }), 0)
  t.notOk(closed, 'bob was not dropped')
  await roundTrip(t, bob, 'reload/in-process')

  writeFileSync(file, 'bob:$culex$scrypt$nope\n')
  await t.rejects(server.reload(), 'a broken file makes reload() reject')
  t.equal(await connackCode(t, port, 5, { username: 'dave', password: Buffer.from('d4ve') }), 0, 'and the previous file stays in force')
})
