/**
 * The admin API over HTTP, with real MQTT clients connected: every
 * endpoint, every status code, paging and filters, roles, sessions, CSRF,
 * the Host check and the security headers.
 */
import t from 'tap'
import { startAdminTest } from '../../helpers/admin.js'
import type { IClientOptions, MqttClient } from 'mqtt'
import { connectClient, collect, waitForPacket } from '../../helpers/mqtt.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { tcpUrl } from '../../helpers/server.js'

t.test('admin API', async (t) => {
  const { server, base, login, call } = await startAdminTest(t, { maxTopicLength: 1000 })
  const url = tcpUrl(server)

  t.test('MQTT listeners never serve the API or the dashboard', async (t) => {
    const port = server.ws?.address().port as number
    for (const path of ['/api/v1/overview', '/ui/', '/api/v1/login']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`)
      t.equal(res.status, 404, `ws listener: ${path}`)
    }
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`)
    t.equal(metrics.status, 200, '/metrics stays on the WebSocket server')
  })

  t.test('health and metrics on the admin listener, without a session', async (t) => {
    t.equal((await call('GET', '/healthz')).status, 200)
    const ready = await call('GET', '/readyz')
    t.equal(ready.status, 200)
    t.equal(ready.body.status, 'ready')
    const metrics = await call('GET', '/metrics')
    t.equal(metrics.status, 200)
    t.match(metrics.body, /culex_/)
    const root = await call('GET', '/')
    t.equal(root.status, 302)
    t.equal(root.headers.get('location'), '/ui/')
  })

  t.test('security headers, and the dashboard page without a session', async (t) => {
    const page = await call('GET', '/ui/')
    t.equal(page.status, 200)
    t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/)
    t.notMatch(page.headers.get('content-security-policy'), /unsafe-inline/)
    t.equal(page.headers.get('x-content-type-options'), 'nosniff')
    t.equal(page.headers.get('referrer-policy'), 'no-referrer')
    t.equal(page.headers.get('access-control-allow-origin'), null, 'no CORS')
    const vendor = await call('GET', '/ui/vendor/uPlot.esm.js')
    t.equal(vendor.status, 200, 'uPlot is served from node_modules')
    t.match(vendor.headers.get('content-type'), /javascript/)
    const etag = vendor.headers.get('etag') as string
    const again = await fetch(base + '/ui/vendor/uPlot.esm.js', { headers: { 'if-none-match': etag } })
    t.equal(again.status, 304, 'ETag')
    t.equal((await call('GET', '/ui/../package.json')).status, 404, 'no path outside the UI')
    t.equal((await call('POST', '/ui/')).status, 405)
  })

  t.test('no session: 401 with a JSON error body, and Cache-Control no-store', async (t) => {
    for (const path of ['/api/v1/overview', '/api/v1/clients', '/api/v1/clients/x', '/api/v1/retained', '/api/v1/shared-groups', '/api/v1/stats/history', '/api/v1/session']) {
      const res = await call('GET', path)
      t.equal(res.status, 401, path)
      t.equal(res.body.code, 'UNAUTHORIZED', path)
      t.equal(res.headers.get('cache-control'), 'no-store', path)
      t.equal(res.headers.get('x-content-type-options'), 'nosniff', path)
      t.equal(res.headers.get('referrer-policy'), 'no-referrer', path)
      t.match(res.headers.get('content-security-policy'), /^default-src 'none'/, path)
    }
    const forged = await call('GET', '/api/v1/overview', { headers: { cookie: 'culex_session=forged' } })
    t.equal(forged.status, 401, 'an unknown session id')
  })

  t.test('login: bad credentials 401, malformed 400, cross-origin 403, cookie flags', async (t) => {
    t.equal((await call('POST', '/api/v1/login', { body: { username: 'alice', password: 'wrong' } })).status, 401)
    t.equal((await call('POST', '/api/v1/login', { body: { username: 'nobody', password: 'x' } })).status, 401)
    t.equal((await call('POST', '/api/v1/login', { body: 'not json' })).status, 400)
    t.equal((await call('POST', '/api/v1/login', { body: { username: 1 } })).status, 400)
    t.equal((await call('POST', '/api/v1/login', { body: { username: 'a', password: 'x'.repeat(5000) } })).status, 400, 'oversized body')
    t.equal((await call('POST', '/api/v1/login', { body: { username: 'alice', password: 'alice-pw' }, headers: { 'content-type': 'text/plain' } })).status, 400, 'not JSON content type')
    const cross = await call('POST', '/api/v1/login', { body: { username: 'alice', password: 'alice-pw' }, headers: { origin: 'http://evil.example' } })
    t.equal(cross.status, 403, 'cross-origin login')
    const site = await call('POST', '/api/v1/login', { body: { username: 'alice', password: 'alice-pw' }, headers: { 'sec-fetch-site': 'cross-site' } })
    t.equal(site.status, 403, 'Sec-Fetch-Site cross-site')
    const ok = await call('POST', '/api/v1/login', { body: { username: 'alice', password: 'alice-pw' }, headers: { origin: base } })
    t.equal(ok.status, 200, 'same origin')
    t.equal(ok.body.role, 'admin')
    const cookie = ok.headers.get('set-cookie') as string
    t.match(cookie, /^culex_session=[A-Za-z0-9_-]{40,};/)
    t.match(cookie, /HttpOnly/)
    t.match(cookie, /SameSite=Strict/)
    t.match(cookie, /Path=\//)
    t.notMatch(cookie, /Secure/, 'not Secure over plain HTTP')
    t.equal(ok.headers.get('cache-control'), 'no-store')
    const viewer = await login('victor', 'victor-pw')
    t.equal(viewer.role, 'viewer', 'the default role')
    const session = await call('GET', '/api/v1/session', { login: viewer })
    t.same(session.body, { username: 'victor', role: 'viewer', csrfToken: viewer.csrf })
  })

  t.test('the Host header must name this server (DNS rebinding)', async (t) => {
    const port = server.admin?.address().port as number
    const { request } = await import('node:http')
    const status = (host: string): Promise<number> => new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/healthz', headers: { host } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject).end()
    })
    t.equal(await status(`evil.example:${port}`), 403, 'another site\'s name')
    t.equal(await status(`127.0.0.1:${port + 1}`), 403, 'another port')
    t.equal(await status(`localhost:${port}`), 200)
    t.equal(await status(`127.0.0.1:${port}`), 200)
  })

  t.test('overview, clients, detail with $share and will, paging and filters', async (t) => {
    const admin = await login('alice', 'alice-pw')
    const worker = await connectClient(t, url, { clientId: 'worker-1', username: 'victor', password: Buffer.from('victor-pw'), will: { topic: 'wills/worker-1', payload: Buffer.from('{"gone":true}'), qos: 1, retain: false } })
    await new Promise<void>((resolve, reject) => worker.subscribe(['$share/jobs/tasks/#', 'plain/+'], { qos: 1 }, (err) => err ? reject(err) : resolve()))
    const others = await Promise.all([1, 2, 3].map(async (i) => await connectClient(t, url, { clientId: `other-${i}`, protocolVersion: 4 })))
    t.ok(others.length === 3)

    const overview = await call('GET', '/api/v1/overview', { login: admin })
    t.equal(overview.status, 200)
    t.equal(overview.body.connections.total, 4)
    t.equal(overview.body.connections.byTransport.tcp, 4)
    t.equal(overview.body.connections.byProtocol['5'], 1)
    t.equal(overview.body.connections.byProtocol['3.1.1'], 3)
    t.equal(overview.body.ready, true)
    t.equal(overview.body.sharedGroups, 1)
    t.type(overview.body.version, 'string')

    const all = await call('GET', '/api/v1/clients', { login: admin })
    t.equal(all.status, 200)
    t.same(all.body.data.map((c: { clientId: string }) => c.clientId), ['other-1', 'other-2', 'other-3', 'worker-1'])
    t.same(all.body.meta, { page: 1, limit: 50, count: 4, hasnext: false })
    const page2 = await call('GET', '/api/v1/clients?limit=3&page=2', { login: admin })
    t.same(page2.body.data.map((c: { clientId: string }) => c.clientId), ['worker-1'])
    t.same(page2.body.meta, { page: 2, limit: 3, count: 4, hasnext: false })
    const page1 = await call('GET', '/api/v1/clients?limit=3', { login: admin })
    t.equal(page1.body.meta.hasnext, true)
    const byId = await call('GET', '/api/v1/clients?clientid=WORK', { login: admin })
    t.same(byId.body.data.map((c: { clientId: string }) => c.clientId), ['worker-1'], 'clientid: substring, any case')
    const byUser = await call('GET', '/api/v1/clients?username=VIC', { login: admin })
    t.equal(byUser.body.meta.count, 1)
    const byState = await call('GET', '/api/v1/clients?state=connecting', { login: admin })
    t.equal(byState.body.meta.count, 0)
    for (const bad of ['limit=1001', 'limit=0', 'page=0', 'limit=abc', 'state=asleep']) {
      const res = await call('GET', `/api/v1/clients?${bad}`, { login: admin })
      t.equal(res.status, 400, bad)
      t.equal(res.body.code, 'BAD_REQUEST')
      t.type(res.body.message, 'string')
    }

    const detail = await call('GET', '/api/v1/clients/worker-1', { login: admin })
    t.equal(detail.status, 200)
    t.equal(detail.body.username, 'victor')
    t.equal(detail.body.protocol, '5')
    t.equal(detail.body.subscriptions, 2)
    t.same(detail.body.subscriptionList.map((s: { filter: string, shared: boolean }) => [s.filter, s.shared]), [['$share/jobs/tasks/#', true], ['plain/+', false]])
    t.match(detail.body.will, { topic: 'wills/worker-1', qos: 1, retain: false, payload: { format: 'json', bytes: 13 } })
    t.type(detail.body.inflight, 'number')
    t.type(detail.body.queued, 'number')
    t.equal((await call('GET', '/api/v1/clients/nobody', { login: admin })).status, 404)
    const encoded = await call('GET', '/api/v1/clients/' + encodeURIComponent('a/b c'), { login: admin })
    t.equal(encoded.status, 404, 'a percent-encoded id')
    t.equal((await call('GET', '/api/v1/clients/%E0%A4%A', { login: admin })).status, 400, 'malformed percent-encoding')
    t.equal((await call('GET', '/api/v1/nothing', { login: admin })).status, 404)

    const groups = await call('GET', '/api/v1/shared-groups', { login: admin })
    t.equal(groups.status, 200)
    t.match(groups.body.data, [{ group: '$share/jobs/tasks/#', shareName: 'jobs', filter: 'tasks/#', membersOnline: 1, membersOffline: 0, queued: 0, inflight: 0 }])
    t.equal((await call('GET', '/api/v1/shared-groups?group=none', { login: admin })).body.meta.count, 0)
  })

  t.test('disconnect: 204 and DISCONNECT 0x98; viewer 403; token-less or cross-origin 403', async (t) => {
    const admin = await login('alice', 'alice-pw')
    const viewer = await login('victor', 'victor-pw')
    const victim = await connectClient(t, url, { clientId: 'victim' })
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: viewer })).status, 403, 'a viewer')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: admin, csrf: false })).status, 403, 'no CSRF token')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: admin, headers: { 'x-csrf-token': 'wrong' } })).status, 403, 'a wrong token')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: { ...admin, csrf: viewer.csrf } })).status, 403, 'another session\'s token')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: admin, headers: { origin: 'http://evil.example' } })).status, 403, 'cross-origin')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: admin, headers: { 'sec-fetch-site': 'cross-site' } })).status, 403, 'Sec-Fetch-Site cross-site')
    await sleep(100)
    t.equal(victim.connected, true, 'still connected after the refused requests')
    const disconnect = waitForPacket(victim, 'disconnect')
    const res = await call('DELETE', '/api/v1/clients/victim', { login: admin, headers: { origin: base } })
    t.equal(res.status, 204)
    t.equal(res.body, '')
    t.equal(((await disconnect) as { reasonCode?: number }).reasonCode, 0x98, 'DISCONNECT 0x98 Administrative action')
    t.equal((await call('DELETE', '/api/v1/clients/victim', { login: admin })).status, 404, 'gone')
  })

  t.test('retained: levels, preview, delete; bad topics 400', async (t) => {
    const admin = await login('alice', 'alice-pw')
    const viewer = await login('victor', 'victor-pw')
    const pub = await connectClient(t, url, { clientId: 'retainer' })
    const publish = (topic: string, payload: Buffer | string): Promise<void> => new Promise((resolve, reject) => pub.publish(topic, payload, { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
    await publish('site/a/temp', '21.5')
    await publish('site/a/json', '{"v":1}')
    await publish('site/b', Buffer.from([0, 1, 2, 255]))
    await publish('site', 'root value')
    await publish('other', 'x')

    const root = await call('GET', '/api/v1/retained', { login: viewer })
    t.equal(root.status, 200)
    t.same(root.body.data.map((n: { name: string, descendants: number }) => [n.name, n.descendants]), [['other', 0], ['site', 3]])
    t.match(root.body.data[1].message, { payload: { format: 'text', preview: 'root value' } })
    const site = await call('GET', '/api/v1/retained?parent=site', { login: viewer })
    t.same(site.body.data.map((n: { topic: string }) => n.topic), ['site/a', 'site/b'])
    t.match(site.body.data[1].message.payload, { format: 'hex', preview: '00 01 02 ff', bytes: 4 })
    const a = await call('GET', '/api/v1/retained?parent=site/a&limit=1&page=2', { login: viewer })
    t.match(a.body, { data: [{ topic: 'site/a/temp', message: { payload: { format: 'text', preview: '21.5' } } }], meta: { page: 2, limit: 1, count: 2, parent: 'site/a' } })
    const json = await call('GET', '/api/v1/retained?parent=site/a', { login: viewer })
    t.equal(json.body.data[0].message.payload.format, 'json')
    for (const bad of ['parent=site/%2B', 'parent=%23', 'parent=a%00b', `parent=${'x'.repeat(1001)}`]) {
      const res = await call('GET', `/api/v1/retained?${bad}`, { login: viewer })
      t.equal(res.status, 400, bad.slice(0, 30))
    }
    t.equal((await call('DELETE', '/api/v1/retained?topic=site/a/temp', { login: viewer })).status, 403, 'a viewer')
    t.equal((await call('DELETE', '/api/v1/retained', { login: admin })).status, 400, 'no topic')
    t.equal((await call('DELETE', '/api/v1/retained?topic=site/%23', { login: admin })).status, 400, 'a wildcard')
    t.equal((await call('DELETE', '/api/v1/retained?topic=site/none', { login: admin })).status, 404)
    t.equal((await call('DELETE', '/api/v1/retained?topic=site/a/temp', { login: admin })).status, 204)
    const sub = await connectClient(t, url, { clientId: 'late-subscriber' })
    const got = collect(sub)
    await new Promise<void>((resolve, reject) => sub.subscribe('site/a/#', { qos: 1 }, (err) => err ? reject(err) : resolve()))
    await got.next(1)
    await sleep(200)
    t.same(got.messages.map(m => m.topic), ['site/a/json'], 'the deleted one is gone for a new subscriber')
  })

  t.test('retained previews are bounded: 2048 characters of text, 512 bytes of hex', async (t) => {
    const viewer = await login('victor', 'victor-pw')
    const pub = await connectClient(t, url, { clientId: 'big-retainer' })
    const publish = (topic: string, payload: Buffer | string): Promise<void> => new Promise((resolve, reject) => pub.publish(topic, payload, { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
    await publish('bounds/text', 'x'.repeat(10000))
    await publish('bounds/bin', Buffer.alloc(1000, 0xff))
    const level = await call('GET', '/api/v1/retained?parent=bounds', { login: viewer })
    const [bin, text] = level.body.data
    t.match(text.message.payload, { format: 'text', bytes: 10000, truncated: true })
    t.equal(text.message.payload.preview, 'x'.repeat(2048))
    t.match(bin.message.payload, { format: 'hex', bytes: 1000, truncated: true })
    t.equal(bin.message.payload.preview.split(' ').length, 512)
    await publish('bounds/text', '')
    await publish('bounds/bin', '')
  })

  t.test('history: samples once a second; seconds is checked', async (t) => {
    const viewer = await login('victor', 'victor-pw')
    server.admin?.history.sample()
    const res = await call('GET', '/api/v1/stats/history?seconds=60', { login: viewer })
    t.equal(res.status, 200)
    t.equal(res.body.interval, 1)
    t.ok(res.body.rates.length >= 1)
    t.match(res.body.rates.at(-1), { t: Number, messagesIn: Number, messagesOut: Number, bytesIn: Number, bytesOut: Number, dropped: Number, connects: Number, connections: Number })
    t.equal((await call('GET', '/api/v1/stats/history?seconds=601', { login: viewer })).status, 400)
    const pub = await connectClient(t, url, { clientId: 'rate-publisher' })
    for (let i = 0; i < 5; i++) await new Promise<void>((resolve, reject) => pub.publish('rates/x', '12345', { qos: 1 }, (err) => err ? reject(err) : resolve()))
    server.admin?.history.sample()
    const after = await call('GET', '/api/v1/stats/history?seconds=5', { login: viewer })
    const sum = (k: string): number => after.body.rates.reduce((n: number, s: Record<string, number>) => n + (s[k] ?? 0), 0)
    t.ok(sum('messagesIn') >= 5, `the five messages are in the rates (${sum('messagesIn')})`)
    t.ok(sum('bytesIn') >= 25, 'and their bytes')
    t.ok(sum('connects') >= 1, 'and the connect')
  })

  t.test('offline sessions: listed as offline, filtered and paged with the live ones; overview and group figures agree', async (t) => {
    const admin = await login('alice', 'alice-pw')
    const subscribe = (c: MqttClient, filters: string[]): Promise<void> => new Promise((resolve, reject) => c.subscribe(filters, { qos: 1 }, (err) => err ? reject(err) : resolve()))
    const parked = (id: string, extra: IClientOptions = {}): Promise<MqttClient> =>
      connectClient(t, url, { clientId: id, username: 'victor', password: Buffer.from('victor-pw'), clean: false, properties: { sessionExpiryInterval: 600 }, ...extra })
    const a = await parked('parked-a', { will: { topic: 'wills/parked-a', payload: Buffer.from('gone'), qos: 0, retain: false, properties: { willDelayInterval: 30 } } })
    await subscribe(a, ['parked/a/#', '$share/parkers/parked/#'])
    const b = await parked('parked-b')
    await subscribe(b, ['parked/b/#', '$share/parkers/parked/#'])
    const live = await connectClient(t, url, { clientId: 'parked-live' })
    a.end(true) // no DISCONNECT: the will waits out its delay
    await new Promise<void>((resolve) => b.end(false, {}, () => resolve()))
    const offline = async (query = ''): Promise<{ status: number, body: any }> => await call('GET', '/api/v1/clients?state=offline' + query, { login: admin })
    await waitFor(async () => (await offline()).body.meta.count === 2, { timeout: 3000 })
    await new Promise<void>((resolve, reject) => live.publish('parked/b/x', 'for b', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))

    const list = await offline()
    t.equal(list.status, 200)
    t.match(list.body.data, [
      { clientId: 'parked-a', state: 'offline', username: 'victor', transport: null, protocol: null, remoteAddress: null, subscriptions: 2, queued: 0, sessionExpiryInterval: 600 },
      { clientId: 'parked-b', state: 'offline', username: 'victor', subscriptions: 2, queued: 1, sessionExpiryInterval: 600 }
    ])
    for (const c of list.body.data) t.ok(c.sessionExpiresAt > Date.now() + 590_000 && c.sessionExpiresAt <= Date.now() + 600_000, `${c.clientId}: the expiry deadline`)
    const page2 = await offline('&limit=1&page=2')
    t.same(page2.body.data.map((c: { clientId: string }) => c.clientId), ['parked-b'])
    t.same(page2.body.meta, { page: 2, limit: 1, count: 2, hasnext: false })
    t.equal((await offline('&clientid=PARKED-A')).body.meta.count, 1, 'filters combine')
    const all = await call('GET', '/api/v1/clients?clientid=parked', { login: admin })
    t.same(all.body.data.map((c: { clientId: string, state: string }) => [c.clientId, c.state]), [['parked-a', 'offline'], ['parked-b', 'offline'], ['parked-live', 'connected']], 'live and offline in one list')
    t.equal((await call('GET', '/api/v1/clients?state=connected&clientid=parked', { login: admin })).body.meta.count, 1)

    const detail = await call('GET', '/api/v1/clients/parked-a', { login: admin })
    t.equal(detail.status, 200)
    t.same(detail.body.subscriptionList.map((s: { filter: string, shared: boolean }) => [s.filter, s.shared]), [['$share/parkers/parked/#', true], ['parked/a/#', false]])
    t.match(detail.body.will, { topic: 'wills/parked-a', delayInterval: 30, payload: { preview: 'gone' } })
    t.ok(detail.body.willDelayUntil > Date.now() + 20_000, 'when the delayed will is published')
    t.equal((await call('DELETE', '/api/v1/clients/parked-a', { login: admin })).status, 404, 'an offline session is not disconnected')

    const overview = (await call('GET', '/api/v1/overview', { login: admin })).body
    const everyone = (await call('GET', '/api/v1/clients?limit=1000', { login: admin })).body.data as Array<{ state: string, subscriptions: number }>
    t.equal(overview.sessions.offline, 2)
    t.equal(overview.sessions.online, everyone.filter(c => c.state !== 'offline').length)
    t.equal(overview.subscriptions, everyone.reduce((n, c) => n + c.subscriptions, 0), 'subscriptions: what the client list adds up to, $share memberships included')
    t.equal(overview.queued, 1, 'queued: the offline queue')
    t.equal(overview.queuedInGroups, 1, 'and the shared group\'s queue')
    t.ok(overview.retained >= 1)
    t.type(overview.messages.dropped, 'number')
    t.type(overview.messages.droppedByReason, 'object')

    const groups = await call('GET', '/api/v1/shared-groups?group=parkers', { login: admin })
    t.match(groups.body.data, [{ group: '$share/parkers/parked/#', membersOnline: 0, membersOffline: 2, queued: 1, inflight: 0, delivered: 0, redelivered: 0, deadLettered: 0, dropped: 0 }])
    const back = await parked('parked-b')
    const got = collect(back)
    await got.next(2)
    await waitFor(async () => (await call('GET', '/api/v1/shared-groups?group=parkers', { login: admin })).body.data[0]?.delivered === 1, { timeout: 3000 })
    t.match((await call('GET', '/api/v1/shared-groups?group=parkers', { login: admin })).body.data, [{ membersOnline: 1, membersOffline: 1, queued: 0, delivered: 1 }], 'delivered once a member is back')
    t.match((await call('GET', '/api/v1/clients/parked-b', { login: admin })).body, { state: 'connected', cleanStart: false })
    t.equal((await offline()).body.meta.count, 1, 'back online: no longer offline')
  })

  t.test('logout: 204, then 401; logout needs the token', async (t) => {
    const viewer = await login('victor', 'victor-pw')
    t.equal((await call('POST', '/api/v1/logout', { login: viewer, csrf: false })).status, 403)
    const out = await call('POST', '/api/v1/logout', { login: viewer })
    t.equal(out.status, 204)
    t.match(out.headers.get('set-cookie'), /Max-Age=0/)
    t.equal((await call('GET', '/api/v1/overview', { login: viewer })).status, 401)
  })
})

t.test('off by default; admin port 0 is off', async (t) => {
  const { startTestServer } = await import('../../helpers/server.js')
  const off = await startTestServer(t)
  t.equal(off.admin, undefined)
  const zero = await startTestServer(t, { dashboard: true, adminPort: 0 })
  t.equal(zero.admin, undefined)
})

t.test('after a restart on the LevelDB store, persistent sessions are listed offline with their subscriptions and queues', async (t) => {
  const { tempDir } = await import('../../helpers/security.js')
  const dataDir = tempDir(t, 'culex-admin-level-')
  const first = await startAdminTest(t, { persistence: 'level', dataDir })
  const durable = await connectClient(t, tcpUrl(first.server), { clientId: 'durable', username: 'victor', password: Buffer.from('victor-pw'), clean: false, properties: { sessionExpiryInterval: 3600 } })
  await new Promise<void>((resolve, reject) => durable.subscribe('durable/#', { qos: 1 }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve) => durable.end(false, {}, () => resolve()))
  const pub = await connectClient(t, tcpUrl(first.server), { clientId: 'durable-pub' })
  await new Promise<void>((resolve, reject) => pub.publish('durable/1', 'kept', { qos: 1 }, (err) => err ? reject(err) : resolve()))
  const before = await first.login('alice', 'alice-pw')
  await waitFor(async () => (await first.call('GET', '/api/v1/clients?state=offline', { login: before })).body.data[0]?.sessionExpiresAt > 0, { timeout: 3000 })
  pub.end(true)
  await first.server.close()

  const second = await startAdminTest(t, { persistence: 'level', dataDir })
  const admin = await second.login('alice', 'alice-pw')
  const list = await second.call('GET', '/api/v1/clients?state=offline', { login: admin })
  t.match(list.body, { data: [{ clientId: 'durable', state: 'offline', username: 'victor', subscriptions: 1, queued: 1, sessionExpiryInterval: 3600 }], meta: { count: 1 } })
  t.ok(list.body.data[0].sessionExpiresAt > Date.now() + 3500_000, 'its deadline survived the restart')
  const detail = await second.call('GET', '/api/v1/clients/durable', { login: admin })
  t.same(detail.body.subscriptionList.map((s: { filter: string, qos: number }) => [s.filter, s.qos]), [['durable/#', 1]])
  t.equal((await second.call('GET', '/api/v1/overview', { login: admin })).body.sessions.offline, 1)
})
