/**
 * Shared subscriptions as competing-consumer queues (spec 4.8.2): each message
 * published to a group's filter goes to exactly one member of the group, with
 * mosquitto_sub (-V 5), MQTT.js v5 and MQTT.js 3.1.1 members side by side,
 * while a non-shared subscription to the same topics still gets every message.
 * Then each member-selection strategy, set per group by pattern
 * (`sharedStrategies`).
 *
 * Implemented in lib/shared/dispatcher.ts (route, drain) and
 * lib/shared/strategies.ts.
 */
import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub, type SubProcess } from '../../helpers/mosquitto.js'
import type { CulexServer } from '../../../lib/server.js'
import type { ConfigInput } from '../../../lib/config/schema.js'
import { duplicates, groupStats, publishMany, shareId, text, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('3000 QoS 1 messages split round-robin across 3 mosquitto_sub, an MQTT.js v5 and an MQTT.js 3.1.1 member; each arrives exactly once; a non-shared subscriber gets all 3000 (spec 4.8.2)', async (t) => {
  if (!await hasMosquittoClients()) {
    t.fail('mosquitto-clients is not installed (.ci/run installs it)')
    return
  }
  const TOTAL = 3000
  const MEMBERS = 5
  const key = '$share/workers/jobs/#'
  const server = await startTestServer(t)
  const port = String(tcpPort(server))

  const subs: Array<{ id: string, proc: SubProcess }> = []
  for (const name of ['mosq-a', 'mosq-b', 'mosq-c']) {
    const id = shareId(name)
    const proc = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', '5', '-q', '1', '-i', id, '-v', '-t', key])
    subs.push({ id, proc })
  }
  const v5 = await connectClient(t, tcpUrl(server), { clientId: shareId('mqttjs-v5') })
  const v5Inbox = collect(v5)
  t.same((await v5.subscribeAsync(key, { qos: 1 })).map(g => g.qos), [1], 'MQTT.js v5 member granted QoS 1')
  const v4 = await connectClient(t, tcpUrl(server), { clientId: shareId('mqttjs-v4'), protocolVersion: 4 })
  const v4Inbox = collect(v4)
  t.same((await v4.subscribeAsync(key, { qos: 1 })).map(g => g.qos), [1], 'MQTT.js 3.1.1 member granted QoS 1')
  const plain = await connectClient(t, tcpUrl(server), { clientId: shareId('plain') })
  const plainInbox = collect(plain)
  await plain.subscribeAsync('jobs/#', { qos: 1 })
  await waitForMembers(server, key, MEMBERS, 10000)

  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  // in batches of 50 (25 in flight), each taken by the group before the next:
  // 10 per member per batch, so no member's window (mosquitto_sub's Receive
  // Maximum is 20) fills up and round-robin never has to skip one
  const BATCH = 50
  for (let sent = 0; sent < TOTAL; sent += BATCH) {
    await publishMany(pub, BATCH, i => ({ topic: `jobs/${(sent + i) % 10}`, payload: `job-${sent + i}` }), 25)
    await waitForGroup(server, key, s => s?.delivered === sent + BATCH, `${sent + BATCH} delivered`, 10000)
  }
  t.pass(`the publisher got ${TOTAL} PUBACKs`)

  // every member acknowledged its share; nothing is waiting or in flight
  await waitForGroup(server, key, s => s?.delivered === TOTAL && s.inflight === 0 && s.queued === 0, `${TOTAL} delivered`, 30000)
  await waitFor(() => plainInbox.messages.length >= TOTAL, { timeout: 30000, what: () => `the non-shared subscriber got ${plainInbox.messages.length} of ${TOTAL}` })
  // mosquitto_sub prints each message after acknowledging it: wait for the
  // lines, then let anything extra arrive
  const arrived = (): number => subs.reduce((n, s) => n + s.proc.lines.length, 0) + v5Inbox.messages.length + v4Inbox.messages.length
  await waitFor(() => arrived() >= TOTAL, { timeout: 30000, what: () => `the group printed or received ${arrived()} of ${TOTAL}` })
  await sleep(300)

  const received = new Map<string, string[]>()
  for (const s of subs) {
    received.set(s.id, s.proc.lines.map((line) => {
      const [topic, payload] = line.split(' ')
      if (!topic?.startsWith('jobs/') || payload === undefined) t.fail(`unexpected mosquitto_sub line ${JSON.stringify(line)}`)
      return payload ?? ''
    }))
  }
  received.set('mqttjs-v5', v5Inbox.messages.map(text))
  received.set('mqttjs-v4', v4Inbox.messages.map(text))

  const all = [...received.values()].flat()
  t.same(duplicates(all), [], 'no message arrived twice across the group')
  t.equal(all.length, TOTAL, `${TOTAL} messages arrived across the group`)
  t.equal(new Set(all).size, TOTAL, 'every message arrived')
  const fair = TOTAL / MEMBERS
  for (const [id, got] of received) {
    t.ok(Math.abs(got.length - fair) <= 1, `round-robin: ${id} got ${got.length}, within 1 of ${fair}`)
  }
  const plainGot = plainInbox.messages.map(text)
  t.equal(plainGot.length, TOTAL, 'the non-shared subscriber got exactly 3000')
  t.equal(new Set(plainGot).size, TOTAL, 'the non-shared subscriber got every message once')
  t.equal(groupStats(server, key)?.redelivered, 0, 'nothing was redelivered')
})

// ---------------------------------------------------------------- strategies

const STRATEGY_RULES: ConfigInput = {
  sharedStrategies: [
    { pattern: 'rand-*', strategy: 'random' },
    { pattern: 'sticky-*', strategy: 'sticky' },
    { pattern: 'byclient-*', strategy: 'hash-clientid' },
    { pattern: 'bytopic-*', strategy: 'hash-topic' }
  ]
}

interface Member { id: string, client: MqttClient, got: () => string[] }

/** `n` MQTT.js v5 members of `key`, with fixed client ids (m-0, m-1, ...). */
async function members (t: Test, server: CulexServer, key: string, n: number): Promise<Member[]> {
  const out: Member[] = []
  for (let i = 0; i < n; i++) {
    const id = `m-${i}`
    const client = await connectClient(t, tcpUrl(server), { clientId: id })
    const inbox = collect(client)
    await client.subscribeAsync(key, { qos: 1 })
    out.push({ id, client, got: () => inbox.messages.map(text) })
  }
  await waitForMembers(server, key, n)
  return out
}

/** payload -> the member that got it; fails on a duplicate. */
function owners (t: Test, ms: Member[]): Map<string, string> {
  const map = new Map<string, string>()
  for (const m of ms) {
    for (const p of m.got()) {
      if (map.has(p)) t.fail(`${p} arrived at ${map.get(p) as string} and at ${m.id}`)
      map.set(p, m.id)
    }
  }
  return map
}

async function allDelivered (server: CulexServer, key: string, total: number): Promise<void> {
  await waitForGroup(server, key, s => s?.delivered === total && s.inflight === 0, `${total} delivered`, 10000)
  await sleep(100)
}

t.test('random (group rand-* by pattern): every message delivered once, every member got some, not in turn', async (t) => {
  const server = await startTestServer(t, STRATEGY_RULES)
  const key = '$share/rand-pool/tasks/#'
  const ms = await members(t, server, key, 3)
  const pub = await connectClient(t, tcpUrl(server), { clientId: 'pub' })
  const TOTAL = 300
  await publishMany(pub, TOTAL, i => ({ topic: 'tasks/x', payload: String(i) }), 1)
  await allDelivered(server, key, TOTAL)
  const owner = owners(t, ms)
  t.equal(owner.size, TOTAL, 'every message delivered')
  for (const m of ms) t.ok(m.got().length > 0, `${m.id} got some (${m.got().length})`)
  const sequence = Array.from({ length: TOTAL }, (_, i) => owner.get(String(i)))
  const repeats = sequence.filter((o, i) => i > 0 && o === sequence[i - 1]).length
  t.ok(repeats > 0, `some consecutive messages went to the same member (${repeats}), which round-robin never does`)
})

t.test('sticky (group sticky-* by pattern): all to one member while it stays; when it disconnects, the rest go to one other member', async (t) => {
  const server = await startTestServer(t, STRATEGY_RULES)
  const key = '$share/sticky-pool/tasks/#'
  const ms = await members(t, server, key, 3)
  const pub = await connectClient(t, tcpUrl(server), { clientId: 'pub' })
  await publishMany(pub, 100, i => ({ topic: `tasks/${i % 4}`, payload: `a${i}` }), 10)
  await allDelivered(server, key, 100)
  const first = ms.filter(m => m.got().length > 0)
  t.equal(first.length, 1, `one member got the first 100 (${ms.map(m => `${m.id}:${m.got().length}`).join(' ')})`)
  const stuck = first[0] as Member
  t.equal(stuck.got().length, 100)

  await stuck.client.endAsync()
  await waitForMembers(server, key, 2)
  await publishMany(pub, 100, i => ({ topic: `tasks/${i % 4}`, payload: `b${i}` }), 10)
  await allDelivered(server, key, 200)
  const second = ms.filter(m => m !== stuck && m.got().length > 0)
  t.equal(second.length, 1, `one other member got the next 100 (${ms.map(m => `${m.id}:${m.got().length}`).join(' ')})`)
  t.equal(second[0]?.got().length, 100)
  t.equal(owners(t, ms).size, 200, 'all 200 delivered once')
})

t.test('hash-clientid (group byclient-* by pattern): each publisher\'s messages all go to one member', async (t) => {
  const server = await startTestServer(t, STRATEGY_RULES)
  const key = '$share/byclient-pool/tasks/#'
  const ms = await members(t, server, key, 3)
  const publishers = ['pub-alpha', 'pub-beta', 'pub-gamma', 'pub-delta']
  const PER = 50
  await Promise.all(publishers.map(async (id) => {
    const pub = await connectClient(t, tcpUrl(server), { clientId: id })
    await publishMany(pub, PER, i => ({ topic: `tasks/${i % 5}`, payload: `${id}:${i}` }), 5)
  }))
  await allDelivered(server, key, PER * publishers.length)
  const owner = owners(t, ms)
  t.equal(owner.size, PER * publishers.length, 'every message delivered once')
  const chosen = new Set<string>()
  for (const id of publishers) {
    const to = new Set([...owner].filter(([p]) => p.startsWith(id + ':')).map(([, m]) => m))
    t.equal(to.size, 1, `every message of ${id} went to one member (${[...to].join(', ')})`)
    for (const m of to) chosen.add(m)
  }
  t.ok(chosen.size > 1, `the publishers are spread over more than one member (${[...chosen].join(', ')})`)
})

t.test('hash-topic (group bytopic-* by pattern): the messages of a topic all go to one member, in publish order', async (t) => {
  const server = await startTestServer(t, STRATEGY_RULES)
  const key = '$share/bytopic-pool/orders/#'
  const ms = await members(t, server, key, 3)
  const pub = await connectClient(t, tcpUrl(server), { clientId: 'pub' })
  const TOPICS = 8
  const PER = 30
  await publishMany(pub, TOPICS * PER, i => ({ topic: `orders/${i % TOPICS}`, payload: `${i % TOPICS}:${Math.floor(i / TOPICS)}` }), 20)
  await allDelivered(server, key, TOPICS * PER)
  t.equal(owners(t, ms).size, TOPICS * PER, 'every message delivered once')
  const chosen = new Set<string>()
  for (let k = 0; k < TOPICS; k++) {
    const holders = ms.filter(m => m.got().some(p => p.startsWith(`${k}:`)))
    t.equal(holders.length, 1, `orders/${k} went to one member (${holders.map(m => m.id).join(', ')})`)
    const m = holders[0]
    if (!m) continue
    chosen.add(m.id)
    const seqs = m.got().filter(p => p.startsWith(`${k}:`)).map(p => Number(p.split(':')[1]))
    t.same(seqs, Array.from({ length: PER }, (_, i) => i), `orders/${k}: all ${PER}, in publish order`)
  }
  t.ok(chosen.size > 1, `the topics are spread over more than one member (${[...chosen].join(', ')})`)
})
