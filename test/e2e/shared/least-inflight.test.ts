/**
 * Shared subscriptions and members' windows (spec 4.8.2, spec 4.9): a member
 * whose Receive Maximum is used up is not given more; the group gives the
 * message to a member with room.
 *
 * Implemented in lib/shared/strategies.ts (least-inflight, round-robin) and
 * lib/shared/dispatcher.ts (candidates: members with room).
 */
import t, { type Test } from 'tap'
import type { IPublishPacket } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import type { CulexServer } from '../../../lib/server.js'
import { groupStats, nextPublishes, publishMany, rawMember, rawSubscribe, shareId, takePublishes, text, waitForMembers, duplicates } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const TOTAL = 50

/**
 * A raw member at Receive Maximum 1 that never acknowledges joins first
 * (and sorts first by client id), then a fast MQTT.js member; 50 QoS 1
 * messages are published. Returns what each received.
 */
async function slowAndFast (t: Test, server: CulexServer, group: string): Promise<{ slow: string[], fast: string[] }> {
  const key = `$share/${group}/work/#`
  const slow = await rawMember(t, tcpPort(server), { clientId: shareId('a-slow'), receiveMaximum: 1 })
  t.same(await rawSubscribe(slow, [{ topic: key, qos: 1 }]), [1], 'slow member granted QoS 1')
  const fast = await connectClient(t, tcpUrl(server), { clientId: shareId('b-fast') })
  const fastInbox = collect(fast)
  await fast.subscribeAsync(key, { qos: 1 })
  await waitForMembers(server, key, 2)

  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, TOTAL, i => ({ topic: 'work/item', payload: `m${i}` }), 10)

  const slowGot: IPublishPacket[] = []
  await waitFor(() => {
    slowGot.push(...takePublishes(slow))
    return slowGot.length + fastInbox.messages.length >= TOTAL
  }, { what: () => `all ${TOTAL} messages delivered (slow got ${slowGot.length}, fast ${fastInbox.messages.length}; group ${JSON.stringify(groupStats(server, key))})` })
  // anything extra would show up now
  await sleep(300)
  slowGot.push(...takePublishes(slow))
  return { slow: slowGot.map(text), fast: fastInbox.messages.map(text) }
}

function checkSplit (t: Test, got: { slow: string[], fast: string[] }): void {
  t.equal(got.slow.length, 1, `the slow member (Receive Maximum 1, never acknowledges) got exactly 1 message, got ${JSON.stringify(got.slow)}`)
  t.equal(got.fast.length, TOTAL - 1, `the fast member got all the rest (${TOTAL - 1}), got ${got.fast.length}`)
  const all = [...got.slow, ...got.fast]
  t.same(duplicates(all), [], 'no message delivered twice')
  t.equal(new Set(all).size, TOTAL, 'every message delivered')
}

t.test('least-inflight: a member at Receive Maximum 1 that never acknowledges gets exactly 1 message, the fast member all the rest [MQTT-3.3.4-9]', async (t) => {
  const server = await startTestServer(t, { sharedStrategy: 'least-inflight' })
  const got = await slowAndFast(t, server, 'li')
  checkSplit(t, got)
  const s = groupStats(server, '$share/li/work/#')
  t.equal(s?.inflight, 1, 'one message in flight (the slow member\'s)')
  t.equal(s?.queued, 0, 'nothing waiting in the group')
})

t.test('least-inflight set for a group by pattern (sharedStrategies) behaves the same', async (t) => {
  const server = await startTestServer(t, { sharedStrategies: [{ pattern: 'slow-*', strategy: 'least-inflight' }] })
  checkSplit(t, await slowAndFast(t, server, 'slow-pool'))
})

t.test('round-robin: a member whose window is full is skipped (gets 1), the rest go to the other member [MQTT-3.3.4-9]', async (t) => {
  const server = await startTestServer(t)
  const got = await slowAndFast(t, server, 'rr')
  checkSplit(t, got)
  t.equal(got.slow[0], 'm0', 'round-robin starts with the first member by client id')
})

t.test('a member that joins a group with a backlog takes no more than its Receive Maximum; the rest wait for room', async (t) => {
  const server = await startTestServer(t)
  const key = '$share/backlog/work/#'
  // a persistent member keeps the group alive while offline, so messages queue
  const holder = await rawMember(t, tcpPort(server), { clientId: shareId('z-holder'), clean: false, sessionExpiryInterval: 300 })
  t.same(await rawSubscribe(holder, [{ topic: key, qos: 1 }]), [1])
  holder.destroy()
  await waitForMembers(server, key, 0)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub') })
  await publishMany(pub, 10, i => ({ topic: 'work/item', payload: `m${i}` }), 1)
  t.equal(groupStats(server, key)?.queued, 10, 'ten messages wait in the group')

  const slow = await rawMember(t, tcpPort(server), { clientId: shareId('a-slow'), receiveMaximum: 1 })
  t.same(await rawSubscribe(slow, [{ topic: key, qos: 1 }]), [1])
  const sent = (await nextPublishes(slow, 1)).map(text)
  // anything beyond its Receive Maximum would show up now
  await sleep(300)
  t.same([...sent, ...takePublishes(slow).map(text)], ['m0'], 'the new member is sent one message (its Receive Maximum)')
  const s = groupStats(server, key)
  t.equal(s?.inflight, 1, `one message assigned to the new member (stats: ${JSON.stringify(s)})`)
  t.equal(s?.queued, 9, 'nine still wait in the group, for any member with room')
})
