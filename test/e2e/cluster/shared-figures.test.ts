/**
 * A cluster-wide shared group's figures (lib/metrics/cluster-shared.ts): every
 * node's share summed through Redis, the same on every node, in `$SYS/cluster/shared/`
 * and Prometheus' `culex_cluster_shared_group_*`, members by node.
 */
import t from 'tap'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { startCluster } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { publishMany } from '../../helpers/share.js'
import type { CulexProcess } from '../../helpers/cli.js'

const GROUP = '$share/fig/jobs/#'

async function metrics (node: CulexProcess): Promise<string> {
  const ws = node.logs.find((l) => l.listener === 'ws')?.url
  if (typeof ws !== 'string') throw new Error('no WebSocket listener')
  const res = await fetch(`http://${new URL(ws).host}/metrics`, { signal: AbortSignal.timeout(5000) })
  return await res.text()
}

t.test('a group with members on two nodes: delivered, in flight, queued and members per node, summed cluster-wide, in $SYS and Prometheus on each node', async (t) => {
  const { nodes: [a, b] } = await startCluster(t, ['a', 'b'], { args: ['--sys-interval', '1'] })
  const onA = await connectClient(t, a.url, { clientId: 'fig-a', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } })
  const onB = await connectClient(t, b.url, { clientId: 'fig-b', protocolVersion: 4, clean: false })
  const got = [collect(onA), collect(onB)]
  await onA.subscribeAsync(GROUP, { qos: 1 })
  await onB.subscribeAsync(GROUP, { qos: 1 })
  const watch = await connectClient(t, b.url, { clientId: 'watch' })
  const latest = new Map<string, string>()
  watch.on('message', (topic, payload) => { latest.set(topic, payload.toString()) })
  await watch.subscribeAsync('$SYS/cluster/shared/#')
  await waitFor(() => latest.get('$SYS/cluster/shared/fig/jobs%2F%23/members') === '2', { timeout: 8000, what: () => `two members seen (${JSON.stringify([...latest])})` })

  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  await publishMany(publisher, 200, (i) => ({ topic: `jobs/${i}`, payload: String(i) }), 20)
  await waitFor(() => got[0]!.messages.length + got[1]!.messages.length >= 200, { timeout: 10000, what: 'the 200 deliveries' })
  await waitFor(() => latest.get('$SYS/cluster/shared/fig/jobs%2F%23/delivered') === '200', { timeout: 8000, what: () => `delivered 200 in $SYS on node b (${latest.get('$SYS/cluster/shared/fig/jobs%2F%23/delivered')})` })
  t.equal(latest.get('$SYS/cluster/shared/fig/jobs%2F%23/members/a'), '1', 'one member on node a')
  t.equal(latest.get('$SYS/cluster/shared/fig/jobs%2F%23/members/b'), '1', 'one member on node b')
  t.equal(latest.get('$SYS/cluster/shared/fig/jobs%2F%23/inflight'), '0', 'nothing in flight')
  t.equal(latest.get('$SYS/cluster/shared/fig/jobs%2F%23/queued'), '0', 'nothing queued')
  t.ok(got.every((g) => g.messages.length > 0), `both nodes delivered a share (${got.map((g) => g.messages.length).join(', ')}), summed to 200`)

  const text = await metrics(a)
  t.match(text, /culex_cluster_shared_group_delivered_total\{group="\$share\/fig\/jobs\/#"\} 200/, 'Prometheus on node a: the cluster-wide delivered count')
  t.match(text, /culex_cluster_shared_group_members\{group="\$share\/fig\/jobs\/#",node="b"\} 1/, 'and the members by node')

  // every member offline (persistent sessions): what is published waits in the stream, counted as queued
  await onB.endAsync()
  await onA.endAsync()
  await publishMany(publisher, 30, (i) => ({ topic: `jobs/later/${i}`, payload: String(i) }), 10)
  await waitFor(() => latest.get('$SYS/cluster/shared/fig/jobs%2F%23/queued') === '30', { timeout: 8000, what: () => `30 queued in the group's stream (${latest.get('$SYS/cluster/shared/fig/jobs%2F%23/queued')})` })
  t.pass('messages waiting in the stream are counted as queued')
  t.equal(latest.get('$SYS/cluster/shared/fig/jobs%2F%23/members'), '2', 'the offline members still count')
})

t.test('a group gone from every node: its $SYS/cluster/shared topics are cleared (an empty retained message each) [MQTT-3.3.1-6]', async (t) => {
  const { nodes: [a, b] } = await startCluster(t, ['a', 'b'], { args: ['--sys-interval', '1'] })
  const member = await connectClient(t, b.url, { clientId: 'gone-member', protocolVersion: 5 })
  await member.subscribeAsync('$share/gone/jobs/#', { qos: 1 })
  const watch = await connectClient(t, a.url, { clientId: 'watch' })
  const latest = new Map<string, string>()
  watch.on('message', (topic, payload) => { latest.set(topic, payload.toString()) })
  await watch.subscribeAsync('$SYS/cluster/shared/#')
  await waitFor(() => latest.get('$SYS/cluster/shared/gone/jobs%2F%23/members') === '1', { timeout: 8000, what: 'the group in $SYS on node a' })
  await member.unsubscribeAsync('$share/gone/jobs/#')
  await waitFor(() => latest.get('$SYS/cluster/shared/gone/jobs%2F%23/members') === '', { timeout: 8000, what: () => `the group's topics cleared (${latest.get('$SYS/cluster/shared/gone/jobs%2F%23/members')})` })
  const late = await connectClient(t, a.url, { clientId: 'late' })
  const retained: string[] = []
  late.on('message', (topic) => { retained.push(topic) })
  await late.subscribeAsync('$SYS/cluster/shared/#')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(retained.filter((topic) => topic.includes('/gone/')), [], 'a new subscriber gets no retained value of the group')
})
