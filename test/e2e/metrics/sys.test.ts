/**
 * $SYS topics with mosquitto's names, published by the broker every
 * `sysInterval` seconds, retained, to real subscribers.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import type { IPublishPacket, MqttClient } from 'mqtt'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub } from '../../helpers/mosquitto.js'
import { DampedLoad } from '../../../lib/metrics/sys.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

interface Seen { topic: string, value: string, at: number, retain: boolean }

/** Every $SYS message a client receives, in order. */
function sysWatcher (client: MqttClient): { seen: Seen[], last: (topic: string) => string | undefined, waitFor: (topic: string, pred: (v: string) => boolean, ms?: number) => Promise<string> } {
  const seen: Seen[] = []
  client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => { seen.push({ topic, value: payload.toString(), at: Date.now(), retain: packet.retain }) })
  const last = (topic: string): string | undefined => [...seen].reverse().find(s => s.topic === topic)?.value
  return {
    seen,
    last,
    async waitFor (topic, pred, ms = 5000) {
      let found: string | undefined
      await waitFor(() => { const v = last(topic); if (v !== undefined && pred(v)) { found = v; return true } return false }, { timeout: ms, what: () => `${topic} to satisfy the check (last: ${String(last(topic))})` })
      return found as string
    }
  }
}

t.test('$SYS/broker topics arrive every sysInterval with mosquitto names and values', async (t) => {
  const server = await startTestServer(t, { sysInterval: 1 })
  const watcher = await connectClient(t, tcpUrl(server), { clientId: 'sys-watcher' })
  const sys = sysWatcher(watcher)
  await watcher.subscribeAsync('$SYS/broker/#', { qos: 0 })

  // the tree was published at start and is retained
  const version = await sys.waitFor('$SYS/broker/version', () => true)
  t.equal(version, `culex version ${pkg.version}`, 'version matches package.json')
  t.ok(sys.seen.find(s => s.topic === '$SYS/broker/version')?.retain, 'retained')
  t.match(await sys.waitFor('$SYS/broker/load/messages/received/1min', () => true), /^\d+\.\d\d$/, 'load is "%.2f", like mosquitto')

  // uptime is published on every interval
  await waitFor(() => sys.seen.filter(s => s.topic === '$SYS/broker/uptime' && !s.retain).length >= 3, { timeout: 6000, what: 'three live uptime publications' })
  const uptimes = sys.seen.filter(s => s.topic === '$SYS/broker/uptime' && !s.retain)
  for (const u of uptimes) t.match(u.value, /^\d+ seconds$/, `"${u.value}"`)
  for (let i = 1; i < uptimes.length; i++) {
    const gap = (uptimes[i] as Seen).at - (uptimes[i - 1] as Seen).at
    t.ok(gap > 500 && gap < 2500, `publications ${gap} ms apart, for sysInterval 1 s`)
  }
  const secs = uptimes.map(u => parseInt(u.value, 10))
  t.ok((secs.at(-1) as number) > (secs[0] as number), 'uptime grows')

  // clients/connected follows connections
  await sys.waitFor('$SYS/broker/clients/connected', v => v === '1')
  const a = await connectClient(t, tcpUrl(server), { clientId: 'sys-a' })
  await connectClient(t, tcpUrl(server), { clientId: 'sys-b', protocolVersion: 4 })
  await sys.waitFor('$SYS/broker/clients/connected', v => v === '3')
  t.pass('clients/connected is 3 with 3 clients')
  t.equal(await sys.waitFor('$SYS/broker/clients/maximum', v => v === '3'), '3', 'clients/maximum')

  // messages/received counts the PUBLISH packets clients sent
  const received = Number(await sys.waitFor('$SYS/broker/messages/received', () => true))
  for (let i = 0; i < 5; i++) await a.publishAsync('sys/test', `m${i}`, { qos: 1 })
  await sys.waitFor('$SYS/broker/messages/received', v => Number(v) === received + 5)
  t.pass(`messages/received grew from ${received} to ${received + 5}`)
  t.equal(await sys.waitFor('$SYS/broker/publish/messages/received', v => Number(v) === received + 5), String(received + 5), 'publish/messages/received')
  await sys.waitFor('$SYS/broker/load/messages/received/1min', v => Number(v) > 0)
  t.pass('1 min load moved above 0')
  t.ok(Number(sys.last('$SYS/broker/messages/sent')) > 0, 'messages/sent counts the $SYS deliveries to the watcher')
  t.ok(sys.last('$SYS/broker/clients/disconnected') !== undefined, 'clients/disconnected (this store can count offline sessions)')
  t.equal(sys.last('$SYS/broker/clients/total'), String(3 + Number(sys.last('$SYS/broker/clients/disconnected'))), 'clients/total = connected + disconnected')

  // counts only a store with stats() can give
  const store = (server.broker.aedes as unknown as { persistence: { stats?: unknown } }).persistence
  if (typeof store.stats === 'function') {
    const retained = Number(await sys.waitFor('$SYS/broker/retained messages/count', () => true))
    await a.publishAsync('sys/retained', 'kept', { qos: 1, retain: true })
    await sys.waitFor('$SYS/broker/retained messages/count', v => Number(v) === retained + 1)
    t.pass(`retained messages/count grew from ${retained} to ${retained + 1}`)
    const subs = Number(await sys.waitFor('$SYS/broker/subscriptions/count', () => true))
    await a.subscribeAsync('sys/extra', { qos: 1 })
    await sys.waitFor('$SYS/broker/subscriptions/count', v => Number(v) === subs + 1)
    t.pass(`subscriptions/count grew from ${subs} to ${subs + 1}`)
  } else {
    t.equal(sys.last('$SYS/broker/retained messages/count'), undefined, 'no retained count: the store cannot tell')
  }
})

t.test('[MQTT-4.7.2-1] a # subscriber does not receive $SYS publications', async (t) => {
  const server = await startTestServer(t, { sysInterval: 1 })
  const all = await connectClient(t, tcpUrl(server), { clientId: 'sys-hash' })
  const live: string[] = []
  const retained: string[] = []
  all.on('message', (topic: string, _payload: Buffer, packet: IPublishPacket) => { (packet.retain ? retained : live).push(topic) })
  await all.subscribeAsync('#', { qos: 0 })
  await all.subscribeAsync('+/broker/#', { qos: 0 })
  await sleep(1500)
  t.same(live.filter(s => s.startsWith('$')), [], 'no live $SYS publication through # or +')

  // Retained messages sent on SUBSCRIBE are matched by the store. aedes' fallback
  // memory store (no stats()) matches # against $ topics; culex's store does not.
  const fallbackStore = typeof (server.broker.aedes as unknown as { persistence: { stats?: unknown } }).persistence.stats !== 'function'
  t.test('no retained $SYS message on SUBSCRIBE either', { todo: fallbackStore ? "aedes' fallback memory store matches # against $ topics (aedes-persistence retainedMessagesByPattern); needs a $ check in authorizeForward (lib/protocol/delivery.ts) or culex's store" : false }, async (t) => {
    t.same(retained.filter(s => s.startsWith('$')), [], 'no retained $ topics through # or +')
  })
})

t.test('sysInterval 0 publishes no $SYS tree', async (t) => {
  const server = await startTestServer(t, { sysInterval: 0 })
  const watcher = await connectClient(t, tcpUrl(server), { clientId: 'sys-off' })
  const topics: string[] = []
  watcher.on('message', (topic: string) => topics.push(topic))
  await watcher.subscribeAsync('$SYS/broker/#', { qos: 0 })
  await sleep(1200)
  t.same(topics, [], 'nothing under $SYS/broker')
})

t.test('shared group topics: from the shared-subscription module', async (t) => {
  const server = await startTestServer(t, { sysInterval: 1 })
  const members = [
    await connectClient(t, tcpUrl(server), { clientId: 'sys-worker-1' }),
    await connectClient(t, tcpUrl(server), { clientId: 'sys-worker-2', protocolVersion: 4 })
  ]
  for (const m of members) await m.subscribeAsync('$share/workers/jobs/#', { qos: 1 })
  const watcher = await connectClient(t, tcpUrl(server), { clientId: 'sys-shared' })
  const sys = sysWatcher(watcher)
  await watcher.subscribeAsync('$SYS/broker/shared/#', { qos: 0 })
  // $share/workers/jobs/# → ShareName, then the filter as one level
  const base = '$SYS/broker/shared/workers/jobs%2F%23'
  t.equal(await sys.waitFor(`${base}/members`, v => v === '2'), '2', 'members')
  t.equal(await sys.waitFor(`${base}/members/online`, v => v === '2'), '2', 'members/online')
  const pub = await connectClient(t, tcpUrl(server), { clientId: 'sys-jobs' })
  for (let i = 0; i < 4; i++) await pub.publishAsync(`jobs/${i}`, 'x', { qos: 1 })
  t.equal(await sys.waitFor(`${base}/delivered`, v => v === '4'), '4', 'delivered')
  t.equal(await sys.waitFor(`${base}/queued`, () => true), '0', 'queued')
  t.equal(await sys.waitFor(`${base}/inflight`, v => v === '0'), '0', 'inflight')
})

t.test('shared group topics are cleared when a group goes', async (t) => {
  const server = await startTestServer(t, { sysInterval: 1 })
  let groups = [{ group: 'batch', membersOnline: 2, membersOffline: 1, queued: 7, inflight: 3, delivered: 40, redelivered: 2, deadLettered: 1 }]
  // a provider whose group disappears (stands in for the shared-subscription module)
  Object.assign(server.broker, { sharedGroups: { stats: () => groups } })
  const watcher = await connectClient(t, tcpUrl(server), { clientId: 'sys-shared-gone' })
  const sys = sysWatcher(watcher)
  await watcher.subscribeAsync('$SYS/broker/shared/#', { qos: 0 })
  t.equal(await sys.waitFor('$SYS/broker/shared/batch/members', () => true), '3', 'members: online + offline')
  t.equal(await sys.waitFor('$SYS/broker/shared/batch/queued', () => true), '7')

  groups = [{ ...groups[0] as typeof groups[0], delivered: 41 }]
  t.equal(await sys.waitFor('$SYS/broker/shared/batch/delivered', v => v === '41'), '41', 'updated on the next interval')

  groups = []
  await sys.waitFor('$SYS/broker/shared/batch/queued', v => v === '')
  t.pass('a group that is gone gets its retained values cleared (empty payload)')
  const late = await connectClient(t, tcpUrl(server), { clientId: 'sys-shared-late' })
  const lateTopics: string[] = []
  late.on('message', (topic: string) => lateTopics.push(topic))
  await late.subscribeAsync('$SYS/broker/shared/#', { qos: 0 })
  await sleep(300)
  t.same(lateTopics, [], 'a new subscriber gets no stale retained group values')
})

const mosquittoInstalled = await hasMosquittoClients()

t.test('mosquitto_sub reads $SYS/broker/version', { skip: mosquittoInstalled ? false : 'mosquitto_sub not installed' }, async (t) => {
  const server = await startTestServer(t, { sysInterval: 1 })
  const port = String(server.tcp?.address().port)
  for (const v of ['5', '311']) {
    const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', v, '-t', '$SYS/broker/version', '-C', '1', '-W', '5'])
    const [line] = await sub.lines$(1)
    t.equal(line, `culex version ${pkg.version}`, `mosquitto_sub -V ${v}`)
  }
})

t.test('the load average is mosquitto\'s exponentially damped rate per minute', async (t) => {
  const load = new DampedLoad(0)
  // 60 messages in 60 s is 60/min; after one 60 s step the 1 min average has moved 1 - 1/e of the way
  const [one, five, fifteen] = load.update(60, 60)
  t.equal((one as number).toFixed(4), (60 * (1 - Math.exp(-1))).toFixed(4), '1 min')
  t.equal((five as number).toFixed(4), (60 * (1 - Math.exp(-60 / 300))).toFixed(4), '5 min')
  t.equal((fifteen as number).toFixed(4), (60 * (1 - Math.exp(-60 / 900))).toFixed(4), '15 min')
  // a steady rate converges to it
  for (let i = 0; i < 100; i++) load.update(60 * (i + 2), 60)
  t.equal((load.current()[0] as number).toFixed(2), '60.00', 'steady 60/min converges to 60.00')
})
