/**
 * The durability contract with Redis: at start a cluster node reads Redis'
 * appendonly/appendfsync (CONFIG GET) and logs one line saying what a Redis
 * crash or power loss can lose with them; with --fsync it refuses to start
 * (one line on stderr, exit 2) unless Redis has appendonly yes and
 * appendfsync always, or when CONFIG is refused and it cannot tell.
 */
import t from 'tap'
import { runCulex } from '../../helpers/cli.js'
import { nodeArgs, startNode, startRedis, type RedisOptions } from '../../helpers/redis.js'

const durabilityLine = (l: Record<string, unknown>): boolean => typeof l.msg === 'string' && l.msg.startsWith('Redis durability')

const cases: Array<{ redis: RedisOptions, line: RegExp, level: number, fsyncOk: boolean }> = [
  { redis: {}, line: /^Redis durability: appendonly no, appendfsync everysec: no RDB snapshots either \(save ""\): a Redis crash or restart loses everything culex acknowledged$/, level: 40, fsyncOk: false },
  { redis: { appendfsync: 'everysec' }, line: /^Redis durability: appendonly yes, appendfsync everysec: a Redis crash or power loss can lose up to about a second of acknowledged writes/, level: 40, fsyncOk: false },
  { redis: { appendfsync: 'no' }, line: /^Redis durability: appendonly yes, appendfsync no: a crash of redis-server alone loses nothing acknowledged, a power loss whatever/, level: 40, fsyncOk: false },
  { redis: { appendfsync: 'always' }, line: /^Redis durability: appendonly yes, appendfsync always: every write is on disk before Redis answers; a Redis crash or power loss loses nothing acknowledged$/, level: 30, fsyncOk: true },
  { redis: { args: ['--rename-command', 'CONFIG', ''] }, line: /^Redis durability unknown: CONFIG GET was refused \(ERR unknown command 'config'.*\); culex cannot tell what a Redis crash or power loss can lose$/, level: 40, fsyncOk: false }
]

for (const c of cases) {
  const name = c.redis.args !== undefined ? 'CONFIG renamed away' : c.redis.appendfsync === undefined ? 'appendonly no' : `appendonly yes, appendfsync ${c.redis.appendfsync}`
  t.test(`${name}: the start-up log says what a Redis crash can lose; --fsync ${c.fsyncOk ? 'starts' : 'refuses to start, exit 2'}`, async (t) => {
    const redis = await startRedis(t, c.redis)
    const node = await startNode(t, redis, ['--node-id', 'd'])
    const lines = node.logs.filter(durabilityLine)
    t.equal(lines.length, 1, 'one line')
    t.match(lines[0]?.msg, c.line)
    t.equal(lines[0]?.level, c.level, c.level === 30 ? 'info: nothing acknowledged can be lost' : 'warn: acknowledged writes can be lost')
    node.child.kill('SIGTERM')
    await node.exit

    if (c.fsyncOk) {
      const strict = await startNode(t, redis, ['--node-id', 'd', '--fsync'])
      t.ok(strict.logs.some((l) => l.msg === 'culex started'), '--fsync: started')
      return
    }
    const run = await runCulex(nodeArgs(redis, ['--node-id', 'd', '--fsync']), {}, 15000)
    t.equal(run.code, 2, '--fsync: exit 2')
    t.equal(run.stderr.trim().split('\n').length, 1, 'one line on stderr')
    t.match(run.stderr, new RegExp(`^culex: --fsync needs the cluster's Redis at redis://127\\.0\\.0\\.1:${redis.port}/? to have appendonly yes and appendfsync always, and ` +
      (c.redis.args !== undefined ? 'culex cannot read them: CONFIG GET was refused' : `it has appendonly ${c.redis.appendfsync === undefined ? 'no' : 'yes'}, appendfsync ${c.redis.appendfsync ?? 'everysec'}`)))
    t.notMatch(run.stdout, /joined the cluster/, 'it never joined')
  })
}
