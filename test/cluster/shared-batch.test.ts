/**
 * The batching of the shared groups' streams (lib/cluster/turn-batch.ts,
 * lib/cluster/shared-stream.ts): the messages of one event-loop turn for a
 * group are one script call, in the order they came (each publisher's order
 * kept); a batch Redis refuses is refused for every message in it (each
 * publisher then gets its 0x80); the acknowledgements of a turn settle
 * exactly the entries named, the others stay pending.
 */
import t, { type Test } from 'tap'
import { openRedis } from '../../lib/cluster/redis.js'
import { clusterWriteRefused } from '../../lib/cluster/refusal.js'
import { ClusterShareStreams, shareStreamKey, type GroupQueueLimit, type StreamEntry } from '../../lib/cluster/shared-stream.js'
import { TurnBatch } from '../../lib/cluster/turn-batch.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const GROUP = '$share/batch/b/#'

t.test('one turn: one write per key with its items in call order; the next turn: a new write', async (t) => {
  const writes: Array<[string, number[]]> = []
  const batch = new TurnBatch<number>(async (key, items) => { writes.push([key, [...items]]) })
  const done = [batch.add('a', 1), batch.add('b', 10), batch.add('a', 2), batch.add('a', 3)]
  t.same(writes, [], 'nothing written before the turn ends')
  await Promise.all(done)
  t.same(writes, [['a', [1, 2, 3]], ['b', [10]]])
  await batch.add('a', 4)
  t.same(writes.slice(2), [['a', [4]]], 'a later turn is a batch of its own')
})

t.test('a full batch is written at once; the batches of a key are written in order', async (t) => {
  const writes: number[][] = []
  const batch = new TurnBatch<number>(async (_key, items) => { writes.push([...items]) }, 3)
  const done: Array<Promise<void>> = []
  for (let i = 0; i < 7; i++) done.push(batch.add('k', i))
  t.same(writes, [[0, 1, 2], [3, 4, 5]], 'each full batch went out within the turn')
  await Promise.all(done)
  t.same(writes, [[0, 1, 2], [3, 4, 5], [6]], 'the rest at the turn\'s end, after them')
})

t.test('a refused batch is refused for each of its items; the next batch is not', async (t) => {
  let refuse = true
  const batch = new TurnBatch<string>(async () => { if (refuse) throw new Error('OOM command not allowed') })
  const outcomes = await Promise.allSettled(['p1-1', 'p2-1', 'p1-2'].map((m) => batch.add('g', m)))
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected'])
  for (const o of outcomes) if (o.status === 'rejected') t.equal(clusterWriteRefused(o.reason, 'message').kind, 'out-of-memory', 'each publisher\'s refusal names the cause')
  refuse = false
  await t.resolves(batch.add('g', 'p1-3'), 'the next turn\'s batch is written')
  const throwing = new TurnBatch<string>(() => { throw new Error('Connection is closed.') })
  await t.rejects(Promise.all([throwing.add('g', 'x'), throwing.add('g', 'y')]), /Connection is closed/, 'a write that throws rejects its batch too')
})

async function openStreams (t: Test, url: string, node = 'n1', queue: GroupQueueLimit = { max: 100000, overflow: 'drop-oldest' }): Promise<{ streams: ClusterShareStreams, read: StreamEntry[] }> {
  const redis = await openRedis(url)
  const streams = new ClusterShareStreams(redis, node, silentLogger(), queue)
  await streams.start(() => ['n1', 'n2'])
  const read: StreamEntry[] = []
  t.teardown(async () => { streams.stop(); await redis.close() })
  return { streams, read }
}

t.test('Redis: three publishers\' messages of one turn are one ADD call, each publisher\'s order kept; a partial settle leaves the rest pending', async (t) => {
  const redis = await startRedis(t)
  const { streams, read } = await openStreams(t, redis.url)
  const before = Number(/calls=(\d+)/.exec(redisCli(redis, 'INFO', 'commandstats').split('\n').find((l) => l.startsWith('cmdstat_evalsha')) ?? '')?.[1] ?? 0)
  const adds: Array<Promise<void>> = []
  const sent: string[] = []
  for (let i = 0; i < 100; i++) {
    for (const p of ['p1', 'p2', 'p3']) {
      sent.push(`${p}-${i}`)
      adds.push(streams.add(GROUP, Buffer.from(`${p}-${i}`)))
    }
  }
  await Promise.all(adds)
  const after = Number(/calls=(\d+)/.exec(redisCli(redis, 'INFO', 'commandstats').split('\n').find((l) => l.startsWith('cmdstat_evalsha')) ?? '')?.[1] ?? 0)
  t.ok(after - before <= 2, `300 messages in ${after - before} script call(s) (at most 256 per call)`)
  t.equal(redisCli(redis, 'XLEN', shareStreamKey(GROUP)), '(integer) 300')

  streams.openGroup(GROUP, 'b/#', { room: () => 1000 - read.length, held: () => read.length, take: (entries) => { read.push(...entries) } })
  await waitFor(() => read.length === 300, { timeout: 5000, what: () => `the 300 entries read (${read.length})` })
  t.same(read.map((e) => e.message.toString()), sent, 'read in the order they were added, so in each publisher\'s order')

  // every other entry finished by its member: those go, the rest stay pending for this node
  for (let i = 0; i < read.length; i += 2) streams.ack(GROUP, (read[i] as StreamEntry).id)
  await waitFor(() => redisCli(redis, 'XLEN', shareStreamKey(GROUP)) === '(integer) 150', { timeout: 5000, what: 'the settled entries deleted' })
  const pending = redisCli(redis, 'XPENDING', shareStreamKey(GROUP), 'culex')
  t.match(pending, /^1\) \(integer\) 150$/m, `150 still pending (${pending.split('\n')[0] ?? ''})`)
  const left = redisCli(redis, 'XRANGE', shareStreamKey(GROUP), '-', '+')
  t.ok(left.includes('p2-0') && !left.includes('p1-0'), 'exactly the entries not settled are left')
})

t.test('Redis out of memory: every message of the refused batch is refused, none is in the stream', async (t) => {
  const redis = await startRedis(t, { args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] })
  const { streams } = await openStreams(t, redis.url)
  await streams.add(GROUP, Buffer.from('fits'))
  redisCli(redis, 'SETRANGE', 'filler', String(6 * 1024 * 1024), 'x')
  const outcomes = await Promise.allSettled(['p1-1', 'p2-1', 'p1-2', 'p2-2'].map((m) => streams.add(GROUP, Buffer.from(m))))
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected', 'rejected'], 'each publisher told')
  for (const o of outcomes) if (o.status === 'rejected') t.equal(clusterWriteRefused(o.reason, 'message').kind, 'out-of-memory')
  t.equal(redisCli(redis, 'XLEN', shareStreamKey(GROUP)), '(integer) 1', 'none of them stored')
})

t.test('Redis: a group closed in the turn its last entries were acknowledged: those are settled, not handed back to the stream for another member', async (t) => {
  const redis = await startRedis(t)
  const { streams, read } = await openStreams(t, redis.url)
  // another node with a member of the group, that has no room: the stream outlives this node's leaving
  const other = await openStreams(t, redis.url, 'n2')
  other.streams.openGroup(GROUP, 'b/#', { room: () => 0, held: () => 0, take: () => {} })
  streams.openGroup(GROUP, 'b/#', { room: () => 100 - read.length, held: () => read.length, take: (entries) => { read.push(...entries) } })
  await waitFor(() => /n1[\s\S]*n2|n2[\s\S]*n1/.test(redisCli(redis, 'XINFO', 'CONSUMERS', shareStreamKey(GROUP), 'culex')), { timeout: 5000, what: 'both nodes consumers of the group' })
  await Promise.all(['one', 'two', 'three'].map((m) => streams.add(GROUP, Buffer.from(m))))
  await waitFor(() => read.length === 3, { timeout: 5000, what: 'the 3 entries read' })
  streams.ack(GROUP, (read[0] as StreamEntry).id)
  streams.ack(GROUP, (read[1] as StreamEntry).id)
  await streams.closeGroup(GROUP, [{ id: (read[2] as StreamEntry).id, message: undefined }])
  const left = redisCli(redis, 'XRANGE', shareStreamKey(GROUP), '-', '+')
  t.ok(left.includes('three'), 'the unfinished entry went back to the stream')
  t.notOk(left.includes('one') || left.includes('two'), `the acknowledged ones did not (${left.replace(/\n/g, ' ')})`)
})

for (const overflow of ['drop-oldest', 'refuse'] as const) {
  t.test(`Redis, ${overflow}: the group queue's limit counts the entries waiting, not those in flight; a full queue ${overflow === 'refuse' ? 'refuses the new message' : 'drops its oldest waiting entry'} and the node counts it`, async (t) => {
    const redis = await startRedis(t)
    const { streams, read } = await openStreams(t, redis.url, 'n1', { max: 3, overflow })
    let room = 2
    streams.openGroup(GROUP, 'b/#', { room: () => room - read.length, held: () => read.length, take: (entries) => { read.push(...entries) } })
    for (const m of ['a', 'b']) await streams.add(GROUP, Buffer.from(m))
    await waitFor(() => read.length === 2, { timeout: 5000, what: 'two entries read: in flight to members' })
    room = 0
    // three more wait: the limit, with two in flight beside them
    for (const m of ['c', 'd', 'e']) await streams.add(GROUP, Buffer.from(m))
    t.equal(redisCli(redis, 'XLEN', shareStreamKey(GROUP)), '(integer) 5', 'in flight and waiting: 5 entries, 3 of them waiting')
    await Promise.all(['f', 'g'].map((m) => streams.add(GROUP, Buffer.from(m))))
    const left = redisCli(redis, 'XRANGE', shareStreamKey(GROUP), '-', '+').split('\n').filter((l) => /"[a-g]"$/.test(l)).map((l) => l.slice(-2, -1))
    t.same(left, overflow === 'refuse' ? ['a', 'b', 'c', 'd', 'e'] : ['a', 'b', 'e', 'f', 'g'], 'the entries in flight stay; the waiting ones are the limit\'s')
    t.same(streams.figures()['share\u0000' + GROUP + '\u0000overflow'], 2, 'two messages counted against the limit on this node')
  })
}
