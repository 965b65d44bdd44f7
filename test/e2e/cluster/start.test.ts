/**
 * Starting a cluster node: the Redis URL from the flag, the variable or the
 * config file; the default node id; a malformed URL, an unreachable Redis or
 * a node id held by a live node stop the start with one line and exit 2.
 */
import t from 'tap'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCulex, startCulex } from '../../helpers/cli.js'
import { freePort, nodeArgs, startNode, startRedis } from '../../helpers/redis.js'
import { defaultNodeId } from '../../../lib/cluster/index.js'

const base = ['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--sys-interval', '0']

t.test('a malformed Redis URL: one line naming the setting, exit 2', async (t) => {
  for (const url of ['http://127.0.0.1:6379', 'not a url', 'redis://']) {
    const run = await runCulex([...base, '--cluster', url])
    t.equal(run.code, 2, `${url}: exit 2`)
    t.equal(run.stderr.trim().split('\n').length, 1, `${url}: one line`)
    t.match(run.stderr, /^culex: invalid configuration: cluster \(--cluster\): expected a Redis URL/, `${url}: names the setting`)
  }
  const bad = await runCulex([...base, '--cluster', 'redis://127.0.0.1:6379', '--node-id', 'a/b'])
  t.equal(bad.code, 2, 'a node id with "/" is refused')
  t.match(bad.stderr, /nodeId \(--node-id\)/)
})

t.test('an unreachable Redis at start: one line naming the URL and the cause, exit 2', async (t) => {
  const port = await freePort()
  const run = await runCulex([...base, '--cluster', `redis://:secret@127.0.0.1:${port}`], {}, 15000)
  t.equal(run.code, 2)
  t.equal(run.stderr.trim().split('\n').length, 1, 'one line')
  t.match(run.stderr, new RegExp(`^culex: cannot reach the cluster's Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`), 'the URL (password hidden) and the cause')
  t.notMatch(run.stderr, /secret/, 'the password is not printed')
})

t.test('the Redis URL from CULEX_CLUSTER and from the config file; the default node id is {host name}-{MQTT port}', async (t) => {
  const redis = await startRedis(t)
  const byEnv = await startCulex(base, { CULEX_CLUSTER: redis.url })
  t.teardown(() => { byEnv.child.kill('SIGKILL') })
  const started = byEnv.logs.find((l) => l.msg === 'culex started')
  t.equal(started?.nodeId, defaultNodeId(hostname(), byEnv.port), 'default node id')
  t.match(started?.nodeId, new RegExp(`-${byEnv.port}$`))

  const dir = mkdtempSync(join(tmpdir(), 'culex-cluster-conf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'culex.json')
  writeFileSync(file, JSON.stringify({ cluster: redis.url, nodeId: 'from-file' }))
  const byFile = await startCulex([...base, '--config', file])
  t.teardown(() => { byFile.child.kill('SIGKILL') })
  t.equal(byFile.logs.find((l) => l.msg === 'culex started')?.nodeId, 'from-file', 'nodeId from the config file')
  const joined = byFile.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('joined the cluster'))
  t.same(joined?.nodes, [byEnv.logs.find((l) => l.msg === 'culex started')?.nodeId, 'from-file'].sort(), 'the second node sees the first')
})

t.test('a node id held by a live node: one line, exit 2; the live node keeps it', async (t) => {
  const redis = await startRedis(t)
  const first = await startNode(t, redis, ['--node-id', 'twin'])
  const second = await runCulex(nodeArgs(redis, ['--node-id', 'twin']), {}, 20000)
  t.equal(second.code, 2)
  t.match(second.stderr, /^culex: node id twin is held by another live node of the cluster/)
  t.equal(first.child.exitCode, null, 'the first node still runs')
})

t.test('defaultNodeId keeps only characters a node id may hold', async (t) => {
  t.equal(defaultNodeId('web 1.example.com', 1883), 'web-1.example.com-1883')
  t.equal(defaultNodeId('x'.repeat(80), 1), 'x'.repeat(50) + '-1')
})
