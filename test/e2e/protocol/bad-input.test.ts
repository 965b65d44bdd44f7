/**
 * Bad input gets a clear answer and the broker keeps serving everyone else.
 * A well-behaved client stays connected through every case and still
 * round-trips a message at the end.
 */
import t from 'tap'
import mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'

t.test('bad input', async (t) => {
  const server = await startTestServer(t, { maximumPacketSize: 1024 })
  const port = tcpPort(server)
  const good = await connectClient(t, tcpUrl(server), { protocolVersion: 5, clientId: 'good' })
  const goodMessages = collect(good)
  await good.subscribeAsync('good/#', { qos: 1 })
  let disconnectsOfGood = 0
  good.on('disconnect', () => { disconnectsOfGood++ })
  good.on('close', () => { disconnectsOfGood++ })

  await t.test('raw bytes that are not MQTT close the connection', async (t) => {
    const c = await RawClient.open(port)
    c.sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await c.waitClose()
    t.equal(c.packets.length, 0, 'nothing is answered to non-MQTT bytes')
  })

  await t.test('[MQTT-3.1.2-1] a wrong protocol name closes the connection without CONNACK', async (t) => {
    const c = await RawClient.open(port)
    const bytes = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 10 })
    bytes.write('MQTX', 4, 'latin1')
    c.sendRaw(bytes)
    await c.waitClose()
    t.equal(c.packets.length, 0)
  })

  await t.test('[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01 and a close', async (t) => {
    const c = await RawClient.open(port, 4)
    const bytes = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 10 })
    bytes[8] = 6 // the Protocol Level byte
    c.sendRaw(bytes)
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.returnCode, 1, 'unacceptable protocol version')
    await c.waitClose()
  })

  for (const version of [4, 5] as const) {
    await t.test(`[MQTT-3.1.0-2] a second CONNECT is a protocol error (v${version})`, async (t) => {
      const c = await RawClient.connect(port, version)
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'again', clean: true, keepalive: 10 })
      if (version === 5) {
        const d = await c.next('disconnect') as mqtt.IDisconnectPacket
        t.equal(d.reasonCode, ReasonCode.ProtocolError, 'DISCONNECT 0x82')
      }
      await c.waitClose()
    })

    await t.test(`[MQTT-3.2.2-15] a packet over the maximum size is refused (v${version})`, async (t) => {
      const c = await RawClient.connect(port, version)
      c.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(4000), qos: 0, retain: false, dup: false })
      if (version === 5) {
        const d = await c.next('disconnect') as mqtt.IDisconnectPacket
        t.equal(d.reasonCode, ReasonCode.PacketTooLarge, 'DISCONNECT 0x95')
      }
      await c.waitClose()
    })

    await t.test(`[MQTT-3.3.1-4] a PUBLISH with QoS 3 is malformed (v${version})`, async (t) => {
      const c = await RawClient.connect(port, version)
      const bytes = mqtt.generate({ cmd: 'publish', topic: 'q3', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, { protocolVersion: version })
      bytes[0] = (bytes[0] as number) | 0x06
      c.sendRaw(bytes)
      if (version === 5) {
        const d = await c.next('disconnect') as mqtt.IDisconnectPacket
        t.equal(d.reasonCode, ReasonCode.MalformedPacket, 'DISCONNECT 0x81')
      }
      await c.waitClose()
    })
  }

  await t.test('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async (t) => {
    const c = await RawClient.open(port, 4)
    c.send({ cmd: 'pingreq' })
    await c.waitClose()
    t.equal(c.packets.length, 0)
  })

  await t.test('[MQTT-1.5.5-1] a Remaining Length over four bytes is malformed', async (t) => {
    const c = await RawClient.connect(port, 5)
    c.sendRaw(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.MalformedPacket)
    await c.waitClose()
  })

  await t.test('the well-behaved client kept working throughout', async (t) => {
    t.equal(disconnectsOfGood, 0, 'never disconnected')
    t.ok(good.connected)
    await good.publishAsync('good/after', 'still here', { qos: 1 })
    const [m] = await goodMessages.next(1)
    t.equal(m?.payload.toString(), 'still here')
  })
})
