/**
 * The benchmark harness's Redis helpers: command counts from INFO
 * commandstats and their difference over a window, the RESP bulk reply, the
 * redis-server command line, and INFO over a raw socket (against a fake
 * server that answers in pieces), and a real private redis-server.
 */
import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import { commandCounts, commandDelta, describeCommands, parseBulkReply, parseCommandstats, redisInfo, redisServerArgs, startRedisServer, totalCalls } from '../../../benchmarks/lib/redis.js'

const INFO = [
  '# Commandstats',
  'cmdstat_publish:calls=20000,usec=77,usec_per_call=6.42,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=6,usec=255,usec_per_call=42.50,rejected_calls=0,failed_calls=0',
  'cmdstat_client|setname:calls=3,usec=3,usec_per_call=1.00,rejected_calls=0,failed_calls=0',
  'cmdstat_evalsha:calls=5,usec=50,usec_per_call=10.00,rejected_calls=0,failed_calls=1',
  ''
].join('\r\n')

t.test('parseCommandstats reads calls per command, subcommands included', async (t) => {
  t.same(parseCommandstats(INFO), { publish: 20000, info: 6, 'client|setname': 3, evalsha: 5 })
  t.same(parseCommandstats('# Commandstats\r\n'), {}, 'a Redis that ran nothing yet')
})

t.test('commandDelta keeps the calls made between two readings, without INFO itself', async (t) => {
  const before = { publish: 10, info: 1, set: 4 }
  const after = { publish: 25, info: 2, set: 4, evalsha: 3 }
  t.same(commandDelta(before, after), { publish: 15, evalsha: 3 }, 'unchanged and ignored commands are left out; new ones counted in full')
  t.same(commandDelta(before, after, []), { publish: 15, info: 1, evalsha: 3 }, 'nothing ignored')
  t.equal(totalCalls(commandDelta(before, after)), 18)
  t.equal(totalCalls({}), 0)
})

t.test('describeCommands lists the busiest commands first', async (t) => {
  t.equal(describeCommands({ set: 2, publish: 300, del: 2 }), '300× publish, 2× del, 2× set')
  t.equal(describeCommands({ a: 5, b: 4, c: 3 }, 2), '5× a, 4× b, …', 'cut at max, and says so')
  t.equal(describeCommands({}), '')
})

t.test('parseBulkReply waits for the whole reply and surfaces errors', async (t) => {
  t.equal(parseBulkReply(Buffer.from('$5\r\nhel')), null, 'incomplete payload')
  t.equal(parseBulkReply(Buffer.from('$5')), null, 'incomplete header')
  t.equal(parseBulkReply(Buffer.from('$5\r\nhello\r\n')), 'hello')
  t.equal(parseBulkReply(Buffer.from('$0\r\n\r\n')), '')
  t.throws(() => parseBulkReply(Buffer.from('-ERR unknown command\r\n')), /ERR unknown command/)
  t.throws(() => parseBulkReply(Buffer.from('+OK\r\n')), /unexpected reply/)
})

t.test('redisServerArgs: loopback, no RDB snapshots, AOF as asked', async (t) => {
  const none = redisServerArgs(7000, '/tmp/x', 'no')
  t.match(none.join(' '), '--port 7000 --bind 127.0.0.1 --save  --dir /tmp/x')
  t.equal(none[none.indexOf('--save') + 1], '', 'snapshots off')
  t.same(none.slice(-2), ['--appendonly', 'no'])
  t.same(redisServerArgs(7000, '/tmp/x', 'always').slice(-4), ['--appendonly', 'yes', '--appendfsync', 'always'])
  t.same(redisServerArgs(7000, '/tmp/x', 'everysec').slice(-4), ['--appendonly', 'yes', '--appendfsync', 'everysec'])
})

t.test('redisInfo sends INFO <section> and assembles a reply split over several writes', async (t) => {
  const received: string[] = []
  const body = INFO
  const server = net.createServer((socket) => {
    socket.once('data', (chunk) => {
      received.push(chunk.toString())
      const reply = Buffer.from(`$${Buffer.byteLength(body)}\r\n${body}\r\n`)
      socket.write(reply.subarray(0, 7))
      setTimeout(() => socket.end(reply.subarray(7)), 20)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const address = server.address() as net.AddressInfo
  const text = await redisInfo(address.port, 'commandstats')
  t.equal(received[0], '*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n', 'a RESP array command')
  t.equal(text, body)
  await t.rejects(redisInfo(address.port, 'x', 1000, '10.0.0.1'), /non-loopback/, 'refuses anything but loopback')
})

t.test('redisInfo gives up after its timeout when nothing answers', async (t) => {
  const server = net.createServer(() => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const address = server.address() as net.AddressInfo
  await t.rejects(redisInfo(address.port, 'commandstats', 100), /no answer within 100 ms/)
})

t.test('startRedisServer runs a private redis-server whose command counts move with what it is asked', async (t) => {
  const redis = await startRedisServer('everysec', { fdLimit: 1024, cpus: null })
  t.teardown(async () => { await redis.stop() })
  t.ok(redis.alive(), 'running')
  const before = await commandCounts(redis.port)
  const socket = net.connect({ host: '127.0.0.1', port: redis.port })
  socket.write('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n')
  let replies = ''
  for await (const chunk of socket) {
    replies += String(chunk)
    if (replies.includes('$1\r\nv\r\n')) break
  }
  socket.destroy()
  t.same(commandDelta(before, await commandCounts(redis.port)), { set: 1, get: 1 }, 'one SET and one GET, the INFO readings left out')
  t.equal((await redisInfo(redis.port, 'persistence')).match(/aof_enabled:(\d)/)?.[1], '1', 'AOF on as asked')
  await redis.stop()
  t.notOk(redis.alive(), 'stopped by its PID')
})
