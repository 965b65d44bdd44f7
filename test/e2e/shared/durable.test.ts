/**
 * Durable groups (spec 4.8.2 with persistent sessions, spec 4.1): a group
 * whose members are all offline with persistent sessions keeps its messages
 * for the first member that returns, also across a broker killed with
 * SIGKILL and restarted on the same data directory; the group ends with its
 * last member's session.
 *
 * Implemented in lib/shared/dispatcher.ts (setup, join, memberConnected,
 * sessionEnded, removeMember, dropGroup) and the store's `sharedStore()`
 * (lib/shared/store.ts, lib/persistence).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { IClientOptions, MqttClient } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { CULEX_BIN, startCulex, type CulexProcess } from '../../helpers/cli.js'
import { connectWithConnack, duplicates, groupStats, publishMany, rawMember, rawSubscribe, rawUnsubscribe, shareId, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const KEY = '$share/durable/jobs/#'

const v5Persistent = (clientId: string): IClientOptions => ({ clientId, clean: false, properties: { sessionExpiryInterval: 300 } })
const v4Persistent = (clientId: string): IClientOptions => ({ clientId, clean: false, protocolVersion: 4 })

/** Publishes numbered QoS 1 messages one by one; returns the PUBACK reason codes. */
async function publishNumbered (pub: MqttClient, prefix: string, count: number): Promise<number[]> {
  const codes: number[] = []
  for (let i = 0; i < count; i++) {
    const ack = await pub.publishAsync('jobs/durable', `${prefix}${i}`, { qos: 1 }) as { reasonCode?: number } | undefined
    codes.push(ack?.reasonCode ?? 0)
  }
  return codes
}

const numbered = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

t.test('all members offline with persistent sessions (v5 Session Expiry 300, 3.1.1 clean false): messages wait, the publisher gets PUBACKs, and they arrive when one member reconnects', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const v5Id = shareId('dur-v5')
  const v4Id = shareId('dur-v4')
  for (const opts of [v5Persistent(v5Id), v4Persistent(v4Id)]) {
    const m = await connectClient(t, url, opts)
    t.same((await m.subscribeAsync(KEY, { qos: 1 })).map(g => g.qos), [1], `${String(opts.clientId)} joined the group`)
    await m.endAsync()
  }
  let s = await waitForGroup(server, KEY, s => s?.membersOnline === 0 && s.membersOffline === 2, 'both members offline and still members')

  const pub = await connectClient(t, url, { clientId: shareId('pub') })
  const codes = await publishNumbered(pub, 'a', 20)
  t.same(codes, codes.map(() => 0), 'every message got PUBACK 0x00 (the offline group is a subscriber; not 0x10, spec 3.4.2.1)')
  s = groupStats(server, KEY)
  t.equal(s?.queued, 20, '20 messages wait in the group')

  const { client: v5, connack: v5Connack, inbox: v5Inbox } = await connectWithConnack(t, url, v5Persistent(v5Id))
  t.equal(v5Connack.sessionPresent, true, 'CONNACK Session Present 1: the session holds a shared subscription [MQTT-3.2.2-3]')
  const distinct = (inbox: ReturnType<typeof collect>): string[] => [...new Set(inbox.messages.map(text))].sort()
  await waitFor(() => distinct(v5Inbox).length >= 20, { what: () => `the v5 member got ${distinct(v5Inbox).length} of 20` })
  t.same(distinct(v5Inbox), numbered('a', 20).sort(), 'the v5 member that came back got all 20')
  t.ok(v5Inbox.messages.every(p => p.qos === 1), 'at QoS 1')
  await waitForGroup(server, KEY, s => s?.queued === 0 && s.inflight === 0 && s.delivered === 20, 'all 20 acknowledged')
  await v5.endAsync()
  await waitForMembers(server, KEY, 0)

  t.same(await publishNumbered(pub, 'b', 10), numbered('b', 10).map(() => 0), 'ten more, acknowledged while no member is online')
  const { connack: v4Connack, inbox: v4Inbox } = await connectWithConnack(t, url, v4Persistent(v4Id))
  t.equal(v4Connack.sessionPresent, true, '3.1.1 CONNACK Session Present 1 (MQTT 3.1.1 [MQTT-3.2.2-2])')
  await waitFor(() => distinct(v4Inbox).length >= 10, { what: () => `the 3.1.1 member got ${distinct(v4Inbox).length} of 10` })
  t.same(distinct(v4Inbox), numbered('b', 10).sort(), 'the 3.1.1 member that came back got the 10')
  await waitForGroup(server, KEY, s => s?.queued === 0 && s.inflight === 0 && s.delivered === 30, 'all 30 acknowledged')
  await sleep(200)
  t.same(duplicates(v5Inbox.messages.map(text)), [], 'nothing was delivered twice to the v5 member')
  t.equal(v5Inbox.messages.length, 20, 'the v5 member got 20 PUBLISH packets')
  t.same(duplicates(v4Inbox.messages.map(text)), [], 'nothing was delivered twice to the 3.1.1 member')
  t.equal(v4Inbox.messages.length, 10, 'the 3.1.1 member got 10 PUBLISH packets')
})

async function killCulex (c: CulexProcess): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) {
    c.child.kill('SIGKILL')
    await once(c.child, 'exit')
  }
}

async function startLevel (t: Test, dataDir: string): Promise<CulexProcess> {
  const c = await startCulex(['--host', '127.0.0.1', '--port', 'auto', '--ws-port', '0', '--persistence', 'level', '--data-dir', dataDir, '--log-level', 'info'])
  t.teardown(() => killCulex(c))
  return c
}

t.test('culex (--persistence level) killed with SIGKILL after the publisher got its PUBACKs, restarted on the same data dir: the member reconnects and receives every acknowledged message', async (t) => {
  if (!existsSync(CULEX_BIN)) {
    t.fail(`${CULEX_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
    return
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'culex-shared-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const memberId = shareId('dur-member')

  const first = await startLevel(t, dataDir)
  const member = await connectClient(t, first.url, v5Persistent(memberId))
  t.same((await member.subscribeAsync(KEY, { qos: 1 })).map(g => g.qos), [1])
  await member.endAsync()
  await sleep(200)
  const pub = await connectClient(t, first.url, { clientId: shareId('pub') })
  const TOTAL = 50
  await publishMany(pub, TOTAL, i => ({ topic: 'jobs/durable', payload: `k${i}` }), 10)
  t.pass(`the publisher got ${TOTAL} PUBACKs`)
  pub.end(true)
  await killCulex(first)
  t.equal(first.child.signalCode, 'SIGKILL', 'culex was killed')

  const second = await startLevel(t, dataDir)
  const { connack, inbox } = await connectWithConnack(t, second.url, v5Persistent(memberId))
  t.equal(connack.sessionPresent, true, 'the member\'s session survived the restart [MQTT-3.2.2-3]')
  const distinct = (): string[] => [...new Set(inbox.messages.map(text))].sort()
  try {
    await waitFor(() => distinct().length >= TOTAL, { timeout: 10000, what: () => `after the restart the member got ${distinct().length} of the ${TOTAL} acknowledged messages` })
  } catch (err) {
    t.fail((err as Error).message)
  }
  await sleep(300)
  t.same(distinct(), numbered('k', TOTAL).sort(), `every one of the ${TOTAL} acknowledged messages arrived`)
  t.same(duplicates(inbox.messages.map(text)), [], 'none twice')

  // the membership itself survived: new messages reach the member
  const pub2 = await connectClient(t, second.url, { clientId: shareId('pub2') })
  const before = inbox.messages.length
  await publishMany(pub2, 5, i => ({ topic: 'jobs/durable', payload: `after${i}` }), 1)
  await waitFor(() => inbox.messages.length >= before + 5, { what: () => `the member got ${inbox.messages.length - before} of 5 published after the restart` })
  t.same(inbox.messages.slice(before).map(text).sort(), numbered('after', 5).sort(), 'messages published after the restart reach the member')
})

t.test('the group disappears with its last member: UNSUBSCRIBE', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const a = await rawMember(t, port, { clientId: shareId('a'), clean: false, sessionExpiryInterval: 300 })
  const b = await rawMember(t, port, { clientId: shareId('b'), clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(a, [{ topic: KEY, qos: 1 }]), [1])
  t.same(await rawSubscribe(b, [{ topic: KEY, qos: 1 }]), [1])
  await waitForMembers(server, KEY, 2)
  t.same(await rawUnsubscribe(a, [KEY]), [0x00], 'the first member leaves')
  t.equal(groupStats(server, KEY)?.membersOnline, 1, 'the group lives on with one member')
  t.same(await rawUnsubscribe(b, [KEY]), [0x00], 'the last member leaves')
  t.equal(groupStats(server, KEY), undefined, 'stats() no longer lists the group')
})

t.test('the group disappears with its last member: UNSUBSCRIBE by the last member, and its queue goes with it', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const id = shareId('last')
  const m = await rawMember(t, port, { clientId: id, clean: false, sessionExpiryInterval: 300, receiveMaximum: 1 })
  t.same(await rawSubscribe(m, [{ topic: KEY, qos: 1 }]), [1])
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishNumbered(pub, 'q', 3)
  await waitForGroup(server, KEY, s => s?.inflight === 1 && s.queued === 2, 'one in flight, two waiting')
  t.same(await rawUnsubscribe(m, [KEY]), [0x00])
  t.equal(groupStats(server, KEY), undefined, 'stats() no longer lists the group')
  // a new group of the same name starts empty
  const n = await connectClient(t, tcpUrl(server), { clientId: shareId('next') })
  const inbox = collect(n)
  await n.subscribeAsync(KEY, { qos: 1 })
  await sleep(300)
  t.same(inbox.messages.map(text), [], 'a new member of a group of the same name gets none of the old queue')
})

t.test('the group disappears with its last member: the member reconnects with Clean Start [MQTT-3.1.2-4]', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const id = shareId('cleaner')
  const m = await connectClient(t, url, v5Persistent(id))
  await m.subscribeAsync(KEY, { qos: 1 })
  await m.endAsync()
  await waitForGroup(server, KEY, s => s?.membersOffline === 1, 'the member offline')
  const pub = await connectClient(t, url, { clientId: shareId('pub') })
  await publishNumbered(pub, 'c', 5)
  t.equal(groupStats(server, KEY)?.queued, 5, 'five wait for it')

  const clean = await connectClient(t, url, { clientId: id, clean: true })
  const inbox = collect(clean)
  await waitFor(() => groupStats(server, KEY) === undefined, { what: () => `the group is gone (stats: ${JSON.stringify(groupStats(server, KEY))})` })
  await sleep(200)
  t.same(inbox.messages.map(text), [], 'the new clean session gets none of the group\'s messages')
})

t.test('the group disappears with its last member: its session expires (v5 Session Expiry Interval 1)', async (t) => {
  const server = await startTestServer(t)
  const url = tcpUrl(server)
  const m = await connectClient(t, url, { clientId: shareId('expiring'), clean: false, properties: { sessionExpiryInterval: 1 } })
  await m.subscribeAsync(KEY, { qos: 1 })
  await m.endAsync()
  await waitForGroup(server, KEY, s => s?.membersOffline === 1, 'the member offline')
  const pub = await connectClient(t, url, { clientId: shareId('pub') })
  await publishNumbered(pub, 'e', 3)
  t.equal(groupStats(server, KEY)?.queued, 3)
  await waitFor(() => groupStats(server, KEY) === undefined, { timeout: 4000, what: () => `the group is gone after the session expired (stats: ${JSON.stringify(groupStats(server, KEY))})` })
  t.pass('stats() no longer lists the group')
})
