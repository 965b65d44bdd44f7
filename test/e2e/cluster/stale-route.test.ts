/**
 * A persistent session moves from node B to node C while node A publishes
 * to it, and A's route table is stale: it missed C's announcements of the
 * session's filter (lost notices), and knows it only from its next full
 * reload of the routes (every RELOAD_MS). Until then A sends to B alone,
 * which forwards to C (lib/broker/cluster-moves.ts); B keeps the filter as
 * its route LINGER_MS after the move, longer than that reload takes, so
 * no message A acknowledges finds neither node (PUBACK 0x10, lost).
 */
import t from 'tap'
import type { IClientOptions } from 'mqtt'
import { connectClient, resumeInto } from '../../helpers/mqtt.js'
import { redisCli, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { RELOAD_MS } from '../../../lib/cluster/routes.js'

t.test('[MQTT-4.5.0-1] a session moving while the publishing node missed the new node\'s route gets every acknowledged message', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const opts: IClientOptions = { clientId: 'mover', protocolVersion: 5, clean: false, keepalive: 0, properties: { sessionExpiryInterval: 600 } }
  const got: string[] = []
  const first = await resumeInto(t, b.url, opts, got)
  await first.subscribeAsync('s/#', { qos: 1 })
  const publisher = await connectClient(t, a.url, { clientId: 'pub', protocolVersion: 5 })
  await waitFor(async () => {
    await publisher.publishAsync('s/probe', 'probe', { qos: 1 })
    return got.includes('probe')
  }, { timeout: 8000, step: 100, what: 'the route to b' })

  const acked: string[] = []
  let publishing = true
  const publishes = (async () => {
    for (let i = 0; publishing; i++) {
      try {
        await publisher.publishAsync(`s/${i}`, String(i), { qos: 1 })
        acked.push(String(i))
      } catch {}
      await sleep(20)
    }
  })()
  await sleep(300)
  await resumeInto(t, c.url, opts, got)
  first.end(true)
  await waitFor(() => redisCli(redis, 'SISMEMBER', '{culex}:durable:c', 's/#') === '(integer) 1', { what: 'c announced the session\'s filter' })
  // A forgets C's routes (live and durable) again and again, as if it had missed their notices, beyond the 3 s B used to keep its own
  const staleUntil = Date.now() + 3500
  while (Date.now() < staleUntil) {
    redisCli(redis, 'PUBLISH', '{culex}:routes', '- c s/#')
    redisCli(redis, 'PUBLISH', '{culex}:routes', 'd- c s/#')
    await sleep(50)
  }
  // A's next reload brings C's route back
  await sleep(RELOAD_MS + 500)
  publishing = false
  await publishes
  const arrived = (): Set<string> => new Set(got)
  // a wait whose timeout is the assertion below, which names what is missing
  await waitFor(() => acked.every((p) => arrived().has(p)), { timeout: 10000 }).catch(() => {})
  const missing = acked.filter((p) => !arrived().has(p))
  t.ok(acked.length > 100, `${acked.length} messages acknowledged`)
  t.same(missing, [], 'every acknowledged message arrived')
})
