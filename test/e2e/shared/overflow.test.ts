/**
 * A group queue's limit (`sharedMaxQueued`) and its overflow policy
 * (`sharedOverflow`) on one node (lib/shared/dispatcher.ts, makeRoom): with
 * every member offline (a persistent session), the group keeps at most the
 * limit; `drop-oldest` keeps the newest, `refuse` the oldest, and what
 * either cost is counted as dropped. The publisher is acknowledged all the
 * same (spec 3.4.2.1: the group is a matching subscription), as mosquitto
 * does for a full offline queue.
 */
import t from 'tap'
import { connectClient } from '../../helpers/mqtt.js'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectWithConnack, groupStats, shareId, text, waitForGroup } from '../../helpers/share.js'
import { waitFor } from '../../helpers/wait.js'

const KEY = '$share/capped/jobs/#'
const LIMIT = 5
const SENT = 8

for (const overflow of ['drop-oldest', 'refuse'] as const) {
  t.test(`${overflow}: a group of offline members keeps ${LIMIT} of ${SENT} messages, the ${overflow === 'refuse' ? 'first' : 'last'} ${LIMIT}, and counts ${SENT - LIMIT} dropped`, async (t) => {
    const server = await startTestServer(t, { sharedMaxQueued: LIMIT, sharedOverflow: overflow })
    const url = tcpUrl(server)
    const opts = { clientId: shareId('capped'), clean: false, properties: { sessionExpiryInterval: 300 } }
    const member = await connectClient(t, url, opts)
    await member.subscribeAsync(KEY, { qos: 1 })
    await member.endAsync()
    await waitForGroup(server, KEY, (s) => s?.membersOffline === 1, 'the member offline')

    const pub = await connectClient(t, url, { clientId: shareId('pub') })
    const codes: number[] = []
    for (let i = 0; i < SENT; i++) {
      const ack = await pub.publishAsync('jobs/capped', String(i), { qos: 1 }) as { reasonCode?: number } | undefined
      codes.push(ack?.reasonCode ?? 0)
    }
    t.same(codes, codes.map(() => 0), 'every publish acknowledged with 0x00')
    const s = groupStats(server, KEY)
    t.equal(s?.queued, LIMIT, `${LIMIT} queued`)
    t.equal(s?.dropped, SENT - LIMIT, `${SENT - LIMIT} counted as dropped`)

    const { inbox } = await connectWithConnack(t, url, opts)
    await waitFor(() => inbox.messages.length >= LIMIT, { what: () => `the member getting the queue (${inbox.messages.length})` })
    await waitForGroup(server, KEY, (s) => s?.queued === 0 && s.inflight === 0, 'the queue acknowledged')
    const expected = overflow === 'refuse' ? ['0', '1', '2', '3', '4'] : ['3', '4', '5', '6', '7']
    t.same(inbox.messages.map(text), expected, `the member got ${expected.join(', ')}, in order`)
  })
}
