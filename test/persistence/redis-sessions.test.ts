// The Redis store's backend alone: which store keys are a session's, the
// hash each batch writes to, and fencing in the write script.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { encodeRecord } from '../../lib/persistence/codec.js'
import { KEY } from '../../lib/persistence/parts/keys.js'
import { adoptSession, defineSessionScripts, sessionKey, sessionOf, SessionWriter } from '../../lib/persistence/redis-sessions.js'
import { redisPrefix, testRedis } from '../helpers/store.js'

t.test('every key a session part writes belongs to its client id; retained and shared group keys to none', async (t) => {
  for (const cid of ['plain', 'with:colon', 'slash/and space', '{braces}', '']) {
    t.equal(sessionOf(KEY.sub(cid, 'a/+/#')), cid, 'subscription')
    t.equal(sessionOf(KEY.queued(cid, 17)), cid, 'queued body')
    t.equal(sessionOf(KEY.inflight(cid, 17)), cid, 'in-flight state')
    t.equal(sessionOf(KEY.incoming(cid, 5)), cid, 'inbound QoS 2')
    t.equal(sessionOf(KEY.will(cid)), cid, 'will')
    t.equal(sessionOf(KEY.session(cid)), cid, 'session record')
  }
  t.equal(sessionOf(KEY.retained('a/b')), undefined)
  t.equal(sessionOf(KEY.sharedMember('g', 'c')), undefined)
  t.equal(sessionOf(KEY.sharedMessage('g', 1)), undefined)
  t.equal(sessionOf(KEY.format), undefined)
})

interface Harness { redis: Redis, prefix: string, epochs: Map<string, number>, refused: Array<[string, string | null]>, writer: SessionWriter }

async function harness (t: Test): Promise<Harness> {
  const redis = new Redis((await testRedis()).url)
  t.teardown(() => { redis.disconnect() })
  defineSessionScripts(redis)
  const prefix = redisPrefix()
  const epochs = new Map<string, number>()
  const refused: Array<[string, string | null]> = []
  const writer = new SessionWriter({
    redis,
    prefix,
    epochFor: (cid) => { const e = epochs.get(cid); return e === undefined ? null : String(e) },
    onRefused: (list) => { refused.push(...list) }
  })
  return { redis, prefix, epochs, refused, writer }
}

t.test('a batch is written to each session\'s hash; keys of no session are not written', async (t) => {
  const { redis, prefix, epochs, writer } = await harness(t)
  epochs.set('a', 1)
  epochs.set('b', 1)
  await adoptSession(redis, sessionKey(prefix, 'a'), 1, 'load')
  await adoptSession(redis, sessionKey(prefix, 'b'), 1, 'load')
  const batch = writer.batch()
  batch.put(KEY.sub('a', 'x/#'), encodeRecord({ qos: 1 }))
  batch.put(KEY.will('b'), encodeRecord({ topic: 'w' }))
  batch.put(KEY.retained('r'), encodeRecord({ topic: 'r' }))
  await batch.write({ sync: false })
  t.strictSame((await redis.hkeys(sessionKey(prefix, 'a'))).sort(), ['epoch', 's:a:x/#'])
  t.strictSame((await redis.hkeys(sessionKey(prefix, 'b'))).sort(), ['epoch', 'w:b'])
  t.equal(await redis.exists(`${prefix}retained:r`, 'r:r'), 0, 'the retained key went nowhere')
  const del = writer.batch()
  del.del(KEY.sub('a', 'x/#'))
  await del.write({ sync: false })
  t.strictSame(await redis.hkeys(sessionKey(prefix, 'a')), ['epoch'])
})

t.test('[fencing] the write script refuses an epoch that is not the session\'s; the refusal names the session', async (t) => {
  const { redis, prefix, epochs, refused, writer } = await harness(t)
  epochs.set('s', 3)
  epochs.set('other', 1)
  await adoptSession(redis, sessionKey(prefix, 's'), 4, 'load')
  await adoptSession(redis, sessionKey(prefix, 'other'), 1, 'load')
  const batch = writer.batch()
  batch.put(KEY.will('s'), encodeRecord({ topic: 'stale' }))
  batch.put(KEY.will('other'), encodeRecord({ topic: 'fine' }))
  await t.rejects(batch.write({ sync: false }), { code: 'CULEX_ERR_SESSION_FENCED' }, 'the batch fails: its callers are not acknowledged')
  t.strictSame(refused, [['s', '3']])
  t.strictSame(await redis.hkeys(sessionKey(prefix, 's')), ['epoch'], 'nothing written with the stale epoch')
  t.strictSame((await redis.hkeys(sessionKey(prefix, 'other'))).sort(), ['epoch', 'w:other'], 'the other session of the batch is written')
  t.equal(await adoptSession(redis, sessionKey(prefix, 's'), 3, 'load'), null, 'an older claim cannot adopt it back')
  t.equal(await redis.hget(sessionKey(prefix, 's'), 'epoch'), '4')
})
