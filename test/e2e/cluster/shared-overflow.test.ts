/**
 * A cluster-wide group queue's limit (`--shared-max-queued`) and overflow
 * policy (`--shared-overflow`), as on one node (test/e2e/shared/overflow.test.ts),
 * applied in the group's stream by whichever node adds the message
 * (lib/cluster/shared-scripts.ts, ADD): with the one member offline on node
 * B, node A's publisher's messages beyond the limit are refused or push out
 * the oldest; what either cost is the group's `dropped` figure, cluster-wide.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { redisCli, startCluster } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { text } from '../../helpers/share.js'

const GROUP = '$share/capped/jobs/#'
const LIMIT = 5
const SENT = 8

for (const overflow of ['drop-oldest', 'refuse'] as const) {
  t.test(`${overflow} across nodes: the member offline on node B gets the ${overflow === 'refuse' ? 'first' : 'last'} ${LIMIT} of ${SENT} messages published on node A; ${SENT - LIMIT} counted dropped in $SYS`, async (t) => {
    const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'], { args: ['--shared-max-queued', String(LIMIT), '--shared-overflow', overflow, '--sys-interval', '1'] })
    const opts = { clientId: 'capped', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } }
    const watch = await connectClient(t, b.url, { clientId: 'watch' })
    const latest = new Map<string, string>()
    watch.on('message', (topic, payload) => { latest.set(topic, payload.toString()) })
    await watch.subscribeAsync(['$SYS/cluster/shared/#', '$SYS/brokers/b/clients/connected'])
    const member = await connectClient(t, b.url, opts)
    await member.subscribeAsync(GROUP, { qos: 1 })
    await waitFor(() => redisCli(redis, 'HEXISTS', '{culex}:share:groups', GROUP) === '(integer) 1', { timeout: 5000, what: 'the group known to the cluster' })
    await waitFor(() => latest.get('$SYS/brokers/b/clients/connected') === '2', { timeout: 8000, what: 'the member connected on node B, in $SYS' })
    await member.endAsync()
    // node B has seen the member go (until then it may read an entry for it)
    await waitFor(() => latest.get('$SYS/brokers/b/clients/connected') === '1', { timeout: 8000, what: () => `the member's connection gone on node B (${latest.get('$SYS/brokers/b/clients/connected')})` })

    const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
    for (let i = 0; i < SENT; i++) await publisher.publishAsync('jobs/capped', String(i), { qos: 1 })
    t.equal(redisCli(redis, 'XLEN', `culex:share:{${GROUP}}`), `(integer) ${LIMIT}`, `the group's stream holds ${LIMIT}`)
    const figure = (name: string): string | undefined => latest.get(`$SYS/cluster/shared/capped/jobs%2F%23/${name}`)
    // the waiting entries are counted by the sweep's holder, every few seconds
    await waitFor(() => figure('dropped') === String(SENT - LIMIT) && figure('queued') === String(LIMIT), { timeout: 15000, what: () => `${SENT - LIMIT} dropped and ${LIMIT} queued in $SYS (${JSON.stringify([...latest])})` })
    t.pass(`$SYS on node B: ${SENT - LIMIT} dropped (counted on node A), ${LIMIT} queued`)

    // the handler in place before the CONNACK: the queue may come with it
    const back = mqtt.connect(b.url, { reconnectPeriod: 0, ...opts })
    t.teardown(() => { back.end(true) })
    const got = collect(back)
    await waitFor(() => got.messages.length >= LIMIT, { timeout: 8000, what: () => `the member getting the queue (${got.messages.length})` })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const expected = overflow === 'refuse' ? ['0', '1', '2', '3', '4'] : ['3', '4', '5', '6', '7']
    t.same(got.messages.map(text), expected, `the member got ${expected.join(', ')}, in order`)
  })
}
