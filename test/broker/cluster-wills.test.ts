/**
 * The broker's side of wills cluster-wide, against a stub aedes and a stub
 * cluster: which will is held, dropped or handed to the cluster's timer, and
 * how a due will is published.
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { Aedes, Client } from 'aedes'
import type { ClusterView, ClusterWill, WillsHost } from '../../lib/cluster/index.js'
import { silentLogger } from '../../lib/logging.js'
import { willDelayMs, wireClusterWills } from '../../lib/broker/cluster-wills.js'

type Call = [string, ...unknown[]]

function setup (options: { defer?: boolean, acl?: (topic: string) => boolean } = {}): { aedes: EventEmitter & { delayedWills: Map<string, { clear: () => void }> }, calls: Call[], published: unknown[], routed: unknown[], host: () => WillsHost, epochs: WeakMap<Client, number> } {
  const calls: Call[] = []
  const published: unknown[] = []
  const routed: unknown[] = []
  let host: WillsHost | undefined
  const aedes = Object.assign(new EventEmitter(), {
    delayedWills: new Map<string, { clear: () => void }>(),
    authorizePublish (_client: unknown, _packet: unknown, cb: (err: Error | null) => void) { cb(null) },
    publish (packet: unknown, cb: (err?: Error) => void) { published.push(packet); cb() }
  })
  const cluster = {
    attachWills (h: WillsHost) { host = h },
    holdWill (...args: unknown[]) { calls.push(['hold', ...args]) },
    dropWill (...args: unknown[]) { calls.push(['drop', ...args]) },
    async deferWill (...args: unknown[]) { calls.push(['defer', ...args]); return options.defer ?? true },
    route (message: unknown) { routed.push(message); return 1 },
    async routeDurable (message: unknown) { routed.push({ durable: message, publishedBefore: published.length }) }
  } as unknown as ClusterView
  const epochs = new WeakMap<Client, number>()
  const security = options.acl === undefined ? undefined : { hasAcl: true, mayPublish: (_c: unknown, topic: string) => options.acl?.(topic) ?? true }
  wireClusterWills(aedes as unknown as Aedes, {
    cluster,
    logger: silentLogger(),
    security: security as never,
    gatewayOf: () => undefined,
    store: () => undefined,
    clientById: () => undefined
  }, (client) => epochs.get(client))
  return { aedes, calls, published, routed, host: () => { if (host === undefined) throw new Error('no host'); return host }, epochs }
}

function client (epochs: WeakMap<Client, number>, id: string, epoch: number, will: unknown, version = 5, sessionExpiryInterval = 60): Client {
  const c = { id, version, sessionExpiryInterval, will } as unknown as Client
  epochs.set(c, epoch)
  return c
}

const will = (topic: string, delay?: number): unknown => ({ topic, payload: Buffer.from('x'), qos: 0, retain: false, ...(delay !== undefined ? { properties: { willDelayInterval: delay } } : {}) })

t.test('[MQTT-3.1.2-8] the delay is the Will Delay Interval capped by the Session Expiry Interval; 3.1.1 has none', async (t) => {
  const w = will('t', 30) as Parameters<typeof willDelayMs>[1]
  t.equal(willDelayMs({ version: 5, sessionExpiryInterval: 60 }, w), 30000)
  t.equal(willDelayMs({ version: 5, sessionExpiryInterval: 10 }, w), 10000, 'capped by the session')
  t.equal(willDelayMs({ version: 5, sessionExpiryInterval: 0 }, w), 0, 'a session that ends with the connection: at once')
  t.equal(willDelayMs({ version: 4, sessionExpiryInterval: 0 }, w), 0, '3.1.1')
  t.equal(willDelayMs({ version: 5, sessionExpiryInterval: 60 }, will('t') as Parameters<typeof willDelayMs>[1]), 0, 'no Will Delay')
})

t.test('a live connection\'s will is held; a reserved topic or one the ACL refuses is not', async (t) => {
  const { aedes, calls, epochs } = setup({ acl: (topic) => topic !== 'forbidden' })
  aedes.emit('clientReady', client(epochs, 'a', 3, will('wills/a', 5)))
  aedes.emit('clientReady', client(epochs, 'b', 4, will('$SYS/x')))
  aedes.emit('clientReady', client(epochs, 'c', 5, will('forbidden')))
  aedes.emit('clientReady', client(epochs, 'd', 6, undefined))
  t.match(calls[0], ['hold', 'a', 3, { topic: 'wills/a' }, 5000])
  t.same(calls.slice(1), [['drop', 'b', 4], ['drop', 'c', 5], ['drop', 'd', 6]], 'the others only clear a stale will of their id')
})

t.test('at the disconnect: dropped when aedes published or discarded it; handed to the cluster when aedes times it [MQTT-3.1.3-9]', async (t) => {
  const { aedes, calls, epochs } = setup()
  const now = client(epochs, 'now', 1, will('w/now'))
  const later = client(epochs, 'later', 2, will('w/later', 5))
  aedes.emit('clientReady', now)
  aedes.emit('clientReady', later)
  calls.length = 0
  aedes.emit('clientDisconnect', now)
  let cleared = false
  aedes.delayedWills.set('later', { clear () { cleared = true } })
  aedes.emit('clientDisconnect', later)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, [['drop', 'now', 1], ['defer', 'later', 2, 5000]])
  t.equal(cleared, true, 'aedes\' own timer is cancelled once the cluster has the will')
  t.equal(aedes.delayedWills.has('later'), false)
})

t.test('a will the cluster could not take stays timed by aedes', async (t) => {
  const { aedes, epochs } = setup({ defer: false })
  const later = client(epochs, 'later', 2, will('w/later', 5))
  aedes.emit('clientReady', later)
  let cleared = false
  aedes.delayedWills.set('later', { clear () { cleared = true } })
  aedes.emit('clientDisconnect', later)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(cleared, false)
  t.equal(aedes.delayedWills.has('later'), true)
})

t.test('a due will is published on this node and routed to the other nodes: QoS 1/2 into their inboxes first', async (t) => {
  const { host, published, routed } = setup()
  const w0: ClusterWill = { topic: 'w/0', payload: Buffer.from('zero'), qos: 0, retain: false, properties: { contentType: 'text/plain' } }
  const w1: ClusterWill = { topic: 'w/1', payload: Buffer.from('one'), qos: 1, retain: true }
  await host().publish('c0', w0)
  await host().publish('c1', w1)
  t.match(published, [{ topic: 'w/0', qos: 0, properties: { contentType: 'text/plain' } }, { topic: 'w/1', qos: 1, retain: true }])
  t.match(routed, [{ topic: 'w/0' }, { durable: { topic: 'w/1', qos: 1, retain: true }, publishedBefore: 1 }],
    'QoS 0 routed after its publish; QoS 1 in the other nodes\' inboxes before it is published here (cluster-qos.ts)')
  t.equal(routed.length, 2)
})
