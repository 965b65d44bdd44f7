/// <reference lib="dom" />
/**
 * The dashboard in a real browser: Debian's chromium driven by
 * playwright-core (no browser download), against a culex with real MQTT
 * clients. Screenshots of every page go to test-artifacts/dashboard/.
 */
import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import type { MqttClient } from 'mqtt'
import { startAdminTest } from '../../helpers/admin.js'
import { connectClient, collect, waitForPacket } from '../../helpers/mqtt.js'
import { sleep } from '../../helpers/wait.js'
import { tcpUrl } from '../../helpers/server.js'

const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find(p => existsSync(p)) ?? process.env.CHROMIUM_PATH
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'dashboard')
const XSS_ID = '<img src=x onerror=alert(1)>'

t.test('the dashboard in chromium', { skip: CHROMIUM === undefined ? 'chromium is not installed (apt-get install chromium)' : false }, async (t) => {
  const started = Date.now()
  mkdirSync(ARTIFACTS, { recursive: true })
  const { server, base } = await startAdminTest(t)
  const url = tcpUrl(server)
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
  t.teardown(() => browser.close())

  /** a page that records CSP violations and any dialog a script opens */
  async function newPage (): Promise<{ context: BrowserContext, page: Page, problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1366, height: 860 } })
    const page = await context.newPage()
    const problems: string[] = []
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        (window as unknown as { cspViolations: string[] }).cspViolations ??= []
        ;(window as unknown as { cspViolations: string[] }).cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`)
      })
    })
    page.on('dialog', (d) => { problems.push(`a script opened a ${d.type()} dialog: ${d.message()}`); d.dismiss().catch(() => {}) })
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`) })
    return { context, page, problems }
  }
  const cspViolations = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { cspViolations?: string[] }).cspViolations ?? [])
  const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true })
  async function logIn (page: Page, user: string, password: string): Promise<void> {
    await page.fill('input[name=username]', user)
    await page.fill('input[name=password]', password)
    await page.click('button[type=submit]')
    await page.waitForSelector('header.top')
  }
  /** opaque pixels of the first chart's canvas in one of `colours` (its lines, not their translucent fill) */
  const linePixels = (page: Page, colours: number[][]): Promise<number> => page.evaluate((colours) => {
    const canvas = document.querySelector('.chart canvas') as HTMLCanvasElement | null
    if (canvas === null) return -1
    const ctx = canvas.getContext('2d')
    if (ctx === null) return -1
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height)
    let n = 0
    const near = (i: number, [r, g, b]: number[]): boolean => Math.abs((data[i] ?? 0) - (r ?? 0)) < 24 && Math.abs((data[i + 1] ?? 0) - (g ?? 0)) < 24 && Math.abs((data[i + 2] ?? 0) - (b ?? 0)) < 24
    for (let i = 0; i < data.length; i += 4) if (data[i + 3] === 255 && colours.some(c => near(i, c))) n++
    return n
  }, colours)
  const apiStatus = (page: Page, method: string, path: string): Promise<number> =>
    page.evaluate(async ([m, p]) => (await fetch(p as string, { method: m as string })).status, [method, path])

  // a shared-group member and some background clients
  const worker = await connectClient(t, url, { clientId: 'share-worker' })
  await new Promise<void>((resolve, reject) => worker.subscribe('$share/workers/jobs/#', { qos: 1 }, (err) => err ? reject(err) : resolve()))

  const viewer = await newPage()
  await t.test('without a session the login page appears', async (t) => {
    await viewer.page.goto(base + '/ui/')
    await viewer.page.waitForSelector('form.login input[name=username]')
    t.ok(await viewer.page.isVisible('input[name=password]'), 'the login form')
    t.equal(await apiStatus(viewer.page, 'GET', '/api/v1/overview'), 401, 'the API says 401')
    await shot(viewer.page, '1-login.png')
  })

  await t.test('a viewer sees a new client within 3 s of its connecting', async (t) => {
    await logIn(viewer.page, 'victor', 'victor-pw')
    await viewer.page.goto(base + '/ui/#/clients')
    await viewer.page.waitForSelector('table tbody tr')
    const connectedAt = Date.now()
    await connectClient(t, url, { clientId: 'sensor-42' })
    await viewer.page.waitForSelector('tr[data-client-id="sensor-42"]', { timeout: 3000 })
    t.ok(Date.now() - connectedAt <= 3000, `shown after ${Date.now() - connectedAt} ms`)
    t.same(await viewer.page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, ''], 'no token in web storage; the session cookie is HttpOnly')
    const cookies = await viewer.context.cookies()
    t.match(cookies, [{ name: 'culex_session', httpOnly: true, sameSite: 'Strict', secure: false }], 'the browser holds one HttpOnly, SameSite=Strict cookie')
  })

  await t.test('a client id that looks like HTML is shown literally; no CSP violation', async (t) => {
    const title = await viewer.page.title()
    await connectClient(t, url, { clientId: XSS_ID })
    const row = viewer.page.locator('tr', { has: viewer.page.locator('a.client-link', { hasText: XSS_ID }) })
    await row.waitFor({ timeout: 3000 })
    t.equal(await row.locator('a.client-link').textContent(), XSS_ID, 'the id as text')
    t.equal(await viewer.page.locator('table img').count(), 0, 'no <img> element was made')
    await sleep(300)
    t.equal(await viewer.page.title(), title, 'document.title unchanged')
    t.same(await cspViolations(viewer.page), [], 'no CSP violation reported')
    t.same(viewer.problems, [], 'no dialog, no page error')
    await shot(viewer.page, '2-clients.png')
  })

  await t.test('a client\'s detail lists its $share subscription; a viewer has no disconnect', async (t) => {
    await viewer.page.goto(base + '/ui/#/clients/share-worker')
    await viewer.page.locator('table.subscriptions td', { hasText: '$share/workers/jobs/#' }).waitFor({ timeout: 3000 })
    t.equal(await viewer.page.locator('table.subscriptions .badge.shared').count(), 1, 'marked shared')
    t.equal(await viewer.page.locator('#disconnect').count(), 0, 'no disconnect button for a viewer')
    t.equal(await viewer.page.evaluate(async () => (await fetch('/api/v1/clients/share-worker', { method: 'DELETE' })).status), 403, 'a forced request: 403')
    t.equal(worker.connected, true)
    await shot(viewer.page, '3-client-detail.png')
  })

  const admin = await newPage()
  await admin.page.goto(base + '/ui/')
  await logIn(admin.page, 'alice', 'alice-pw')

  await t.test('an admin disconnects a client: DISCONNECT 0x98, and it leaves the list', async (t) => {
    const victim: MqttClient = await connectClient(t, url, { clientId: 'victim' })
    const disconnect = waitForPacket(victim, 'disconnect')
    await admin.page.goto(base + '/ui/#/clients/victim')
    await admin.page.click('#disconnect')
    await admin.page.waitForSelector('dialog#confirm[open]')
    await shot(admin.page, '4-disconnect-confirm.png')
    await admin.page.click('#confirm-ok')
    t.equal(((await disconnect) as { reasonCode?: number }).reasonCode, 0x98, 'DISCONNECT 0x98 Administrative action')
    await admin.page.waitForSelector('tr[data-client-id="share-worker"]')
    await admin.page.waitForSelector('tr[data-client-id="victim"]', { state: 'detached', timeout: 3000 })
    t.pass('victim left the list')
  })

  await t.test('an offline persistent session is listed with state offline; its detail shows what the session keeps', async (t) => {
    const parked = await connectClient(t, url, { clientId: 'parked-1', username: 'victor', password: Buffer.from('victor-pw'), clean: false, properties: { sessionExpiryInterval: 3600 } })
    await new Promise<void>((resolve, reject) => parked.subscribe(['parked/#', '$share/parking/lots/#'], { qos: 1 }, (err) => err ? reject(err) : resolve()))
    await new Promise<void>((resolve) => parked.end(false, {}, () => resolve()))
    const pub = await connectClient(t, url, { clientId: 'parking-publisher' })
    await new Promise<void>((resolve, reject) => pub.publish('parked/a', 'for later', { qos: 1 }, (err) => err ? reject(err) : resolve()))
    await admin.page.goto(base + '/ui/#/clients')
    await admin.page.selectOption('select[aria-label=state]', 'offline')
    const row = admin.page.locator('tr[data-client-id="parked-1"]')
    await row.waitFor({ timeout: 3000 })
    t.equal(await row.locator('.badge').textContent(), 'offline', 'state offline')
    const cells = (await row.locator('td').allTextContents()).join(' | ')
    t.match(cells, /parked-1 \| victor \| offline \|/, 'the owner')
    t.match(cells, /\| 2 \| 0 \| 1 \| in (59m|1h)/, '2 subscriptions ($share too), 1 queued, expires in an hour')
    await admin.page.waitForFunction(() => Array.from(document.querySelectorAll('tbody tr[data-client-id]')).every(r => r.querySelector('.badge.offline') !== null))
    t.equal(await admin.page.locator('tr[data-client-id="share-worker"]').count(), 0, 'the filter leaves connected clients out')
    await shot(admin.page, '4b-clients-offline.png')
    await row.locator('a.client-link').click()
    await admin.page.locator('table.subscriptions td', { hasText: '$share/parking/lots/#' }).waitFor({ timeout: 3000 })
    t.equal(await admin.page.locator('table.subscriptions td', { hasText: 'parked/#' }).count(), 1, 'the stored subscription')
    t.match(await admin.page.locator('dl.fields').first().textContent(), /Session expires\s*in (59m|1h)/, 'the expiry deadline')
    t.equal(await admin.page.locator('#disconnect').count(), 0, 'nothing to disconnect, even for an admin')
    await shot(admin.page, '4c-client-offline-detail.png')
  })

  await t.test('a retained message is in the topic tree, and gone for a new subscriber after delete', async (t) => {
    const pub = await connectClient(t, url, { clientId: 'plant-publisher' })
    await new Promise<void>((resolve, reject) => pub.publish('plant/line1/temp', '{"celsius":21.5,"ok":true}', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
    await new Promise<void>((resolve, reject) => pub.publish('plant/line1/state', 'running', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
    await new Promise<void>((resolve, reject) => pub.publish(`plant/line1/${XSS_ID}`, '<script>alert(2)</script>', { qos: 1, retain: true }, (err) => err ? reject(err) : resolve()))
    await admin.page.goto(base + '/ui/#/topics')
    await admin.page.click('a.node-name:text("plant")')
    await admin.page.click('a.node-name:text("line1")')
    const node = admin.page.locator('.node[data-topic="plant/line1/temp"]')
    await node.waitFor({ timeout: 3000 })
    t.match(await node.locator('pre.payload').textContent(), /"celsius": 21.5/, 'the JSON payload, pretty-printed')
    const html = admin.page.locator(`.node[data-topic="plant/line1/${XSS_ID}"]`)
    t.equal(await html.locator('span.topic').textContent(), `plant/line1/${XSS_ID}`, 'a topic that looks like HTML, as text')
    t.equal(await html.locator('pre.payload').textContent(), '<script>alert(2)</script>', 'a payload that looks like HTML, as text')
    t.equal(await admin.page.locator('.tree img, .tree script').count(), 0, 'no element made from them')
    await shot(admin.page, '5-topics.png')
    await node.locator('button.danger').click()
    await admin.page.click('#confirm-ok')
    await node.waitFor({ state: 'detached', timeout: 3000 })
    const sub = await connectClient(t, url, { clientId: 'new-subscriber' })
    const got = collect(sub)
    await new Promise<void>((resolve, reject) => sub.subscribe('plant/#', { qos: 1 }, (err) => err ? reject(err) : resolve()))
    await got.next(2)
    await sleep(300)
    t.same(got.messages.map(m => m.topic).sort(), [`plant/line1/${XSS_ID}`, 'plant/line1/state'], 'the deleted message is not delivered')
  })

  await t.test('charts draw while traffic flows', async (t) => {
    // a group whose only member is offline: its queue grows while jobs flow
    const batch = await connectClient(t, url, { clientId: 'batch-worker', clean: false, properties: { sessionExpiryInterval: 300 } })
    await new Promise<void>((resolve, reject) => batch.subscribe('$share/batch/jobs/#', { qos: 1 }, (err) => err ? reject(err) : resolve()))
    await new Promise<void>((resolve) => batch.end(false, {}, () => resolve()))
    const pub = await connectClient(t, url, { clientId: 'traffic' })
    const sub = await connectClient(t, url, { clientId: 'traffic-sink' })
    await new Promise<void>((resolve, reject) => sub.subscribe('load/#', { qos: 0 }, (err) => err ? reject(err) : resolve()))
    const traffic = setInterval(() => {
      for (let i = 0; i < 20; i++) pub.publish(`load/${i % 4}`, 'x'.repeat(200), { qos: 0 })
      pub.publish('jobs/build', 'job', { qos: 1 })
    }, 50)
    t.teardown(() => clearInterval(traffic))
    await admin.page.goto(base + '/ui/#/overview')
    await admin.page.waitForSelector('.tile')
    await sleep(3500)
    // pixels in the colours of the "in" and "out" lines (#38bdf8, #f472b6) on the messages chart
    const drawn = await linePixels(admin.page, [[56, 189, 248], [244, 114, 182]])
    t.ok(drawn > 50, `the messages/s lines are drawn (${drawn} pixels in their colours)`)
    t.equal(await admin.page.locator('.chart canvas').count(), 4, 'four charts')
    await shot(admin.page, '6-overview.png')
    await admin.page.goto(base + '/ui/#/groups')
    await admin.page.locator('tr[data-group="$share/workers/jobs/#"]').waitFor({ timeout: 3000 })
    await admin.page.locator('tr[data-group="$share/batch/jobs/#"]').waitFor({ timeout: 3000 })
    await admin.page.waitForSelector('.chart canvas')
    await sleep(2500)
    t.ok(await linePixels(admin.page, [[56, 189, 248]]) > 50, 'the queue depth of the first group is drawn')
    await shot(admin.page, '7-shared-groups.png')
    await admin.page.setViewportSize({ width: 420, height: 860 })
    await admin.page.goto(base + '/ui/#/overview')
    await admin.page.waitForSelector('.chart canvas')
    await sleep(500)
    t.ok(await admin.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no horizontal scrolling on a narrow screen')
    await shot(admin.page, '8-overview-narrow.png')
    clearInterval(traffic)
    t.same(await cspViolations(admin.page), [], 'no CSP violation on any page')
    t.same(admin.problems, [], 'no dialog, no page error')
  })

  await t.test('logout returns the API to 401', async (t) => {
    await admin.page.click('#logout')
    await admin.page.waitForSelector('form.login')
    t.equal(await apiStatus(admin.page, 'GET', '/api/v1/overview'), 401)
    t.equal(await apiStatus(admin.page, 'GET', '/api/v1/session'), 401)
    t.equal(await apiStatus(viewer.page, 'GET', '/api/v1/session'), 200, 'another session stays')
  })

  await viewer.context.close()
  await admin.context.close()
  t.ok(Date.now() - started < 60000, `the browser test took ${Date.now() - started} ms`)
})
