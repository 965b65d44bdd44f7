/**
 * aedes writes every packet through mqtt-packet's writeToStream, looked up
 * at each write (lib/aedes-internals.ts `offerWritesToStreams`): a stream
 * with `writePacket` is offered each packet first. Fails loudly if aedes
 * stops writing that way.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Duplex, PassThrough } from 'node:stream'
import { Aedes } from 'aedes'
import mqtt from 'mqtt-packet'
import { AliasTable, handleStream, injectPacket, pacePackets } from '../lib/aedes-internals.js'

const require = createRequire(import.meta.url)

t.test('aedes writes with mqtt.writeToStream(packet, client.conn, opts), looked up on mqtt-packet\'s exports', async (t) => {
  const writeSource = readFileSync(require.resolve('aedes').replace(/aedes\.js$/, 'lib/write.js'), 'utf8')
  t.match(writeSource, "import mqtt from 'mqtt-packet'", 'aedes imports mqtt-packet\'s exports object')
  t.match(writeSource, 'mqtt.writeToStream(packet, client.conn, WRITE_OPTS[version])', 'and calls writeToStream on it for every write')
})

t.test('a stream with writePacket is offered what aedes writes; one without, and packets it leaves, get mqtt-packet\'s writeToStream', async (t) => {
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const offered: Array<{ cmd: string, version: number }> = []
  const chunks: Buffer[] = []
  const stream = Object.assign(new Duplex({ read () {}, write (chunk: Buffer, _enc, cb) { chunks.push(chunk); cb() } }), {
    writePacket (packet: object, version: number): boolean | undefined {
      const cmd = (packet as { cmd: string }).cmd
      offered.push({ cmd, version })
      return cmd === 'connack' ? undefined : true
    }
  })
  t.teardown(() => { stream.destroy() })
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => { broker.once('clientReady', () => resolve()) })
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'w', keepalive: 0, length: 0 })
  await ready
  injectPacket(client, { cmd: 'publish', topic: 'x', payload: Buffer.from('p'), qos: 1, dup: false, retain: false, messageId: 9, length: 0 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(offered, [{ cmd: 'connack', version: 5 }, { cmd: 'puback', version: 5 }], 'the CONNACK and the PUBACK were offered to the stream, with the client\'s version')
  const written = Buffer.concat(chunks)
  t.equal((written[0] as number) >> 4, 2, 'the CONNACK, left, was written by mqtt-packet')
  t.equal(written.length, (written[1] as number) + 2, 'and nothing else: the stream took the PUBACK')
  const other = new PassThrough()
  const otherChunks: Buffer[] = []
  other.on('data', (chunk: Buffer) => otherChunks.push(chunk))
  t.equal(mqtt.writeToStream({ cmd: 'puback', messageId: 1 }, other), true, 'a stream without writePacket')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(Buffer.concat(otherChunks), Buffer.from([0x40, 2, 0, 1]), 'gets mqtt-packet\'s bytes')
  const cacheNumbers = mqtt.writeToStream.cacheNumbers
  mqtt.writeToStream.cacheNumbers = !cacheNumbers
  t.equal(mqtt.writeToStream.cacheNumbers, !cacheNumbers, 'MQTT.js\' cacheNumbers switch reaches mqtt-packet')
  mqtt.writeToStream.cacheNumbers = cacheNumbers
})

t.test('[MQTT-4.3.2-4] aedes\' deliverQoS records no packet id for a message with RETAIN 1 and sends retained messages at SUBSCRIBE with brokerId null: a live retained message to a persistent session still gets RETAIN 1 and is cleared by its PUBACK (keepRetainAsPublished)', async (t) => {
  const dir = require.resolve('aedes').replace(/aedes\.js$/, 'lib/')
  const clientSource = readFileSync(dir + 'client.js', 'utf8')
  t.match(clientSource, /if \(that\.clean \|\| packet\.retain\) \{\s*doWriteQoS\(\)\s*\} else \{\s*broker\.persistence\.outgoingUpdate\(that, packet\)/, 'deliverQoS skips outgoingUpdate for RETAIN 1')
  t.match(readFileSync(dir + 'handlers/subscribe.js', 'utf8'), /newPacket\.brokerId = null\s*client\.deliverQoS\(newPacket, cb\)/, 'retained messages at SUBSCRIBE have brokerId null')
  const broker = await Aedes.createBroker()
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())))
  const written: Array<{ payload: string, retain: boolean, messageId: number }> = []
  const stream = Object.assign(new Duplex({ read () {}, write (_chunk: Buffer, _enc, cb) { cb() } }), {
    writePacket (packet: object): boolean | undefined {
      const p = packet as { cmd: string, payload: Buffer, retain: boolean, messageId: number }
      if (p.cmd === 'publish') written.push({ payload: p.payload.toString(), retain: p.retain, messageId: p.messageId })
      return true
    }
  })
  t.teardown(() => { stream.destroy() })
  const publish = (payload: string): Promise<void> => new Promise<void>((resolve) => broker.publish({ cmd: 'publish', topic: 'r/1', payload: Buffer.from(payload), qos: 1, retain: true, dup: false }, () => resolve()))
  await publish('before')
  const client = handleStream(broker, stream, new AliasTable())
  pacePackets(client, { packetDone: () => {} })
  const ready = new Promise<void>((resolve) => { broker.once('clientReady', () => resolve()) })
  injectPacket(client, { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, clientId: 'rap', keepalive: 0, length: 0, properties: { sessionExpiryInterval: 300 } })
  await ready
  const subscribed = new Promise<void>((resolve) => broker.once('subscribe', () => resolve()))
  injectPacket(client, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r/#', qos: 1, rap: true }], length: 0 })
  await subscribed
  await publish('live')
  const sent = async (): Promise<void> => { while (written.length < 2) await new Promise((resolve) => setTimeout(resolve, 10)) }
  await sent()
  t.same(written.map((w) => `${w.payload} r${w.retain ? 1 : 0}`), ['before r1', 'live r1'], 'the retained message at SUBSCRIBE and the live one, both with RETAIN 1 [MQTT-3.3.1-8] [MQTT-3.3.1-12]')
  const persistence = (broker as unknown as { persistence: { outgoingStream: (c: unknown) => AsyncIterable<unknown> } }).persistence
  const queued = async (): Promise<number> => { let n = 0; for await (const _ of persistence.outgoingStream(client)) n++; return n }
  t.equal(await queued(), 1, 'the live one is queued for the session (the one at SUBSCRIBE never is)')
  for (const w of written) injectPacket(client, { cmd: 'puback', messageId: w.messageId, length: 0 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await queued(), 0, 'its PUBACK cleared it')
})
