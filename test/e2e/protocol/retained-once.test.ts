/**
 * A retained message reaches a subscription of its own publisher once: a
 * client that publishes a retained message and subscribes to its topic
 * without waiting got it twice on a fresh broker (live, and again as the
 * retained copy), and the same in the other order.
 *
 * Implemented in lib/protocol/inbound/retained-order.ts, applied by
 * lib/protocol/flows/publish-in.ts (onRetainedPublish),
 * lib/protocol/flows/subscribe.ts (onSubscribeInOrder) and
 * lib/broker/hooks/publish.ts (`published`, `authorizePublish`).
 */
import t, { type Test } from 'tap'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import { describe, uniqueId, type RawVersion } from '../../helpers/raw5.js'
import { tempDir } from '../../helpers/security.js'

type Order = 'publish, then subscribe' | 'subscribe, then publish'

/**
 * On a fresh broker: one client sends CONNECT, then the retained PUBLISH and
 * the SUBSCRIBE in `order`, in one write; once the SUBACK is in, a marker
 * on the same topic. Returns the copies of the retained
 * message that came before the marker, as 'retained' or 'live'.
 */
async function copies (t: Test, persistence: 'memory' | 'level', version: RawVersion, qos: 0 | 1 | 2, order: Order): Promise<string[]> {
  const server = await startTestServer(t, { persistence, dataDir: tempDir(t, 'culex-retained-once-'), metrics: false, sysInterval: 0 })
  const c = await RawClient.open(tcpPort(server), version)
  try {
    const topic = 'once/' + uniqueId('t')
    const publish: mqtt.IPublishPacket = { cmd: 'publish', topic, payload: Buffer.from('value'), qos, retain: true, dup: false, ...(qos > 0 ? { messageId: 1 } : {}) }
    const subscribe: mqtt.ISubscribePacket = { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic, qos }] }
    const packets: mqtt.Packet[] = [
      { cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: uniqueId('once'), clean: true, keepalive: 60 },
      ...(order === 'publish, then subscribe' ? [publish, subscribe] : [subscribe, publish])
    ]
    c.sendRaw(Buffer.concat(packets.map(p => mqtt.generate(p, { protocolVersion: version }))))
    await c.next('suback')
    // the copies of the retained message come before this, which the client sends after the SUBACK;
    // retained and at the same QoS, so that it is routed after the message (the store takes them in order)
    c.send({ cmd: 'publish', topic, payload: Buffer.from('marker'), qos, retain: true, dup: false, ...(qos > 0 ? { messageId: 3 } : {}) })
    const seen: string[] = []
    for (;;) {
      const p = await c.next('publish') as mqtt.IPublishPacket
      const text = p.payload.toString()
      if (text === 'marker') break
      if (text !== 'value') throw new Error(`unexpected ${describe(p)}`)
      seen.push(p.retain ? 'retained' : 'live')
      if (qos === 1) c.send({ cmd: 'puback', messageId: p.messageId as number })
      if (qos === 2) c.send({ cmd: 'pubrec', messageId: p.messageId as number })
    }
    return seen
  } finally {
    c.destroy()
    await server.close()
  }
}

const RUNS = { 0: 30, 1: 10, 2: 10 } as const

for (const persistence of ['memory', 'level'] as const) {
  for (const qos of [0, 1, 2] as const) {
    t.test(`spec 4.3.1 ${persistence} store, QoS ${qos}: publish retained, then subscribe on the same client without waiting: ${RUNS[qos]} fresh brokers, one copy each time, the retained one`, async (t) => {
      const outcomes: string[] = []
      for (let i = 0; i < RUNS[qos]; i++) outcomes.push((await copies(t, persistence, i % 2 === 0 ? 5 : 4, qos, 'publish, then subscribe')).join('+'))
      t.same(outcomes, outcomes.map(() => 'retained'), 'exactly one copy, the retained one, every time')
    })
    t.test(`spec 4.3.1 ${persistence} store, QoS ${qos}: subscribe, then publish retained without waiting: 10 fresh brokers, one copy each time, the live one`, async (t) => {
      const outcomes: string[] = []
      for (let i = 0; i < 10; i++) outcomes.push((await copies(t, persistence, i % 2 === 0 ? 5 : 4, qos, 'subscribe, then publish')).join('+'))
      t.same(outcomes, outcomes.map(() => 'live'), 'exactly one copy, the live one, every time')
    })
  }
}
