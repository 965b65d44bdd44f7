/**
 * The session clocks against a real redis-server: which connections start a
 * clock, a dead node's clocks start once its lease is gone (not before), a
 * due session ends once (its hash deleted, its epoch raised, its holder
 * told), not while its will waits, and not when a later claim took the id.
 */
import t from 'tap'
import { openRedis } from '../../lib/cluster/redis.js'
import { ClusterSessionExpiry, EXPIRY_DUE_KEY, nodeExpiryKey, remainingLifetimeMs, sessionLifetimeMs } from '../../lib/cluster/session-expiry.js'
import { silentLogger } from '../../lib/logging.js'
import { redisCli, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

t.test('[MQTT-3.1.2-23] how long a session lives after its connection ends', async (t) => {
  t.equal(sessionLifetimeMs({ version: 5, sessionExpiryInterval: 0 }), 0, 'MQTT 5, interval 0: ends with the connection')
  t.equal(sessionLifetimeMs({ version: 5, sessionExpiryInterval: 90 }), 90000)
  t.equal(sessionLifetimeMs({ version: 5, sessionExpiryInterval: 0xFFFFFFFF }), -1, 'MQTT 5, 0xFFFFFFFF: never expires')
  t.equal(sessionLifetimeMs({ version: 4, clean: true }), 0, '3.1.1 Clean Session: ends with the connection')
  t.equal(sessionLifetimeMs({ version: 4, clean: false }), -1, '3.1.1 persistent: never expires')
})

t.test('an adopted session\'s clock starts again from its record', async (t) => {
  t.equal(remainingLifetimeMs({ expiresAt: 10_500, expiryInterval: 60 }, 10_000), 500, 'offline: what is left until its deadline')
  t.equal(remainingLifetimeMs({ expiresAt: 9_000 }, 10_000), 1, 'already due: ended at once')
  t.equal(remainingLifetimeMs({ expiresAt: null, expiryInterval: 60 }, 10_000), 60_000, 'connected when its node died: its whole interval from now')
  t.equal(remainingLifetimeMs({ expiresAt: null, expiryInterval: 0 }, 10_000), 1, 'MQTT 5, interval 0: ended at once')
  t.equal(remainingLifetimeMs({ expiresAt: null, expiryInterval: 0xFFFFFFFF }, 10_000), -1, 'never expires')
  t.equal(remainingLifetimeMs({ expiresAt: null }, 10_000), -1, '3.1.1 persistent: never expires')
  t.equal(remainingLifetimeMs(undefined, 10_000), -1, 'no record')
})

t.test('clocks: started at the end of a connection, at the death of its node, ended once and fenced', async (t) => {
  const redis = await startRedis(t)
  const pair = await openRedis(redis.url)
  t.teardown(() => pair.close())
  const cli = (...args: string[]): string => redisCli(redis, '--raw', ...args)
  const expiredHere: Array<[string, number]> = []
  const expiry = new ClusterSessionExpiry(pair, 'b', silentLogger(), 600, 100)
  t.teardown(() => expiry.stop())

  // node a: two live connections recorded, then a holds its lease (alive)
  cli('HSET', '{culex}:client:x', 'node', 'a', 'epoch', '3')
  cli('HSET', 'culex:session:{x}', 'epoch', '3', 's:x:t', '1')
  cli('HSET', '{culex}:client:y', 'node', 'a', 'epoch', '5')
  cli('HSET', 'culex:session:{y}', 'epoch', '5', 's:y:t', '1')
  cli('HSET', nodeExpiryKey('a'), 'x', '3 200', 'y', '5 200')
  cli('SADD', '{culex}:expiry:nodes', 'a')
  cli('SET', '{culex}:node:a', 'token', 'PX', '60000')
  await expiry.start(() => ['b'], { expiredHere: (id, epoch) => { expiredHere.push([id, epoch]) } })
  expiry.nodeLeft('a')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(cli('ZCARD', EXPIRY_DUE_KEY), '0', 'a node still holding its lease keeps its clocks')

  // y will still waits for its delay; x's client id was claimed again on c (epoch 4) after node a died
  cli('HSET', '{culex}:wills:pending', 'y', '5 0 AAAA')
  cli('DEL', '{culex}:node:a')
  expiry.nodeLeft('a')
  await waitFor(() => cli('ZCARD', EXPIRY_DUE_KEY) === '2', { timeout: 2000, what: 'both clocks started once a is gone' })
  t.equal(cli('EXISTS', nodeExpiryKey('a')), '0', 'a\'s record is gone')
  cli('HSET', '{culex}:client:x', 'node', 'c', 'epoch', '4')

  await waitFor(() => cli('ZSCORE', EXPIRY_DUE_KEY, '3 x') === '', { timeout: 3000, what: 'the stale clock of x dropped' })
  t.equal(cli('EXISTS', 'culex:session:{x}'), '1', 'x, claimed again, is not touched')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(cli('EXISTS', 'culex:session:{y}'), '1', '[MQTT-3.1.3-9] y waits while its will does')
  t.equal(cli('ZCARD', EXPIRY_DUE_KEY), '1')

  const notices = await openRedis(redis.url)
  t.teardown(() => notices.close())
  const told: string[] = []
  notices.notices.on('message', (_channel: string, message: string) => { told.push(message) })
  await notices.notices.subscribe('{culex}:to:a')
  cli('HDEL', '{culex}:wills:pending', 'y')
  await waitFor(() => cli('EXISTS', 'culex:session:{y}') === '0', { timeout: 3000, what: 'y ends once its will left' })
  t.equal(cli('HGET', '{culex}:client:y', 'epoch'), '6', 'its epoch raised: a copy held anywhere is stale')
  t.equal(cli('HGET', '{culex}:client:y', 'node'), '', 'nobody owns the id')
  await waitFor(() => told.length > 0, { timeout: 2000, what: 'the holder told' })
  t.strictSame(told, ['6 b y'], 'the node that held it is told as by a takeover')
  t.equal(cli('ZCARD', EXPIRY_DUE_KEY), '0')
  await waitFor(() => expiry.expired > 0, { timeout: 2000, what: 'the script\'s answer counted' })
  t.equal(expiry.expired, 1, 'one session ended')
  t.strictSame(expiredHere, [], 'a copy held elsewhere is that node\'s to drop')

  // a connection here: recorded while live; its end with an interval starts a clock, fenced by its epoch
  expiry.connected('z', 7, 150)
  await waitFor(() => cli('HGET', nodeExpiryKey('b'), 'z') === '7 150', { timeout: 2000, what: 'z recorded' })
  cli('HSET', '{culex}:client:z', 'last', 'b', 'epoch', '7')
  cli('HSET', 'culex:session:{z}', 'epoch', '7')
  await expiry.ended('z', 7, 150)
  t.equal(cli('HEXISTS', nodeExpiryKey('b'), 'z'), '0', 'no longer live')
  await waitFor(() => cli('EXISTS', 'culex:session:{z}') === '0', { timeout: 3000, what: 'z ends' })
  // the holder is told once the script has answered, just after the hash went
  await waitFor(() => expiredHere.length > 0, { timeout: 2000, what: 'this node told of z' })
  t.strictSame(expiredHere, [['z', 7]], 'this node held z: its own copy goes, up to the epoch that ended')
})
