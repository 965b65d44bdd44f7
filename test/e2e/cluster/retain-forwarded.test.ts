/**
 * Retain As Published for a message forwarded while a session moves: two
 * persistent sessions move from node B to node C while node A's route
 * table is stale (it missed C's announcements, as in stale-route.test.ts),
 * so A's retained QoS 1/2 messages go to B alone, which forwards them to C
 * for each session (lib/broker/cluster-moves.ts). On C the session with
 * Retain As Published gets RETAIN 1, the other RETAIN 0, as a routed
 * message (retain-routed.test.ts) and as on one node; C does not write
 * them to the cluster's retained store again.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import type { IClientOptions, IPublishPacket } from 'mqtt'
import { connectClient } from '../../helpers/mqtt.js'
import { redisCli, retainedNotices, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

t.test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] a retained message forwarded to a moving session\'s new node keeps RETAIN 1 for Retain As Published only, at QoS 1 and 2, stored once', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const changes = await retainedNotices(t, redis)
  // the FORWARD calls naming each session (lib/cluster/forward.ts)
  const watcher = new Redis(redis.url)
  const monitor = await watcher.monitor()
  t.teardown(() => { monitor.disconnect(); watcher.disconnect() })
  const forwardedFor = new Set<string>()
  monitor.on('monitor', (_time: string, args: string[]) => {
    // FORWARD's arguments: the message (its topic readable), then the session's client id
    if (args[0]?.toLowerCase().startsWith('eval') !== true || !args.some((arg) => arg.includes('m/q'))) return
    for (const id of ['rap-sub', 'plain-sub']) if (args.includes(id)) forwardedFor.add(id)
  })

  const session = (clientId: string): IClientOptions => ({ clientId, protocolVersion: 5, clean: false, keepalive: 0, properties: { sessionExpiryInterval: 600 } })
  const onB = { rap: await connectClient(t, b.url, session('rap-sub')), plain: await connectClient(t, b.url, session('plain-sub')) }
  await onB.rap.subscribeAsync('m/#', { qos: 2, rap: true })
  await onB.plain.subscribeAsync('m/#', { qos: 2, rap: false })
  const publisher = await connectClient(t, a.url, { clientId: 'pub', protocolVersion: 5 })
  const probes: string[] = []
  onB.rap.on('message', (topic) => { probes.push(topic) })
  await waitFor(async () => {
    await publisher.publishAsync('m/probe', 'probe', { qos: 1 })
    return probes.length > 0
  }, { timeout: 8000, step: 100, what: 'the route to b' })

  // both sessions move to C; their old connections end
  const got = { rap: [] as IPublishPacket[], plain: [] as IPublishPacket[] }
  const onC = { rap: await connectClient(t, c.url, session('rap-sub')), plain: await connectClient(t, c.url, session('plain-sub')) }
  onC.rap.on('message', (_topic, _payload, packet) => { got.rap.push(packet) })
  onC.plain.on('message', (_topic, _payload, packet) => { got.plain.push(packet) })
  onB.rap.end(true)
  onB.plain.end(true)
  await waitFor(() => redisCli(redis, 'SISMEMBER', '{culex}:durable:c', 'm/#') === '(integer) 1', { what: 'c announced the sessions\' filter' })
  // A forgets C's routes, as if it had missed their notices: it sends to B, which still lingers as a route and forwards
  const stale = (): void => {
    redisCli(redis, 'PUBLISH', '{culex}:routes', '- c m/#')
    redisCli(redis, 'PUBLISH', '{culex}:routes', 'd- c m/#')
  }
  stale()
  await sleep(200)
  const before = changes.length
  stale()
  await publisher.publishAsync('m/q1', 'one', { qos: 1, retain: true })
  stale()
  await publisher.publishAsync('m/q2', 'two', { qos: 2, retain: true })
  stale()
  await publisher.publishAsync('m/live', 'live', { qos: 1, retain: false })
  const fresh = (m: IPublishPacket): boolean => m.topic !== 'm/probe'
  await waitFor(() => got.rap.filter(fresh).length >= 3 && got.plain.filter(fresh).length >= 3, { timeout: 8000, what: 'the three messages on C' })
  // anything stored again or sent twice would come by now
  await sleep(700)

  t.same([...forwardedFor].sort(), ['plain-sub', 'rap-sub'], 'B forwarded the messages to C for each session (A\'s route table was stale)')
  const flags = (list: IPublishPacket[]): string[] => list.filter(fresh).map((m) => `${m.topic} qos ${m.qos} retain ${m.retain ? 1 : 0}`).sort()
  t.same(flags(got.rap), ['m/live qos 1 retain 0', 'm/q1 qos 1 retain 1', 'm/q2 qos 2 retain 1'], 'Retain As Published: RETAIN 1 for the retained ones, once each [MQTT-3.3.1-12]')
  t.same(flags(got.plain), ['m/live qos 1 retain 0', 'm/q1 qos 1 retain 0', 'm/q2 qos 2 retain 0'], 'without Retain As Published: RETAIN 0 [MQTT-3.3.1-13]')
  t.equal(changes.length - before, 2, 'one retained change per retained message: neither B nor C wrote them again')
})
