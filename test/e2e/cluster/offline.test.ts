/**
 * QoS 1/2 messages for an offline persistent session on another node: a
 * node's durable routes (the QoS 1/2 filters of every persistent session it
 * holds, online or offline) bring a message published on node A to the
 * inbox of node B, which queues it in the session (in Redis); the client
 * resumes on B, or on node C (which loads the session from Redis), and gets
 * every message, in order.
 */
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { redisCli, startCluster, startNode } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { LINGER_MS } from '../../../lib/broker/cluster-moves.js'

/** The reason codes of the PUBACK/PUBRECs `client` gets while `run` runs. */
async function ackCodes (client: MqttClient, run: () => Promise<void>): Promise<number[]> {
  const codes: number[] = []
  const on = (packet: { cmd: string, reasonCode?: number }): void => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubrec') codes.push(packet.reasonCode ?? 0)
  }
  client.on('packetreceive', on)
  try { await run() } finally { client.removeListener('packetreceive', on) }
  return codes
}

for (const resumeOn of ['b', 'c'] as const) {
  for (const version of [5, 4] as const) {
    t.test(`MQTT ${version === 5 ? '5' : '3.1.1'}: a persistent session offline on node B gets the QoS 1/2 messages published on node A meanwhile, and resumes on node ${resumeOn.toUpperCase()} with them in order [MQTT-3.1.2-4] [MQTT-4.6.0-6]`, async (t) => {
      const { redis, nodes: [a, b] } = await startCluster(t, ['a', 'b'])
      const c = resumeOn === 'c' ? await startNode(t, redis, ['--node-id', 'c']) : b
      const clientId = `keeper-${version}`
      const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false }
      const first = await connectClient(t, b.url, { clientId, protocolVersion: version, ...persistent })
      const gotFirst = collect(first)
      await first.subscribeAsync('off/#', { qos: 2 })
      const publisher = await connectClient(t, a.url, { clientId: 'pub', protocolVersion: 5 })
      await waitFor(async () => {
        await publisher.publishAsync('off/probe', 'probe', { qos: 1 })
        return gotFirst.messages.length > 0
      }, { timeout: 8000, step: 100, what: 'the route to b' })
      await sleep(200)
      await first.endAsync()
      await waitFor(() => redisCli(redis, 'SISMEMBER', '{culex}:routes:b', 'off/#') === '(integer) 0', { what: 'the live route goes with the connection' })
      t.equal(redisCli(redis, 'SISMEMBER', '{culex}:durable:b', 'off/#'), '(integer) 1', 'the durable route stays while b holds the offline session')

      const N = 40
      const codes = await ackCodes(publisher, async () => {
        for (let i = 0; i < N; i++) await publisher.publishAsync(`off/${i}`, String(i), { qos: i % 2 === 0 ? 1 : 2 })
      })
      t.same(codes, codes.map(() => 0), `${N} PUBACK/PUBRECs 0x00: the offline session on b matches (not 0x10)`)
      t.equal(codes.length, N)

      const again = await connectClient(t, c.url, { clientId, protocolVersion: version, ...persistent })
      t.equal(again.connected, true)
      const got = collect(again)
      await got.next(N, 10000)
      await sleep(500)
      const numbered = got.messages.filter((m) => m.topic !== 'off/probe')
      const expected = Array.from({ length: N }, (_, i) => String(i))
      t.same(numbered.map((m) => m.payload.toString()).sort((x, y) => Number(x) - Number(y)), expected, `all ${N} arrive on ${resumeOn}, once each`)
      for (const qos of [1, 2]) {
        t.same(numbered.filter((m) => m.qos === qos).map((m) => m.payload.toString()), expected.filter((_, i) => i % 2 === qos - 1), `the QoS ${qos} ones at QoS ${qos}, in the publisher's order`)
      }
      if (resumeOn === 'c') {
        // kept LINGER_MS longer for publishers whose route tables are stale (cluster-moves.ts)
        await waitFor(() => redisCli(redis, 'SISMEMBER', '{culex}:durable:b', 'off/#') === '(integer) 0', { timeout: LINGER_MS + 5000, step: 200, what: 'b dropped its durable route when c took the session' })
        t.pass('b dropped its durable route when c took the session over')
      }
    })
  }
}
