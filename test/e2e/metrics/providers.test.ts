/**
 * Metrics read from other components at scrape time: the store (stats(),
 * onBatch(), isWritable(), countOffline()) and the shared-subscription
 * module (broker.sharedGroups.stats()). Each is optional; what a component
 * does not offer is absent, never a made-up number.
 */
import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { startServer, type CulexServer } from '../../../lib/server.js'
import { silentLogger } from '../../../lib/logging.js'
import type { AedesPersistence } from '../../../lib/broker.js'
import type { StoreBatchInfo, StoreStats } from '../../../lib/metrics/index.js'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { httpBase, scrape } from '../../helpers/metrics.js'
import { waitFor } from '../../helpers/wait.js'

/** aedes' in-memory store factory (CommonJS; its declared default export does not type under NodeNext) */
const memory = createRequire(import.meta.url)('aedes-persistence') as () => unknown

interface RetainedPacket { topic: string, payload: Buffer }

/**
 * A store double: aedes' memory store with the optional capabilities culex's
 * own store offers (or will), counting what really passes through it.
 */
function storeWithCapabilities (): { store: AedesPersistence, writable: { value: boolean } } {
  const base = memory() as unknown as Record<string | symbol, unknown> & { storeRetained (p: RetainedPacket): Promise<void> }
  const retained = new Set<string>()
  const batchListeners = new Set<(info: StoreBatchInfo) => void>()
  const writable = { value: true }
  const extras: Record<string, unknown> = {
    async storeRetained (packet: RetainedPacket) {
      const started = performance.now()
      await base.storeRetained(packet)
      if (packet.payload.length === 0) retained.delete(packet.topic)
      else retained.add(packet.topic)
      for (const l of batchListeners) l({ durationMs: performance.now() - started, size: 1 })
    },
    stats (): StoreStats {
      return { retained: retained.size, queued: 0, subscriptions: 5, offlineSessions: 2 }
    },
    onBatch (listener: (info: StoreBatchInfo) => void) {
      batchListeners.add(listener)
      return () => batchListeners.delete(listener)
    },
    async isWritable () { return writable.value }
  }
  const store = new Proxy(base, {
    get (target, prop) {
      if (typeof prop === 'string' && prop in extras) return extras[prop]
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    }
  })
  return { store: store as unknown as AedesPersistence, writable }
}

async function startWithStore (t: Test, store: AedesPersistence): Promise<CulexServer> {
  const server = await startServer({ host: '127.0.0.1', port: 'auto', wsPort: 'auto', tlsPort: 0, wssPort: 0, persistence: 'memory', logLevel: 'silent', sysInterval: 0 }, { logger: silentLogger(), persistence: store })
  t.teardown(() => server.close())
  return server
}

t.test('a store with stats(): retained, queued, subscriptions and offline sessions are read from it', async (t) => {
  const { store } = storeWithCapabilities()
  const server = await startWithStore(t, store)
  const c = await connectClient(t, tcpUrl(server), { clientId: 'prov-1' })
  await c.publishAsync('r/1', 'one', { qos: 1, retain: true })
  await c.publishAsync('r/2', 'two', { qos: 1, retain: true })
  const s = await scrape(server)
  t.equal(s.get('culex_retained_messages'), 2, 'two retained messages')
  t.equal(s.get('culex_queued_messages'), 0)
  t.equal(s.get('culex_subscriptions'), 5, 'as the store counts them')
  t.equal(s.get('culex_sessions', { state: 'offline' }), 2, 'offlineSessions from the store')
  t.equal(s.get('culex_sessions', { state: 'online' }), 1, 'online: the connected client')

  await c.publishAsync('r/1', '', { qos: 1, retain: true })
  t.equal((await scrape(server)).get('culex_retained_messages'), 1, 'an empty retained message removed one')
})

t.test('a store with onBatch(): write latency and batch size histograms', async (t) => {
  const { store } = storeWithCapabilities()
  const server = await startWithStore(t, store)
  const before = await scrape(server)
  t.equal(before.get('culex_store_write_seconds_count'), 0, 'histogram registered, empty')
  const c = await connectClient(t, tcpUrl(server), { clientId: 'prov-2' })
  for (let i = 0; i < 3; i++) await c.publishAsync(`b/${i}`, 'x', { qos: 1, retain: true })
  const after = await scrape(server)
  t.equal(after.get('culex_store_write_seconds_count'), 3, 'three batches timed')
  t.equal(after.get('culex_store_batch_size_count'), 3)
  t.equal(after.get('culex_store_batch_size_sum'), 3, 'of one operation each')
  t.equal(after.get('culex_store_batch_size_bucket', { le: '1' }), 3)
  t.ok((after.get('culex_store_write_seconds_sum') ?? -1) >= 0, 'seconds, not milliseconds')
})

t.test('a store with isWritable(): /readyz follows it', async (t) => {
  const { store, writable } = storeWithCapabilities()
  const server = await startWithStore(t, store)
  let res = await fetch(`${httpBase(server)}/readyz`)
  t.equal(res.status, 200)
  await res.text()
  writable.value = false
  res = await fetch(`${httpBase(server)}/readyz`)
  t.equal(res.status, 503)
  t.match(await res.json(), { status: 'not ready', store: 'not writable', reasons: ['store: not writable'] })
})

t.test('the configured memory store: retained and session counts move with real clients', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const store = (server.broker.aedes as unknown as { persistence: { stats?: () => StoreStats } }).persistence
  const first = await scrape(server)
  if (typeof store.stats === 'function') {
    t.equal(first.get('culex_retained_messages'), 0, 'no retained message yet')
    const c = await connectClient(t, tcpUrl(server), { clientId: 'retainer' })
    await c.publishAsync('e2e/1', 'a', { qos: 1, retain: true })
    await c.publishAsync('e2e/2', 'b', { qos: 1, retain: true })
    t.equal((await scrape(server)).get('culex_retained_messages'), 2, 'two retained messages, counted by the store')
    await c.endAsync()
  } else {
    // aedes' fallback memory store cannot count them: absent, not zero
    t.notOk(first.has('culex_retained_messages'), 'retained count absent: the store cannot tell')
    t.notOk(first.has('culex_queued_messages'), 'queued count absent')
  }

  // offline sessions: the store's offlineSessions, else derived from countOffline() (sources.ts)
  t.equal(first.get('culex_sessions', { state: 'offline' }), 0)
  // a persistent session (Session Expiry Interval > 0) with a subscription, online then offline
  const p = await connectClient(t, tcpUrl(server), { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 300 } })
  await p.subscribeAsync('k/#', { qos: 1 })
  // a clean one with a subscription: aedes does not store its subscriptions
  const clean = await connectClient(t, tcpUrl(server), { clientId: 'cleanly' })
  await clean.subscribeAsync('c/#', { qos: 1 })
  await waitFor(async () => (await scrape(server)).get('culex_sessions', { state: 'online' }) === 2, { what: 'two online' })
  t.equal((await scrape(server)).get('culex_sessions', { state: 'offline' }), 0, 'a connected persistent session is not offline')
  if (typeof store.stats === 'function') {
    t.equal((await scrape(server)).get('culex_subscriptions'), 2, 'subscriptions: the persistent session\'s (stored) and the clean one\'s (live)')
  }

  await p.endAsync()
  await waitFor(async () => (await scrape(server)).get('culex_sessions', { state: 'online' }) === 1, { what: 'keeper gone' })
  t.equal((await scrape(server)).get('culex_sessions', { state: 'offline' }), 1, 'the persistent session is offline')
  if (typeof store.stats === 'function') {
    t.equal((await scrape(server)).get('culex_subscriptions'), 2, 'an offline session keeps its subscription')
  }

  await connectClient(t, tcpUrl(server), { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 300 } })
  await waitFor(async () => (await scrape(server)).get('culex_sessions', { state: 'online' }) === 2, { what: 'keeper back' })
  t.equal((await scrape(server)).get('culex_sessions', { state: 'offline' }), 0, 'resumed: online again')
})

t.test('shared groups: read from the shared-subscription module at each scrape', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const group = '$share/workers/jobs/#'
  const members = [
    await connectClient(t, tcpUrl(server), { clientId: 'worker-1' }),
    await connectClient(t, tcpUrl(server), { clientId: 'worker-2' })
  ]
  let received = 0
  for (const m of members) {
    m.on('message', () => { received++ })
    await m.subscribeAsync(group, { qos: 1 })
  }
  const pub = await connectClient(t, tcpUrl(server), { clientId: 'job-source' })
  const before = await scrape(server)
  t.equal(before.get('culex_shared_group_members', { group, state: 'online' }), 2, 'two members online')
  t.equal(before.get('culex_shared_group_members', { group, state: 'offline' }), 0)
  for (let i = 0; i < 6; i++) await pub.publishAsync(`jobs/${i}`, `job ${i}`, { qos: 1 })
  await waitFor(() => received === 6, { what: 'six jobs received' })
  await waitFor(async () => (await scrape(server)).get('culex_shared_group_inflight', { group }) === 0, { what: 'all acknowledged' })
  const after = await scrape(server)
  t.equal(after.get('culex_shared_group_delivered_total', { group }), 6, 'each job delivered once, to one member')
  t.equal(after.get('culex_shared_group_queued', { group }), 0)
  t.equal(after.get('culex_shared_group_redelivered_total', { group }), 0)
  t.equal(after.get('culex_shared_group_dead_lettered_total', { group }), 0)
  t.equal(after.get('culex_messages_sent_total', { qos: '1' }), 6, 'the same six in the traffic counters')
})

t.test('shared groups: a malformed provider entry is left out, not exported as garbage', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  // a provider that misbehaves (stands in for a broken shared-subscription module)
  Object.assign(server.broker, {
    sharedGroups: {
      stats: () => [
        { group: 'good', membersOnline: 3, membersOffline: 1, queued: 4, inflight: 2, delivered: 10, redelivered: 1, deadLettered: 0, dropped: 5 },
        { group: 'bad', membersOnline: 'many' },
        { group: 'negative', membersOnline: -1, membersOffline: 0, queued: 0, inflight: 0, delivered: 0, redelivered: 0, deadLettered: 0 }
      ]
    }
  })
  const s = await scrape(server)
  t.equal(s.get('culex_shared_group_members', { group: 'good', state: 'online' }), 3)
  t.equal(s.get('culex_shared_group_dropped_total', { group: 'good' }), 5)
  t.equal(s.get('culex_shared_group_queued', { group: 'bad' }), undefined, 'a malformed entry is left out')
  t.equal(s.get('culex_shared_group_queued', { group: 'negative' }), undefined, 'so is a negative count')
})
