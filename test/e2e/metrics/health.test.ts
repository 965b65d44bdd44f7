/** /healthz and /readyz on the WebSocket HTTP server. */
import t from 'tap'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { httpBase } from '../../helpers/metrics.js'
import type { CulexServer } from '../../../lib/server.js'

async function get (server: CulexServer, path: string): Promise<{ status: number, body: Record<string, unknown>, type: string | null }> {
  const res = await fetch(`${httpBase(server)}${path}`)
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() as Record<string, unknown> }
}

interface AedesStore { destroy (): Promise<void> }

/**
 * Closes the broker's store the way a failing or closed store looks. aedes'
 * memory store throws on a second destroy(), which server.close() would do at
 * teardown, so the later call is made a no-op.
 */
async function closeStore (server: CulexServer): Promise<void> {
  const store = (server.broker.aedes as unknown as { persistence: AedesStore }).persistence
  const destroy = store.destroy.bind(store)
  const done = destroy()
  store.destroy = async () => { await done.catch(() => {}) }
  await done
}

t.test('/healthz answers 200 while the process serves', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const res = await get(server, '/healthz')
  t.equal(res.status, 200)
  t.equal(res.type, 'application/json')
  t.same(res.body, { status: 'ok' })
})

t.test('/readyz: 200 while listeners and store work, 503 once the store is closed', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const ready = await get(server, '/readyz')
  t.equal(ready.status, 200, 'ready')
  t.equal(ready.body.status, 'ready')
  t.equal(ready.body.store, 'ok')
  t.same(ready.body.listeners, [{ name: 'tcp', url: server.tcp?.url() }, { name: 'ws', url: server.ws?.url() }], 'lists the listeners it knows')
  t.notOk('reasons' in ready.body, 'no reasons when ready')

  await closeStore(server)
  const notReady = await get(server, '/readyz')
  t.equal(notReady.status, 503, '503 with the store closed')
  t.equal(notReady.body.status, 'not ready')
  t.match(notReady.body.store, /^error: /, 'says what is wrong with the store')
  t.match(notReady.body.reasons, [/^store: error: /])
  t.equal((await get(server, '/healthz')).status, 200, 'still alive: /healthz 200')
})

t.test('/readyz is 503 once broker shutdown has begun', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const client = await connectClient(t, tcpUrl(server), { clientId: 'health-client' })
  t.equal((await get(server, '/readyz')).status, 200)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  // what server.close() does first to aedes: it stops serving clients
  await new Promise<void>((resolve) => server.broker.aedes.close(() => resolve()))
  await closed
  const res = await get(server, '/readyz')
  t.equal(res.status, 503, '503')
  t.match(res.body.reasons, ['broker is shutting down'])
})
