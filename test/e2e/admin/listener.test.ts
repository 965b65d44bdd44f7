/** The admin listener's own settings: HTTPS and Secure cookies under TLS, the start-up log, the login slow-down over HTTP. */
import t from 'tap'
import https from 'node:https'
import { makeSelfSignedCert } from '../../helpers/tls.js'
import { startAdminTest } from '../../helpers/admin.js'
import { connackCode, startLoggedServer } from '../../helpers/security.js'

t.test('under TLS the admin listener speaks HTTPS and the cookie is Secure', async (t) => {
  const cert = makeSelfSignedCert()
  t.teardown(cert.cleanup)
  const { server } = await startAdminTest(t, { tlsKey: cert.keyFile, tlsCert: cert.certFile })
  const port = server.admin?.address().port as number
  t.match(server.admin?.url(), /^https:\/\/127\.0\.0\.1:\d+\/ui\/$/)
  const body = JSON.stringify({ username: 'victor', password: 'victor-pw' })
  const res = await new Promise<{ status: number, cookie: string }>((resolve, reject) => {
    https.request({ host: '127.0.0.1', port, path: '/api/v1/login', method: 'POST', ca: cert.cert, headers: { 'content-type': 'application/json', origin: `https://127.0.0.1:${port}` } }, (r) => {
      r.resume()
      resolve({ status: r.statusCode ?? 0, cookie: String(r.headers['set-cookie'] ?? '') })
    }).on('error', reject).end(body)
  })
  t.equal(res.status, 200)
  t.match(res.cookie, /HttpOnly; SameSite=Strict; Secure/)
})

t.test('the start-up log names the admin URL and warns on a non-loopback address', async (t) => {
  const loop = await startLoggedServer(t, { dashboard: true, adminPort: 'auto' })
  t.ok(loop.logs.some(l => l.listener === 'admin' && l.level === 30), 'the admin URL is logged')
  t.notOk(loop.logs.some(l => l.adminHost !== undefined && l.level === 40), 'no warning on loopback')
  const open = await startLoggedServer(t, { dashboard: true, adminPort: 'auto', adminHost: '0.0.0.0' })
  t.ok(open.logs.some(l => l.adminHost === '0.0.0.0' && l.level === 40 && /non-loopback/.test(String(l.msg))), 'a warning on 0.0.0.0')
  t.ok(open.server.admin !== undefined)
})

t.test('failed dashboard logins are answered ever more slowly', async (t) => {
  const { call } = await startAdminTest(t)
  const times: number[] = []
  for (let i = 0; i < 4; i++) {
    const started = Date.now()
    t.equal((await call('POST', '/api/v1/login', { body: { username: 'victor', password: 'guess' } })).status, 401)
    times.push(Date.now() - started)
  }
  t.ok((times[2] ?? 0) >= 240, `the third failure waited (${times.join(', ')} ms)`)
  t.ok((times[3] ?? 0) >= 490, 'the fourth longer')
})

t.test('MQTT and dashboard logins share one slow-down per address', async (t) => {
  const { server, call } = await startAdminTest(t)
  const port = server.tcp?.address().port as number
  for (let i = 0; i < 2; i++) {
    t.equal(await connackCode(t, port, 5, { clientId: `guess-${i}`, username: 'victor', password: Buffer.from('guess') }), 0x86, 'MQTT: bad user name or password')
  }
  const started = Date.now()
  t.equal((await call('POST', '/api/v1/login', { body: { username: 'victor', password: 'guess' } })).status, 401)
  t.ok(Date.now() - started >= 240, `the third failure, on the dashboard, waited (${Date.now() - started} ms)`)
})

t.test('wsHealth false: no /healthz or /readyz on the WebSocket listener; the admin listener keeps them', async (t) => {
  const { server, call } = await startAdminTest(t, { wsHealth: false, metrics: false })
  const port = server.ws?.address().port as number
  for (const path of ['/healthz', '/readyz', '/metrics']) t.equal((await fetch(`http://127.0.0.1:${port}${path}`)).status, 404, `ws: ${path}`)
  t.equal((await call('GET', '/healthz')).status, 200, 'admin: /healthz')
  t.equal((await call('GET', '/readyz')).status, 200, 'admin: /readyz')
  t.equal((await call('GET', '/metrics')).status, 404, 'admin: /metrics follows metrics')
})
