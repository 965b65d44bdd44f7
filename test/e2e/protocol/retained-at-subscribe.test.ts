/**
 * Many retained messages to a new subscription over a real socket (spec
 * 3.3.1.3): the gateway sends a QoS 0 subscriber's (lib/protocol/flows/retained-out.ts),
 * aedes a QoS 1 subscriber's; both after the SUBACK, each topic once, RETAIN
 * set, none lost when the client reads slowly (back-pressure), gathered into
 * few socket writes (lib/protocol/flows/client-writer.ts `startGathering`).
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const COUNT = 3000

interface Reader { packets: mqtt.Packet[], chunks: number, socket: net.Socket }

/** A raw MQTT 5 client: every packet it reads, and how many socket reads brought them. */
async function rawReader (t: Test, port: number, clientId: string): Promise<Reader> {
  const socket = net.connect({ host: '127.0.0.1', port })
  t.teardown(() => { socket.destroy() })
  const parser = mqtt.parser({ protocolVersion: 5 })
  const reader: Reader = { packets: [], chunks: 0, socket }
  parser.on('packet', (p: mqtt.Packet) => reader.packets.push(p))
  socket.on('data', (chunk: Buffer) => { reader.chunks++; parser.parse(chunk) })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write(mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId, keepalive: 0 }, { protocolVersion: 5 }))
  await waitFor(() => reader.packets.some(p => p.cmd === 'connack'))
  return reader
}

const subscribe = (reader: Reader, topic: string, qos: 0 | 1): void => {
  reader.socket.write(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }, { protocolVersion: 5 }))
}

const topicOf = (i: number): string => `rs/${String(i).padStart(4, '0')}`

t.test('retained messages at subscribe, over a real socket', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const publisher = await connectClient(t, tcpUrl(server))
  // stored at QoS 1 (even) and QoS 0 (odd): delivered at the lower of that and the subscription's
  for (let i = 0; i < COUNT; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => publisher.publishAsync(topicOf(i + k), `m${i + k}`, { qos: (i + k) % 2 === 0 ? 1 : 0, retain: true })))
  }

  /** the store's order of the topics, as aedes sends them */
  let storeOrder: string[] = []

  await t.test('[MQTT-3.8.4-8] a QoS 1 subscriber gets them through aedes: every topic once, RETAIN set, at the QoS they were stored with', async (t) => {
    const reader = await rawReader(t, port, 'rs-q1')
    subscribe(reader, 'rs/#', 1)
    const acked = new Set<number>()
    await waitFor(() => {
      for (const p of reader.packets) {
        if (p.cmd === 'publish' && p.messageId !== undefined && !acked.has(p.messageId)) {
          acked.add(p.messageId)
          reader.socket.write(mqtt.generate({ cmd: 'puback', messageId: p.messageId }, { protocolVersion: 5 }))
        }
      }
      return reader.packets.filter(p => p.cmd === 'publish').length >= COUNT
    }, { timeout: 30_000, step: 5 })
    const publishes = reader.packets.filter((p): p is mqtt.IPublishPacket => p.cmd === 'publish')
    t.equal(reader.packets[1]?.cmd, 'suback', 'the SUBACK comes first')
    t.equal(new Set(publishes.map(p => p.topic)).size, COUNT, 'each retained message once')
    t.ok(publishes.every(p => p.retain && p.qos === (Number(p.topic.slice(3)) % 2 === 0 ? 1 : 0)))
    storeOrder = publishes.map(p => p.topic)
  })

  await t.test('[MQTT-3.3.1-8] a QoS 0 subscriber: SUBACK first, then every topic once, in the store\'s order, RETAIN set, in few socket reads', async (t) => {
    const reader = await rawReader(t, port, 'rs-q0')
    const before = reader.chunks
    subscribe(reader, 'rs/#', 0)
    await waitFor(() => reader.packets.filter(p => p.cmd === 'publish').length >= COUNT, { timeout: 20_000 })
    await sleep(100)
    const after = reader.packets.slice(1)
    t.equal(after[0]?.cmd, 'suback', 'the SUBACK comes first')
    const publishes = after.filter((p): p is mqtt.IPublishPacket => p.cmd === 'publish')
    t.equal(publishes.length, COUNT, 'each retained message once')
    t.same(publishes.map(p => p.topic), storeOrder, 'in the store\'s order, as aedes sends them')
    t.ok(publishes.every(p => p.retain && p.qos === 0 && String(p.payload) === `m${Number(p.topic.slice(3))}`), '[MQTT-3.8.4-8] RETAIN set, at QoS 0, each its own payload')
    t.ok(reader.chunks - before < COUNT / 10, `gathered: ${reader.chunks - before} socket reads for ${COUNT} messages`)
  })

  await t.test('a QoS 0 subscriber that does not read for a while loses nothing (back-pressure)', async (t) => {
    const reader = await rawReader(t, port, 'rs-slow')
    reader.socket.pause()
    subscribe(reader, 'rs/#', 0)
    await sleep(300)
    reader.socket.resume()
    await waitFor(() => reader.packets.filter(p => p.cmd === 'publish').length >= COUNT, { timeout: 20_000 })
    const publishes = reader.packets.filter((p): p is mqtt.IPublishPacket => p.cmd === 'publish')
    t.same(publishes.map(p => p.topic), storeOrder, 'all of them, in order')
  })
})
