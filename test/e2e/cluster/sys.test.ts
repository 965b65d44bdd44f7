/**
 * Cluster totals under `$SYS/cluster/`: the connections of every live node
 * summed, the same on every node, and a killed node's share gone once its
 * lease runs out.
 */
import t from 'tap'
import { connectClient } from '../../helpers/mqtt.js'
import { startNode, startRedis } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'

t.test('$SYS/cluster/clients/connected sums the live nodes\' connections; a killed node stops counting after its lease', async (t) => {
  const redis = await startRedis(t)
  const a = await startNode(t, redis, ['--node-id', 'a', '--sys-interval', '1'])
  const b = await startNode(t, redis, ['--node-id', 'b', '--sys-interval', '1'])
  for (let i = 0; i < 3; i++) await connectClient(t, a.url, { clientId: `on-a-${i}` })
  const watchers = await Promise.all([a, b].map(async (node) => {
    const client = await connectClient(t, node.url, { clientId: `watch-${node === a ? 'a' : 'b'}` })
    const latest = new Map<string, string>()
    client.on('message', (topic, payload) => { latest.set(topic, payload.toString()) })
    await client.subscribeAsync('$SYS/cluster/#')
    return latest
  }))
  // 3 clients and a watcher on a, a watcher on b
  for (const [i, latest] of watchers.entries()) {
    await waitFor(() => latest.get('$SYS/cluster/clients/connected') === '5', { timeout: 6000, what: () => `5 connections on node ${i === 0 ? 'a' : 'b'} (${latest.get('$SYS/cluster/clients/connected')})` })
    t.equal(latest.get('$SYS/cluster/nodes'), '2', 'two live nodes')
    t.ok(latest.has('$SYS/cluster/messages/received') && latest.has('$SYS/cluster/messages/sent'), 'message totals published too')
  }
  t.pass('both nodes publish the same total: 5 connections')
  a.child.kill('SIGKILL')
  const onB = watchers[1] as Map<string, string>
  const killedAt = Date.now()
  await waitFor(() => onB.get('$SYS/cluster/clients/connected') === '1' && onB.get('$SYS/cluster/nodes') === '1', { timeout: 8000, what: () => `b's totals without a (${onB.get('$SYS/cluster/clients/connected')})` })
  t.pass(`${Date.now() - killedAt} ms after a was killed, b counts only its own connection`)
})
