/**
 * A persistent session that moves between nodes while messages for it keep
 * coming: a publisher on node A publishes numbered QoS 1/2 messages without
 * pause while the subscriber's session flaps between nodes B and C (each
 * CONNECT takes it over from the other node); or a publisher on node B,
 * which hands the session over every other move. A message published between
 * the new node's claim and the publisher's node seeing the new node's route
 * goes to the old node, which no longer holds the session: it forwards it
 * to the session's new node (lib/broker/cluster-moves.ts). Every
 * acknowledged message arrives; at QoS 1 duplicates are counted (at least
 * once), at QoS 2 there are none (each message's routed id travels into the
 * session: lib/cluster/routed-id.ts).
 */
import t, { type Test } from 'tap'
import mqtt, { type IClientOptions } from 'mqtt'
import { connectClient, resumeInto } from '../../helpers/mqtt.js'
import { startCluster } from '../../helpers/redis.js'
import type { CulexProcess } from '../../helpers/cli.js'
import { sleep, waitFor } from '../../helpers/wait.js'

/** A QoS 2 store that outlives each connection of the client (MQTT.js closes its stores at end()). */
class KeptStore extends mqtt.Store {
  override close (cb?: () => void): void { cb?.() }
}

/** `publishOn`: the node the publisher is connected to, 'a' (no part in the moves) or 'b' (the old node of every other move) */
async function flapping (t: Test, version: 4 | 5, qos: 1 | 2, publishOn: 'a' | 'b' = 'a'): Promise<void> {
  const { nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  // one client moving: its QoS 2 state (a PUBREL may come on its next connection) is kept across its connections
  const incomingStore = new KeptStore()
  const opts: IClientOptions = { clientId: 'mover', protocolVersion: version, clean: false, keepalive: 0, incomingStore, ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) }
  const got: string[] = []
  const first = await resumeInto(t, b.url, opts, got)
  await first.subscribeAsync('f/#', { qos })
  const publisher = await connectClient(t, (publishOn === 'a' ? a : b).url, { clientId: 'pub', protocolVersion: 5 })
  await waitFor(async () => {
    await publisher.publishAsync('f/probe', 'probe', { qos: 1 })
    return got.includes('probe')
  }, { timeout: 8000, step: 100, what: 'the route to b' })

  const acked: string[] = []
  let publishing = true
  // a publish the broker fails closes the publisher's connection, and its promise would never settle
  let dropped = false
  const closed = new Promise<void>((resolve) => { publisher.once('close', () => { dropped = true; resolve() }) })
  const publishes = (async () => {
    for (let i = 0; publishing && !dropped; i++) {
      try {
        await Promise.race([publisher.publishAsync(`f/${i}`, String(i), { qos }), closed])
        if (!dropped) acked.push(String(i))
      } catch {}
    }
  })()
  const FLAPS = 12
  const nodes: CulexProcess[] = [c, b]
  let current = first
  for (let i = 0; i < FLAPS; i++) {
    await sleep(150 + (i % 3) * 70)
    const previous = current
    current = await resumeInto(t, (nodes[i % 2] as CulexProcess).url, opts, got)
    previous.end(true)
  }
  await sleep(300)
  publishing = false
  await publishes
  const arrived = (): Set<string> => new Set(got)
  // a wait whose timeout is the assertion below, which names what is missing
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 20000 }).catch(() => {})
  await sleep(500)
  const missing = acked.filter((p) => !arrived().has(p))
  const numbered = got.filter((p) => p !== 'probe')
  t.notOk(dropped, 'the publisher\'s connection stayed up (no publish failed)')
  t.ok(acked.length > 200, `${acked.length} messages acknowledged while the session moved ${FLAPS} times`)
  const duplicates = numbered.length - new Set(numbered).size
  t.same(missing, [], `every acknowledged message arrived (${numbered.length} deliveries, ${duplicates} duplicates${qos === 1 ? ': at least once' : ''})`)
  if (qos === 2) {
    const twice = [...new Set(numbered.filter((p, i) => numbered.indexOf(p) !== i))]
    t.same(twice, [], `[MQTT-4.3.3-10] none arrived twice (${duplicates} duplicates among ${numbered.length} deliveries)`)
  }
}

t.test('MQTT 5, QoS 1: a session flapping between nodes B and C while node A publishes without pause gets every acknowledged message', async (t) => {
  await flapping(t, 5, 1)
})

// the publisher's own node hands the session over: a message it queued into its copy as the copy went is sent on to the session's new node
t.test('[MQTT-4.3.2-4] MQTT 5, QoS 1: a session flapping between nodes B and C while a publisher on node B publishes without pause gets every acknowledged message', async (t) => {
  await flapping(t, 5, 1, 'b')
})

t.test('[MQTT-4.3.3-10] MQTT 3.1.1, QoS 2: a session flapping between nodes B and C while node A publishes without pause gets every acknowledged message exactly once', async (t) => {
  await flapping(t, 4, 2)
})

t.test('[MQTT-4.3.3-10] MQTT 5, QoS 2: a session flapping between nodes B and C while a publisher on node B publishes without pause gets every acknowledged message exactly once', async (t) => {
  await flapping(t, 5, 2, 'b')
})
