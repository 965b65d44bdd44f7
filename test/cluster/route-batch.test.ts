/**
 * The inbox writes of QoS 1/2 messages, coalesced (lib/cluster/route-batch.ts)
 * against a real redis-server: the messages routed in one turn are one ROUTE
 * call and one stream entry per target inbox, read back in order by the
 * receiving node's Inbox; order holds across calls; a call Redis refuses
 * fails every message in it and writes none of them, while the calls before
 * and after it are unaffected; a call to a node being adopted lands in the
 * adopter's inbox, each message once; each message of an entry carries its
 * id, and entries forwarded for one session or written before batching or
 * ids still decode.
 */
import t, { type Test } from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import { Inbox, inboxKey } from '../../lib/cluster/inbox.js'
import { decodeEntry } from '../../lib/cluster/inbox-entry.js'
import { forwardToHolder } from '../../lib/cluster/forward.js'
import { ownerKey } from '../../lib/cluster/keys.js'
import { encodeRouted } from '../../lib/cluster/wire.js'
import { openRedis, type RedisPair } from '../../lib/cluster/redis.js'
import { ClusterWriteRefused } from '../../lib/cluster/refusal.js'
import { MAX_MESSAGES, RouteBatcher } from '../../lib/cluster/route-batch.js'
import type { ScriptArg } from '../../lib/cluster/script.js'
import { routedPacket } from '../../lib/cluster/routes.js'
import { adoptedKey } from '../../lib/cluster/adoption.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis, type RedisProcess } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const packet = (n: number, topic = 'b/t'): IPublishPacket => routedPacket({ topic, payload: Buffer.from(String(n)) }, 1)

async function pair (t: Test, redis: RedisProcess): Promise<RedisPair> {
  const p = await openRedis(redis.url)
  t.teardown(async () => { await p.close() })
  return p
}

/** An Inbox of `nodeId` that records what it publishes (payloads), started or not. */
async function inbox (t: Test, redis: RedisProcess, nodeId: string, start = true): Promise<{ inbox: Inbox, got: string[] }> {
  const got: string[] = []
  const box = new Inbox(await pair(t, redis), nodeId, silentLogger(), (p, _meta, done) => { got.push(p.payload.toString()); done() })
  if (start) await box.start()
  t.teardown(async () => { await box.stop() })
  return { inbox: box, got }
}

const xlen = (redis: RedisProcess, node: string): number => Number(redisCli(redis, 'XLEN', inboxKey(node)).replace(/\D/g, ''))
const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i)

t.test('the messages of one turn are one ROUTE call and one entry per target inbox, published there in order', async (t) => {
  const redis = await startRedis(t)
  const a = await inbox(t, redis, 'a', false)
  const b = await inbox(t, redis, 'b')
  const c = await inbox(t, redis, 'c')
  const sends = range(30).map(async (n) => await a.inbox.send(n % 3 === 0 ? ['b', 'c'] : ['b'], packet(n)))
  await Promise.all(sends)
  t.equal(a.inbox.routeCalls, 1, 'one script call for the turn')
  await waitFor(() => b.got.length === 30 && c.got.length === 10, { what: 'b and c publish their messages' })
  t.same(b.got, range(30).map(String), 'b: every message, in the order routed')
  t.same(c.got, range(30).filter((n) => n % 3 === 0).map(String), 'c: only its own, in order')
  const stats = redisCli(redis, 'INFO', 'commandstats')
  t.match(stats, /cmdstat_xadd:calls=2,/, 'one XADD per target inbox')
  t.match(stats, /cmdstat_evalsha:calls=1,|cmdstat_eval:calls=1,/, 'one script run')
  await waitFor(() => xlen(redis, 'b') === 0 && xlen(redis, 'c') === 0, { what: 'entries deleted once published' })
})

t.test('order holds across calls: a turn larger than one call, then the next turn', async (t) => {
  const redis = await startRedis(t)
  const a = await inbox(t, redis, 'a', false)
  const b = await inbox(t, redis, 'b')
  const total = 2 * MAX_MESSAGES + 100
  const first = range(total).map(async (n) => await a.inbox.send(['b'], packet(n)))
  await Promise.all(first)
  t.equal(a.inbox.routeCalls, 3, `${total} messages in one turn: calls of at most ${MAX_MESSAGES}`)
  const second = range(50, total).map(async (n) => await a.inbox.send(['b'], packet(n)))
  await Promise.all(second)
  t.equal(a.inbox.routeCalls, 4, 'the next turn: a call of its own')
  await waitFor(() => b.got.length === total + 50, { what: 'b publishes every message' })
  t.same(b.got, range(total + 50).map(String), 'in the order routed, across calls and entries')
})

t.test('a call Redis refuses (out of memory) fails every message in it with 0x80\'s error and writes none; the calls around it go through', async (t) => {
  const redis = await startRedis(t)
  const a = await inbox(t, redis, 'a', false)
  const b = await inbox(t, redis, 'b', false)
  await Promise.all(range(5).map(async (n) => await a.inbox.send(['b', 'c'], packet(n))))
  redisCli(redis, 'CONFIG', 'SET', 'maxmemory', '1')
  const refused = await Promise.allSettled(range(5, 5).map(async (n) => await a.inbox.send(['b', 'c'], packet(n))))
  redisCli(redis, 'CONFIG', 'SET', 'maxmemory', '0')
  t.equal(refused.length, 5)
  for (const r of refused) {
    t.equal(r.status, 'rejected', 'every message of the refused call fails')
    if (r.status === 'rejected') {
      t.ok(r.reason instanceof ClusterWriteRefused, 'as a refused cluster write (the publisher\'s 0x80: refusal.ts)')
      t.equal((r.reason as ClusterWriteRefused).kind, 'out-of-memory')
    }
  }
  t.equal(xlen(redis, 'b'), 1, 'b\'s inbox holds the first call only')
  t.equal(xlen(redis, 'c'), 1, 'so does c\'s: nothing of the refused call reached any inbox')
  await Promise.all(range(5, 10).map(async (n) => await a.inbox.send(['b'], packet(n))))
  await b.inbox.start()
  await waitFor(() => b.got.length === 10, { what: 'b publishes the calls that went through' })
  t.same(b.got, ['0', '1', '2', '3', '4', '10', '11', '12', '13', '14'], 'before and after the refusal, in order; none of the refused')
  t.equal(a.inbox.routeCalls, 3)
})

t.test('a turn split into calls: each message settles with its own call', async (t) => {
  const answers: Array<'ok' | 'refused'> = ['ok', 'refused', 'ok']
  const calls: ScriptArg[][] = []
  const batcher = new RouteBatcher(async (args) => {
    calls.push(args)
    if (answers.shift() === 'refused') throw new Error('OOM command not allowed')
  })
  const settled = await Promise.allSettled(range(2 * MAX_MESSAGES + 1).map(async () => { await batcher.send(['b'], Buffer.from('m')) }))
  // one group per call (every message to b): its node count, its node, its first message's number, its messages each after its length
  t.same(calls.map((args) => [args[0], args[1], args[2], (args[3] as Buffer).length]), [[1, 'b', 1, MAX_MESSAGES * 5], [1, 'b', 1, MAX_MESSAGES * 5], [1, 'b', 1, 5]], 'calls of at most MAX_MESSAGES, in order')
  t.same(calls[2]?.[3], Buffer.from([0, 0, 0, 1, 0x6d]), 'a message: 4 bytes of length, then its bytes')
  const status = settled.map((s) => s.status)
  t.ok(status.slice(0, MAX_MESSAGES).every((s) => s === 'fulfilled'), 'the first call\'s messages are acknowledged')
  t.ok(status.slice(MAX_MESSAGES, 2 * MAX_MESSAGES).every((s) => s === 'rejected'), 'every message of the refused call fails')
  t.equal(status[2 * MAX_MESSAGES], 'fulfilled', 'the call after it goes through')
  t.equal(await batcher.send([], Buffer.from('m')), '', 'no target: nothing sent, no id')
  t.equal(calls.length, 3)
})

t.test('a call to a node that was adopted lands in the adopter\'s inbox (followed twice), each message once', async (t) => {
  const redis = await startRedis(t)
  const a = await inbox(t, redis, 'a', false)
  const d = await inbox(t, redis, 'd')
  await Promise.all(range(3).map(async (n) => await a.inbox.send(['b'], packet(n))))
  redisCli(redis, 'SET', adoptedKey('b'), 'c')
  redisCli(redis, 'SET', adoptedKey('c'), 'd')
  // b (adopted by c, itself adopted by d), c and d all named: d's inbox once per message
  await Promise.all(range(4, 3).map(async (n) => await a.inbox.send(n === 4 ? ['b'] : ['b', 'c', 'd'], packet(n))))
  t.equal(xlen(redis, 'b'), 1, 'b\'s inbox got nothing after its adoption')
  t.equal(xlen(redis, 'c'), 0, 'nor did c\'s')
  await waitFor(() => d.got.length === 4, { what: 'd publishes the messages meant for b and c' })
  t.same(d.got, ['3', '4', '5', '6'], 'each once, in order')
})

t.test('every message of a batched entry carries its id (the same in every inbox, its own per message); forwarded and older entries still decode', async (t) => {
  const redis = await startRedis(t)
  const a = await inbox(t, redis, 'a', false)
  // groups to different nodes in one call: the n-th message of the call is still the n-th id
  const ids = await Promise.all(range(6).map(async (n) => await a.inbox.send(n < 4 ? ['b', 'c'] : ['c'], packet(n))))
  const p = await pair(t, redis)
  const read = async (node: string): Promise<Array<{ payload: string, id: string, forClient?: string }>> =>
    (await p.commands.xrangeBuffer(inboxKey(node), '-', '+')).flatMap(([id, fields]) => decodeEntry(Buffer.from(id), fields, silentLogger()))
      .map((m) => ({ payload: m.packet.payload.toString(), id: m.id, ...(m.forClient !== undefined ? { forClient: m.forClient } : {}) }))
  const b = await read('b')
  const c = await read('c')
  t.same(b.map((m) => m.payload), ['0', '1', '2', '3'], 'b: one entry, its messages in order')
  t.same(c.slice(0, 4), b, 'c: the same messages under the same ids')
  t.same(c.map((m) => m.id), ids, 'each sender learns the id its message has in the inboxes (a copy it forwards names it: cluster-moves.ts)')
  t.equal(new Set(b.map((m) => m.id)).size, 4, 'an id of its own per message')
  t.ok(b.every((m) => m.id !== '' && m.forClient === undefined), 'each with an id, for no one session')
  const raw = await p.commands.xrangeBuffer(inboxKey('c'), '-', '+')
  const names = raw[0]?.[1].filter((_, i) => i % 2 === 0).map(String)
  t.same(names, ['i', 'n', 'p', 'n', 'p'], 'packed: the call\'s id, then a number and one string per group (inbox-entry.ts), not fields per message')
  const values = raw[0]?.[1].filter((_, i) => i % 2 === 1).map(String) ?? []
  t.same([`${values[0] ?? ''}.1`, values[1], values[3]], [ids[0], '1', '5'], 'the call\'s id, then each group\'s first number in the call: 1 and 5')
  t.equal(await forwardToHolder(p, 'x', packet(9), 'unused'), undefined, 'no node holds x: nothing forwarded')
  redisCli(redis, 'HSET', ownerKey('x'), 'node', 'd')
  t.equal(await forwardToHolder(p, 'x', packet(9), b[0]?.id ?? ''), 'd', 'forwarded to the holder of x')
  const message = encodeRouted(packet(7))
  await p.commands.xadd(inboxKey('d'), '*', 'm', message)
  await p.commands.xadd(inboxKey('d'), '*', 'm', message, 'u', 'old')
  t.same(await read('d'), [
    { payload: '9', id: b[0]?.id, forClient: 'x' },
    { payload: '7', id: '' },
    { payload: '7', id: 'old' }
  ], 'a forwarded entry (m, c, u), one from before ids (m), one from before batching (m, u)')
})
