// A retained PUBLISH waits for the store before aedes forwards it; a message
// published after it (by the same or another client) may overtake it. aedes
// 2.0.0-beta.1 then dropped the retained one for every subscriber that got
// both, taking it for a duplicate of an older copy (client.duplicates keeps
// the highest broker counter seen). Every message must still arrive once.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect, type Version } from '../../helpers/mqtt.js'
import { sleep } from '../../helpers/wait.js'

const ROUNDS = 50

async function publishNoWait (client: MqttClient, topic: string, payload: string, qos: 0 | 1 | 2, retain: boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => client.publish(topic, payload, { qos, retain }, (err) => err ? reject(err) : resolve()))
}

for (const persistence of ['memory', 'level'] as const) {
  for (const version of [4, 5] as Version[]) {
    t.test(`${persistence} store, ${version === 5 ? 'MQTT 5' : '3.1.1'}: retained then plain, from one client and from two, each arrives once [MQTT-4.6.0-6] [MQTT-3.3.1-5]`, async (t) => {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'culex-order-'))
      t.teardown(() => rm(dataDir, { recursive: true, force: true }))
      const server = await startTestServer(t, { persistence, dataDir })
      const url = tcpUrl(server)
      const sub = await connectClient(t, url, { protocolVersion: version, clientId: 'order-sub' })
      await sub.subscribeAsync('order/#', { qos: 2 })
      const got = collect(sub)
      const a = await connectClient(t, url, { protocolVersion: version, clientId: 'order-a' })
      const b = await connectClient(t, url, { protocolVersion: version, clientId: 'order-b' })
      for (let i = 0; i < ROUNDS; i++) {
        // a round at a time: 3.1.1 clients cannot learn culex's Receive Maximum
        const sent: Array<Promise<void>> = []
        for (const qos of [0, 1, 2] as const) {
          // one client: retained then plain, in one write
          sent.push(publishNoWait(a, `order/a/${qos}`, `a-r-${qos}-${i}`, qos, true))
          sent.push(publishNoWait(a, `order/a/${qos}/p`, `a-p-${qos}-${i}`, qos, false))
          // another client right after
          sent.push(publishNoWait(b, `order/b/${qos}`, `b-p-${qos}-${i}`, qos, false))
        }
        await Promise.all(sent)
      }
      const expected = ROUNDS * 9
      const messages = await got.next(expected, 10_000)
      await sleep(200)
      const payloads = got.messages.map((m) => m.payload.toString())
      t.equal(got.messages.length, expected, 'no message lost and none twice')
      t.equal(new Set(payloads).size, expected, 'every payload once')
      // per topic, publish order is kept [MQTT-4.6.0-6]
      const byTopic = new Map<string, number[]>()
      for (const m of messages) {
        const seq = Number(m.payload.toString().split('-').pop())
        const list = byTopic.get(m.topic) ?? []
        list.push(seq)
        byTopic.set(m.topic, list)
      }
      for (const [topic, seqs] of byTopic) t.same(seqs, [...seqs].sort((x, y) => x - y), `${topic} in order`)
    })
  }
}
