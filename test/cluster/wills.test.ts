/**
 * The wills' scripts against a real redis-server: a record keeps the will's
 * MQTT 5 properties; writes of an older epoch never undo a newer one; the
 * wills of a node whose lease is gone are moved once, however many
 * survivors try; the timer holder publishes each due will once, after its
 * delay, and drops one whose client id was claimed again [MQTT-3.1.3-9]; an
 * adopted session's will the cluster has no record of is scheduled (ORPHAN).
 */
import t, { type Test } from 'tap'
import { ClusterNode, type ClusterWill } from '../../lib/cluster/index.js'
import { decodeRecord, encodeRecord } from '../../lib/cluster/wills.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { sleep, waitFor } from '../helpers/wait.js'

interface TestNode { cluster: ClusterNode, published: Array<{ clientId: string, will: ClusterWill, at: number }>, elsewhere: Array<[string, number]> }

async function node (t: Test, url: string, nodeId: string): Promise<TestNode> {
  const cluster = await ClusterNode.connect(url, silentLogger())
  const published: TestNode['published'] = []
  const elsewhere: TestNode['elsewhere'] = []
  cluster.attachWills({
    async publish (clientId, will) { published.push({ clientId, will, at: Date.now() }) },
    publishedElsewhere (clientId, epoch) { elsewhere.push([clientId, epoch]) }
  })
  await cluster.join({ nodeId })
  t.teardown(() => cluster.close())
  return { cluster, published, elsewhere }
}

const will = (topic: string): ClusterWill => ({ topic, payload: Buffer.from(topic), qos: 0, retain: false })
const hlen = (redis: { port: number }, key: string): number => Number(redisCli(redis, '--raw', 'HLEN', key))

t.test('a record keeps the will as an MQTT 5 PUBLISH with its properties, its epoch and its delay', async (t) => {
  const properties = { payloadFormatIndicator: true, messageExpiryInterval: 30, contentType: 'text/plain', responseTopic: 'r/t', correlationData: Buffer.from('c'), userProperties: { k: 'v' } }
  const record = encodeRecord(7, 2000, { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: true, properties: { ...properties, willDelayInterval: 2 } as ClusterWill['properties'] })
  const decoded = decodeRecord(record)
  t.equal(decoded?.epoch, 7)
  t.equal(decoded?.delayMs, 2000)
  t.match(decoded?.will, { topic: 'w/t', qos: 1, retain: true, properties })
  t.equal(decoded?.will.payload.toString(), 'bye')
  t.notOk(decoded?.will.properties !== undefined && 'willDelayInterval' in decoded.will.properties, 'Will Delay is a CONNECT property, not kept')
  t.equal(decodeRecord('1 0 not-a-publish'), undefined, 'garbage decodes to nothing')
})

t.test('hold and drop are fenced by the epoch: an older connection\'s writes never undo a newer one\'s', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  a.cluster.holdWill('x', 2, will('new'), 0)
  a.cluster.holdWill('x', 1, will('old'), 0)
  a.cluster.dropWill('x', 1)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 1, { what: 'x held' })
  await sleep(100)
  t.equal(decodeRecord(redisCli(redis, '--raw', 'HGET', '{culex}:wills:{a}', 'x'))?.will.topic, 'new', 'epoch 2\'s will stays')
  a.cluster.dropWill('x', 2)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 0, { what: 'dropped at its own epoch' })
  t.pass('dropped at its own epoch')
  a.cluster.holdWill('y', 3, will('stale'), 0)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 1, { what: 'y held' })
  a.cluster.dropWill('y', 4)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 0, { what: 'a later connection without a will drops the stale one' })
  t.pass('a later connection of the id without a will drops the earlier one\'s')
})

t.test('the wills of a node that left are moved once and published once by the timer holder, after their delay', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const b = await node(t, redis.url, 'b')
  const c = await node(t, redis.url, 'c')
  for (const [id, delay] of [['now', 0], ['later', 1500], ['back', 1500]] as const) {
    const epoch = await a.cluster.claim(id)
    a.cluster.holdWill(id, epoch, will(`w/${id}`), delay)
  }
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 3, { what: 'three wills held by a' })
  const leftAt = Date.now()
  await a.cluster.close()
  await waitFor(() => b.published.length + c.published.length >= 1, { timeout: 3000, what: 'the will without delay' })
  // the client of 'back' reconnects on b before its delay ran out
  await b.cluster.claim('back')
  await waitFor(() => b.published.length + c.published.length >= 2, { timeout: 4000, what: 'the delayed will' })
  await sleep(2000)
  const all = [...b.published, ...c.published].sort((x, y) => x.at - y.at)
  t.same(all.map((p) => p.clientId), ['now', 'later'], 'each will once, over both survivors; none for the client back within its delay [MQTT-3.1.3-9]')
  t.ok((all[1]?.at ?? 0) - leftAt >= 1400, 'the delayed will after its delay')
  t.ok(b.published.length === 0 || c.published.length === 0, 'published by one node, the timer holder')
  t.equal(hlen(redis, '{culex}:wills:{a}'), 0, 'a\'s hash is gone')
  t.equal(hlen(redis, '{culex}:wills:pending'), 0, 'nothing pending')
  t.equal(redisCli(redis, '--raw', 'GET', '{culex}:wills:sent:now'), '1', 'a published will is marked sent with its epoch')
  t.equal(redisCli(redis, '--raw', 'EXISTS', '{culex}:wills:sent:back'), '0', 'a dropped one is not')
})

t.test('a node holding its lease is not reaped; wills left by nodes that died unseen are moved once (at the join of a new instance, or by the sweep)', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const epoch = await a.cluster.claim('kept')
  a.cluster.holdWill('kept', epoch, will('w/kept'), 0)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 1, { what: 'held' })
  // a survivor that saw a wrong leave of a live node: REAP finds its lease and refuses
  const b = await node(t, redis.url, 'b')
  ;(b.cluster as unknown as { wills: { nodeLeft: (id: string) => void } }).wills.nodeLeft('a')
  await sleep(300)
  t.equal(hlen(redis, '{culex}:wills:{a}'), 1, 'a live node\'s wills stay')
  t.same(b.published, [], 'and are not published')
  // node z died without a word (its lease long gone), leaving a will: a new instance of z moves it at join (or the timer holder's sweep does)
  redisCli(redis, 'HSET', '{culex}:client:orphan', 'node', 'z', 'epoch', '1')
  redisCli(redis, 'HSET', '{culex}:wills:{z}', 'orphan', encodeRecord(1, 0, will('w/orphan')))
  const z = await node(t, redis.url, 'z')
  const published = (): TestNode['published'] => [...a.published, ...b.published, ...z.published]
  await waitFor(() => published().length === 1, { timeout: 4000, what: 'the orphan will' })
  await sleep(500)
  t.same(published().map((p) => p.clientId), ['orphan'], 'published once, moved by z at its join')
  t.equal(hlen(redis, '{culex}:wills:{z}'), 0)
  // node y died while no node was running: the timer holder's sweep (every 10 s) finds its hash
  redisCli(redis, 'HSET', '{culex}:client:lost', 'node', 'y', 'epoch', '5')
  redisCli(redis, 'HSET', '{culex}:wills:{y}', 'lost', encodeRecord(5, 0, will('w/lost')))
  redisCli(redis, 'SADD', '{culex}:wills:nodes', 'y')
  await waitFor(() => published().length === 2, { timeout: 13000, what: 'the will of y, by the sweep' })
  t.same(published().map((p) => p.clientId), ['orphan', 'lost'], 'the sweep moved y\'s will: published once')
  t.equal(redisCli(redis, '--raw', 'SISMEMBER', '{culex}:wills:nodes', 'y'), '0', 'y is no longer listed')
})

t.test('after a lost lease a node puts back its wills a survivor moved, and learns which were published meanwhile', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const epochs: Record<string, number> = {}
  for (const id of ['waiting', 'sent', 'lost', 'kept', 'gone']) {
    epochs[id] = await a.cluster.claim(id)
    a.cluster.holdWill(id, epochs[id] ?? 0, will(`w/${id}`), 60000)
  }
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 5, { what: 'five wills held' })
  // as if a survivor had moved some while a was paused: one still waits, one was published (marked sent); Redis lost one's registry entry and another's will
  const record = redisCli(redis, '--raw', 'HGET', '{culex}:wills:{a}', 'waiting')
  redisCli(redis, 'HSET', '{culex}:wills:pending', 'waiting', record)
  redisCli(redis, 'ZADD', '{culex}:wills:due', '99999999999999', 'waiting')
  redisCli(redis, 'HDEL', '{culex}:wills:{a}', 'waiting', 'sent', 'lost', 'gone')
  redisCli(redis, 'SET', '{culex}:wills:sent:sent', String(epochs.sent))
  redisCli(redis, 'DEL', '{culex}:client:lost')
  await (a.cluster as unknown as { wills: { restore: () => Promise<void> } }).wills.restore()
  t.same(a.elsewhere, [['sent', epochs.sent]], 'the published one is reported, so the node does not publish it again')
  t.equal(hlen(redis, '{culex}:wills:{a}'), 4, 'the waiting one, the untouched one and those Redis lost are held by a again')
  t.equal(hlen(redis, '{culex}:wills:pending'), 0, 'nothing left waiting')
  t.equal(redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due'), '0')
})

t.test('defer: a will a survivor moved during a lost lease gets its due time anew; one published meanwhile is not timed again', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  const epochs: Record<string, number> = {}
  for (const id of ['plain', 'moved', 'sent', 'unknown']) {
    epochs[id] = await a.cluster.claim(id)
    a.cluster.holdWill(id, epochs[id] ?? 0, will(`w/${id}`), 0)
  }
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 4, { what: 'four wills held' })
  redisCli(redis, 'HSET', '{culex}:wills:pending', 'moved', redisCli(redis, '--raw', 'HGET', '{culex}:wills:{a}', 'moved'))
  redisCli(redis, 'ZADD', '{culex}:wills:due', '99999999999999', 'moved')
  redisCli(redis, 'SET', '{culex}:wills:sent:sent', String(epochs.sent))
  redisCli(redis, 'HDEL', '{culex}:wills:{a}', 'moved', 'sent', 'unknown')
  t.equal(await a.cluster.deferWill('plain', epochs.plain ?? 0, 60000), true, 'held here: moved to the due set')
  t.equal(await a.cluster.deferWill('moved', epochs.moved ?? 0, 60000), true, 'moved by a survivor: timed by the cluster from now')
  t.ok(Number(redisCli(redis, '--raw', 'ZSCORE', '{culex}:wills:due', 'moved')) < 99999999999999, 'its due time set anew')
  t.equal(await a.cluster.deferWill('sent', epochs.sent ?? 0, 60000), true, 'published meanwhile: not for this node to time')
  t.equal(await a.cluster.deferWill('unknown', epochs.unknown ?? 0, 60000), false, 'not in the cluster: this node times it')
  t.equal(redisCli(redis, '--raw', 'ZCARD', '{culex}:wills:due'), '2')
})

t.test('ORPHAN: an adopted session\'s will the cluster has no record of is timed and published once; one it published, times or holds is not', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis.url, 'a')
  await waitFor(() => redisCli(redis, '--raw', 'GET', '{culex}:wills:timer') === 'a', { what: 'a holds the timer lock' })
  // the adoption's claim (registry.ts) made the epoch the record carries
  redisCli(redis, 'HSET', '{culex}:client:lost', 'epoch', '5')
  const start = Date.now()
  t.equal(await a.cluster.adoptStoredWill('lost', 5, will('lost'), 300), true, 'no record anywhere: scheduled')
  a.cluster.holdWill('held', 1, will('held'), 0)
  await waitFor(() => hlen(redis, '{culex}:wills:{a}') === 1, { what: 'held in a\'s hash' })
  t.equal(await a.cluster.adoptStoredWill('held', 2, will('held'), 0), false, 'held in a node\'s hash: REAP moves it, not this')
  a.cluster.holdWill('timed', 1, will('timed'), 60000)
  t.equal(await a.cluster.deferWill('timed', 1, 60000), true)
  t.equal(await a.cluster.adoptStoredWill('timed', 2, will('timed'), 0), false, 'waiting in the due set: not twice')
  redisCli(redis, 'SET', '{culex}:wills:sent:sent', '1')
  t.equal(await a.cluster.adoptStoredWill('sent', 2, will('sent'), 0), false, 'published by the cluster: not again')
  await waitFor(() => a.published.length > 0, { what: 'the orphan will published' })
  await sleep(500)
  t.same(a.published.map((p) => p.will.topic), ['lost'], 'only the will the cluster had no record of, once')
  t.ok((a.published[0]?.at ?? 0) - start >= 250, 'after its delay')
  t.equal(await a.cluster.adoptStoredWill('lost', 5, will('lost'), 0), false, 'adopted again: published already')
})
