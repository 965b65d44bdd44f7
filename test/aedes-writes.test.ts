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
