// A resumed session's queue (spec 4.4, [MQTT-4.4.0-1]): the store hands the
// QoS 1 head of the queue to the gateway in one go (QueueSink) instead of
// aedes sending one message per event-loop turn; what the client sees must
// be exactly what aedes' own path gives: every message once, in order, QoS 2
// and PUBREL flows after QoS 1 ones in queue order, the window respected,
// packet ids and DUP kept on redelivery, the ACL applied at delivery.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import type { CulexServer } from '../../../lib/server.js'
import type { ConfigInput } from '../../../lib/config/schema.js'
import type { CulexPersistence } from '../../../lib/persistence/index.js'
import { sleep } from '../../helpers/wait.js'

type Version = 4 | 5

async function start (t: Test, persistence: 'memory' | 'level', overrides: ConfigInput = {}): Promise<CulexServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'culex-drain-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  return await startTestServer(t, { persistence, dataDir, ...overrides })
}

function storeOf (server: CulexServer): CulexPersistence {
  return (server.broker.aedes as unknown as { persistence: CulexPersistence }).persistence
}

function sessionConnect (clientId: string, version: Version): Partial<IConnectPacket> {
  return version === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: 300 } } : { clientId, clean: false }
}

async function persistentClient (t: Test, server: CulexServer, clientId: string, version: Version): Promise<RawClient> {
  const c = await RawClient.connect(tcpPort(server), version, sessionConnect(clientId, version))
  t.teardown(() => c.destroy())
  return c
}

async function subscribe (c: RawClient, topic: string, qos: 0 | 1 | 2): Promise<void> {
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
  await c.next('suback')
}

/** Publishes `count` messages on `topic` with payload `<i>`, waiting for each flow to complete. */
/** A persistent session subscribed to `topic` and taken offline, and a publisher to queue messages for it. */
async function offlineSession (t: Test, server: CulexServer, clientId: string, topic: string, qos: 0 | 1 | 2, version: Version): Promise<RawClient> {
  const sub = await persistentClient(t, server, clientId, version)
  await subscribe(sub, topic, qos)
  sub.destroy()
  await sleep(50)
  const pub = await RawClient.connect(tcpPort(server), version, { clientId: clientId + '-pub' })
  t.teardown(() => pub.destroy())
  return pub
}

async function publishAll (c: RawClient, topic: string, qosOf: (i: number) => 1 | 2, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const qos = qosOf(i)
    c.send({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos, messageId: i + 1, retain: false, dup: false })
    if (qos === 1) {
      await c.next('puback')
    } else {
      await c.next('pubrec')
      c.send({ cmd: 'pubrel', messageId: i + 1 })
      await c.next('pubcomp')
    }
  }
}

/** Reads `count` PUBLISHes, acknowledging each (QoS 2 through PUBREL/PUBCOMP); `inFlight` tracks the most unacknowledged at once. */
async function receiveAll (c: RawClient, count: number, ack = true): Promise<{ publishes: IPublishPacket[], maxUnacked: number }> {
  const publishes: IPublishPacket[] = []
  let unacked = 0
  let maxUnacked = 0
  while (publishes.length < count) {
    const p = await c.next(undefined, 5000)
    if (p.cmd === 'pubrel') {
      c.send({ cmd: 'pubcomp', messageId: (p as Packet & { messageId: number }).messageId })
      unacked--
      continue
    }
    if (p.cmd !== 'publish') continue
    publishes.push(p)
    unacked++
    if (unacked > maxUnacked) maxUnacked = unacked
    if (!ack) continue
    if (p.qos === 1) {
      c.send({ cmd: 'puback', messageId: p.messageId as number })
      unacked--
    } else if (p.qos === 2) {
      c.send({ cmd: 'pubrec', messageId: p.messageId as number })
    }
  }
  return { publishes, maxUnacked }
}

/** Completes the QoS 2 flows whose PUBREL comes after the last PUBLISH was read. */
async function completePubrels (c: RawClient, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const p = await c.next('pubrel', Math.max(1, deadline - Date.now())).catch(() => undefined)
    if (p === undefined) return
    c.send({ cmd: 'pubcomp', messageId: (p as Packet & { messageId: number }).messageId })
  }
}

async function settled (store: CulexPersistence, check: (s: ReturnType<CulexPersistence['stats']>) => boolean): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (check(store.stats())) return true
    await sleep(20)
  }
  return false
}

for (const persistence of ['memory', 'level'] as const) {
  for (const version of [4, 5] as Version[]) {
    const name = `${persistence} store, ${version === 5 ? 'MQTT 5' : '3.1.1'}`

    t.test(`${name}: [MQTT-4.4.0-1] a resumed queue of QoS 1 and 2 messages, longer than the window, arrives once each and in order`, async (t) => {
      const server = await start(t, persistence)
      const pub = await offlineSession(t, server, 'drain-sub', 'drain/x', 2, version)
      // 150 > the window of 100: the rest goes through aedes' stream, with back-pressure
      const count = 150
      await publishAll(pub, 'drain/x', (i) => i % 7 === 3 ? 2 : 1, count)
      t.equal(storeOf(server).stats().queued, count, 'queued while offline')

      const back = await RawClient.open(tcpPort(server), version)
      t.teardown(() => back.destroy())
      back.send({ cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', keepalive: 60, ...sessionConnect('drain-sub', version) } as IConnectPacket)
      const first = await back.next()
      t.equal(first.cmd, 'connack', 'CONNACK comes first')
      t.equal((first as Packet & { sessionPresent: boolean }).sessionPresent, true, '[MQTT-3.2.2-2] session present')
      const { publishes } = await receiveAll(back, count)
      t.same(publishes.map((p) => Number(p.payload.toString())), Array.from({ length: count }, (_, i) => i), 'every message once, in queue order')
      t.same(publishes.map((p) => p.qos), Array.from({ length: count }, (_, i) => i % 7 === 3 ? 2 : 1), 'each at its QoS')
      t.notOk(publishes.some((p) => p.dup), 'first delivery: DUP 0 [MQTT-3.3.1-1]')
      const ids = new Set(publishes.slice(0, 100).map((p) => p.messageId))
      t.equal(ids.size, 100, 'distinct packet ids among those in flight together')
      await completePubrels(back, 300)
      t.ok(await settled(storeOf(server), (s) => s.queued === 0 && s.inflight === 0 && s.pubrels === 0), 'the queue is empty once all is acknowledged')
    })

    t.test(`${name}: [MQTT-4.4.0-1] [MQTT-3.3.1-1] unacknowledged queued messages come again with their packet ids and DUP`, async (t) => {
      const server = await start(t, persistence)
      const pub = await offlineSession(t, server, 'redo-sub', 'redo/x', 1, version)
      await publishAll(pub, 'redo/x', () => 1, 5)

      const first = await persistentClient(t, server, 'redo-sub', version)
      const got = (await receiveAll(first, 5, false)).publishes
      t.same(got.map((p) => p.payload.toString()), ['0', '1', '2', '3', '4'], 'delivered, not acknowledged')
      first.destroy()
      await sleep(100)
      t.equal(storeOf(server).stats().inflight, 5, 'their packet ids are kept')

      const second = await persistentClient(t, server, 'redo-sub', version)
      const again = (await receiveAll(second, 5)).publishes
      t.same(again.map((p) => p.payload.toString()), ['0', '1', '2', '3', '4'], 'sent again, in order')
      t.same(again.map((p) => p.messageId), got.map((p) => p.messageId), 'with the same packet ids')
      t.ok(again.every((p) => p.dup), 'and DUP 1')
      t.ok(await settled(storeOf(server), (s) => s.queued === 0), 'gone once acknowledged')
    })

    t.test(`${name}: a client window smaller than the queue: never more in flight than it allows, nothing lost`, async (t) => {
      const server = await start(t, persistence, { inflightWindow: 4, receiveMaximum: 100 })
      const pub = await offlineSession(t, server, 'win-sub', 'win/x', 1, version)
      await publishAll(pub, 'win/x', () => 1, 12)

      const connect = sessionConnect('win-sub', version)
      if (version === 5) connect.properties = { ...connect.properties, receiveMaximum: 4 }
      const back = await RawClient.connect(tcpPort(server), version, connect)
      t.teardown(() => back.destroy())
      const early = await receiveAll(back, 4, false)
      await sleep(100)
      t.equal(back.packets.filter((p) => p.cmd === 'publish').length, 0, 'no more than the window before an acknowledgement')
      for (const p of early.publishes) back.send({ cmd: 'puback', messageId: p.messageId as number })
      const rest = (await receiveAll(back, 8)).publishes
      t.same([...early.publishes, ...rest].map((p) => Number(p.payload.toString())), Array.from({ length: 12 }, (_, i) => i), 'all of them, in order')
    })

    t.test(`${name}: a queued message the client may no longer read is not sent and leaves the queue`, async (t) => {
      const dir = await mkdtemp(path.join(tmpdir(), 'culex-drain-acl-'))
      t.teardown(() => rm(dir, { recursive: true, force: true }))
      const aclFile = path.join(dir, 'acl')
      await writeFile(aclFile, 'topic readwrite acl/#\n')
      const server = await start(t, persistence, { aclFile })
      const pub = await offlineSession(t, server, 'acl-sub', 'acl/#', 1, version)
      await publishAll(pub, 'acl/open/1', () => 1, 2)
      await publishAll(pub, 'acl/closed/1', () => 1, 2)
      await publishAll(pub, 'acl/open/2', () => 1, 2)
      await writeFile(aclFile, 'topic readwrite acl/open/#\ntopic write acl/#\n')
      await server.reload()

      const back = await persistentClient(t, server, 'acl-sub', version)
      const { publishes } = await receiveAll(back, 4)
      await sleep(100)
      t.same(publishes.map((p) => p.topic), ['acl/open/1', 'acl/open/1', 'acl/open/2', 'acl/open/2'], 'only what it may read, in order')
      t.equal(back.packets.filter((p) => p.cmd === 'publish').length, 0, 'nothing else')
      t.ok(await settled(storeOf(server), (s) => s.queued === 0), 'the refused ones left the queue')
    })
  }
}
