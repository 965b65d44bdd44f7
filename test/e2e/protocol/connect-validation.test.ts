/**
 * CONNECT and DISCONNECT the way no client library would send them: repeated
 * properties, forbidden values, ill-formed UTF-8, fields the Connect Flags do
 * not announce. Each case asserts the exact answer (CONNACK or DISCONNECT
 * reason code, or a close without CONNACK) and that the broker, running in
 * this process, keeps serving: an uncaught exception in aedes (the remote
 * crash of issue 13) fails the whole file.
 *
 * Implemented in lib/protocol/inbound/connect-rules.ts, property-rules.ts,
 * inbound/disconnect-auth.ts, flows/connect.ts (onConnect, fitConnackToClient),
 * flows/disconnect.ts (onDisconnect, sendFinal).
 */
import t, { type Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { expectServerClose, rawClient, rawConnect, rawPublish, rawSubscribe, text, uniqueId } from '../../helpers/raw5.js'
import { connectBytes, packet, prop, properties, str, type ConnectBytes } from '../../helpers/packet-bytes.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'

const SESSION_EXPIRY = 0x11
const RECEIVE_MAXIMUM = 0x21
const MAXIMUM_PACKET_SIZE = 0x27
const TOPIC_ALIAS_MAXIMUM = 0x22
const REQUEST_PROBLEM = 0x17
const REQUEST_RESPONSE = 0x19
const USER_PROPERTY = 0x26
const AUTH_METHOD = 0x15
const AUTH_DATA = 0x16
const REASON_STRING = 0x1f

/** ill-formed or forbidden UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2] */
const BAD_UTF8: ReadonlyArray<readonly [string, Buffer]> = [
  ['U+0000', Buffer.from([0x61, 0x00, 0x62])],
  ['an overlong C0 80', Buffer.from([0x61, 0xc0, 0x80])],
  ['a surrogate ED A0 80', Buffer.from([0xed, 0xa0, 0x80])],
  ['a stray FF', Buffer.from([0xff])]
]

t.test('CONNECT, DISCONNECT: invalid input is answered and the broker survives', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const good = await connectClient(t, tcpUrl(server), { protocolVersion: 5, clientId: uniqueId('good') })
  const goodMessages = collect(good)
  await good.subscribeAsync('good/#', { qos: 1 })
  let goodDropped = 0
  good.on('close', () => { goodDropped++ })

  /** A new client round-trips a QoS 1 message: the broker is alive and serving. */
  async function served (t: Test): Promise<void> {
    const c = await rawClient(t, port, 5)
    const topic = `served/${uniqueId('x')}`
    await rawSubscribe(c, [{ topic, qos: 1 }])
    rawPublish(c, topic, 'alive', { qos: 1 })
    await c.next('puback')
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'alive', 'another client is served afterwards')
    c.destroy()
  }

  /** Sends raw CONNECT bytes; returns the client, the CONNACK if one came, after the close. */
  async function refused (t: Test, bytes: Buffer, version: 3 | 4 | 5 = 5): Promise<{ c: RawClient, connack: mqtt.IConnackPacket | undefined }> {
    const c = await RawClient.open(port, version)
    t.teardown(() => c.destroy())
    c.sendRaw(bytes)
    await c.waitClose()
    const connack = c.packets.find(p => p.cmd === 'connack') as mqtt.IConnackPacket | undefined
    return { c, connack }
  }

  async function expectConnack (t: Test, bytes: Buffer, code: number): Promise<void> {
    const { connack, c } = await refused(t, bytes)
    t.equal(connack?.reasonCode, code, `CONNACK 0x${code.toString(16)}`)
    t.equal(c.packets.length, 1, 'nothing but the CONNACK')
    await served(t)
  }

  async function expectNoConnack (t: Test, bytes: Buffer, version: 3 | 4): Promise<void> {
    const { c } = await refused(t, bytes, version)
    t.same(c.packets.map(p => p.cmd), [], 'closed without CONNACK')
    await served(t)
  }

  // Item 1: a property that may appear once, twice (spec 2.2.2.2)

  await t.test('spec 2.2.2.2: Session Expiry Interval twice in CONNECT -> CONNACK 0x82, and the process survives the close', async (t) => {
    await expectConnack(t, connectBytes({ properties: properties(prop.four(SESSION_EXPIRY, 10), prop.four(SESSION_EXPIRY, 20)) }), ReasonCode.ProtocolError)
  })

  await t.test('spec 2.2.2.2: Session Expiry Interval 0 then 10 is refused too (mqtt-packet would keep the 10)', async (t) => {
    await expectConnack(t, connectBytes({ properties: properties(prop.four(SESSION_EXPIRY, 0), prop.four(SESSION_EXPIRY, 10)) }), ReasonCode.ProtocolError)
  })

  const connectTwice: ReadonlyArray<readonly [string, Buffer]> = [
    ['Receive Maximum', prop.two(RECEIVE_MAXIMUM, 10)],
    ['Maximum Packet Size', prop.four(MAXIMUM_PACKET_SIZE, 1000)],
    ['Topic Alias Maximum', prop.two(TOPIC_ALIAS_MAXIMUM, 5)],
    ['Request Problem Information', prop.byte(REQUEST_PROBLEM, 1)],
    ['Request Response Information', prop.byte(REQUEST_RESPONSE, 1)],
    ['Authentication Method', prop.string(AUTH_METHOD, 'm')]
  ]
  for (const [name, p] of connectTwice) {
    await t.test(`spec 3.1.2.11: ${name} twice in CONNECT -> CONNACK 0x82`, async (t) => {
      await expectConnack(t, connectBytes({ properties: properties(p, p) }), ReasonCode.ProtocolError)
    })
  }

  const willTwice: ReadonlyArray<readonly [string, Buffer]> = [
    ['Will Delay Interval', prop.four(0x18, 5)],
    ['Payload Format Indicator', prop.byte(0x01, 1)],
    ['Message Expiry Interval', prop.four(0x02, 60)],
    ['Content Type', prop.string(0x03, 'text/plain')],
    ['Response Topic', prop.string(0x08, 'reply/here')],
    ['Correlation Data', prop.string(0x09, 'id')]
  ]
  for (const [name, p] of willTwice) {
    await t.test(`spec 3.1.3.2: ${name} twice in the Will Properties -> CONNACK 0x82, and the process survives the close`, async (t) => {
      await expectConnack(t, connectBytes({
        properties: properties(prop.four(SESSION_EXPIRY, 30)),
        will: { properties: properties(p, p), topic: 'will/topic', payload: 'gone' }
      }), ReasonCode.ProtocolError)
    })
  }

  await t.test('spec 3.1.2.11.8: User Property may repeat, in CONNECT and in the Will', async (t) => {
    const pair = prop.pair(USER_PROPERTY, 'k', 'v')
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    c.sendRaw(connectBytes({ properties: properties(pair, pair), will: { properties: properties(pair, pair), topic: 'will/t', payload: 'x' } }))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, ReasonCode.Success, 'accepted')
  })

  await t.test('spec 2.2.2.2: Session Expiry Interval twice in DISCONNECT -> DISCONNECT 0x82, and the process survives the close', async (t) => {
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    c.sendRaw(connectBytes({ properties: properties(prop.four(SESSION_EXPIRY, 30)) }))
    t.equal((await c.next('connack') as mqtt.IConnackPacket).reasonCode, ReasonCode.Success)
    c.sendRaw(packet(0xe0, Buffer.from([0x00]), properties(prop.four(SESSION_EXPIRY, 10), prop.four(SESSION_EXPIRY, 20))))
    await expectServerClose(t, c, 5, ReasonCode.ProtocolError)
    await served(t)
  })

  await t.test('spec 3.14.2.2.3: Reason String twice in DISCONNECT -> DISCONNECT 0x82', async (t) => {
    const c = await rawClient(t, port, 5)
    c.sendRaw(packet(0xe0, Buffer.from([0x00]), properties(prop.string(REASON_STRING, 'a'), prop.string(REASON_STRING, 'b'))))
    await expectServerClose(t, c, 5, ReasonCode.ProtocolError)
    await served(t)
  })

  // values that may never reach aedes

  const badValues: ReadonlyArray<readonly [string, Buffer]> = [
    ['spec 3.1.2.11.4: Maximum Packet Size 0', prop.four(MAXIMUM_PACKET_SIZE, 0)],
    ['spec 3.1.2.11.3: Receive Maximum 0', prop.two(RECEIVE_MAXIMUM, 0)],
    ['spec 3.1.2.11.7: Request Problem Information 2', prop.byte(REQUEST_PROBLEM, 2)],
    ['spec 3.1.2.11.6: Request Response Information 2', prop.byte(REQUEST_RESPONSE, 2)],
    ['spec 3.1.2.11.10: Authentication Data without an Authentication Method', prop.string(AUTH_DATA, 'x')]
  ]
  for (const [name, p] of badValues) {
    await t.test(`${name} -> CONNACK 0x82`, async (t) => {
      await expectConnack(t, connectBytes({ properties: properties(p) }), ReasonCode.ProtocolError)
    })
  }

  await t.test('spec 3.1.3.2.3: a Will Payload Format Indicator of 2 -> CONNACK 0x82', async (t) => {
    await expectConnack(t, connectBytes({ will: { properties: properties(prop.byte(0x01, 2)), topic: 'w', payload: 'x' } }), ReasonCode.ProtocolError)
  })

  await t.test('spec 3.1.3.2.3: a Will Payload Format Indicator of 1 with a payload that is not UTF-8 -> CONNACK 0x99', async (t) => {
    await expectConnack(t, connectBytes({ will: { properties: properties(prop.byte(0x01, 1)), topic: 'w', payload: Buffer.from([0xff, 0xfe]) } }), ReasonCode.PayloadFormatInvalid)
  })

  await t.test('spec 2.2.2.2: a property CONNECT may not carry (Topic Alias) -> CONNACK 0x81', async (t) => {
    await expectConnack(t, connectBytes({ properties: properties(prop.two(0x23, 1)) }), ReasonCode.MalformedPacket)
  })

  await t.test('[MQTT-3.1.2-12] Will QoS 3 is malformed -> CONNACK 0x81, not 0x9B', async (t) => {
    await expectConnack(t, connectBytes({ will: { topic: 'w', payload: 'x', qos: 3 } }), ReasonCode.MalformedPacket)
  })

  // Item 13: UTF-8 strings, empty Will Topic, fields and flags

  const v5Strings: ReadonlyArray<readonly [string, (bad: Buffer) => ConnectBytes]> = [
    ['[MQTT-3.1.3-4] the Client Identifier', bad => ({ clientId: bad })],
    ['the User Name', bad => ({ username: bad })],
    ['the Will Topic', bad => ({ will: { topic: Buffer.concat([Buffer.from('w/'), bad]), payload: 'x' } })],
    ['the Authentication Method', bad => ({ properties: properties(prop.string(AUTH_METHOD, bad)) })],
    ['a User Property name [MQTT-1.5.7-1]', bad => ({ properties: properties(prop.pair(USER_PROPERTY, bad, 'v')) })],
    ['a User Property value [MQTT-1.5.7-1]', bad => ({ properties: properties(prop.pair(USER_PROPERTY, 'k', bad)) })],
    ['the Will Content Type', bad => ({ will: { properties: properties(prop.string(0x03, bad)), topic: 'w', payload: 'x' } })],
    ['the Will Response Topic', bad => ({ will: { properties: properties(prop.string(0x08, bad)), topic: 'w', payload: 'x' } })]
  ]
  for (const [field, build] of v5Strings) {
    for (const [what, bad] of BAD_UTF8) {
      await t.test(`[MQTT-1.5.4-1] [MQTT-1.5.4-2] ${what} in ${field} -> CONNACK 0x81 (v5)`, async (t) => {
        await expectConnack(t, connectBytes(build(bad)), ReasonCode.MalformedPacket)
      })
    }
  }

  const v4Strings: ReadonlyArray<readonly [string, (bad: Buffer) => ConnectBytes]> = [
    ['the Client Identifier', bad => ({ version: 4, clientId: bad })],
    ['the User Name', bad => ({ version: 4, username: bad })],
    ['the Will Topic', bad => ({ version: 4, will: { topic: bad, payload: 'x' } })]
  ]
  for (const [field, build] of v4Strings) {
    for (const [what, bad] of BAD_UTF8) {
      await t.test(`3.1.1 [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-3.1.4-1] ${what} in ${field} -> closed without CONNACK`, async (t) => {
        await expectNoConnack(t, connectBytes(build(bad)), 4)
      })
    }
  }

  await t.test('[MQTT-4.7.3-1] an empty Will Topic -> CONNACK 0x82 (v5)', async (t) => {
    await expectConnack(t, connectBytes({ will: { topic: '', payload: 'x' } }), ReasonCode.ProtocolError)
  })

  await t.test('3.1.1 [MQTT-4.7.3-1] [MQTT-3.1.4-1] an empty Will Topic -> closed without CONNACK', async (t) => {
    await expectNoConnack(t, connectBytes({ version: 4, will: { topic: '', payload: 'x' } }), 4)
  })

  for (const topic of ['a/#', 'a/+/b']) {
    await t.test(`[MQTT-3.3.2-2] a Will Topic with a wildcard (${topic}) -> CONNACK 0x82 (v5)`, async (t) => {
      await expectConnack(t, connectBytes({ will: { topic, payload: 'x' } }), ReasonCode.ProtocolError)
    })
    await t.test(`3.1.1 [MQTT-3.3.2-2] [MQTT-3.1.4-1] a Will Topic with a wildcard (${topic}) -> closed without CONNACK`, async (t) => {
      await expectNoConnack(t, connectBytes({ version: 4, will: { topic, payload: 'x' } }), 4)
    })
  }

  await t.test('[MQTT-3.3.2-14] a Will Response Topic with a wildcard -> CONNACK 0x82', async (t) => {
    await expectConnack(t, connectBytes({ will: { properties: properties(prop.string(0x08, 'reply/#')), topic: 'w', payload: 'x' } }), ReasonCode.ProtocolError)
  })

  const fields: ReadonlyArray<readonly [string, ConnectBytes]> = [
    ['[MQTT-3.1.2-16] User Name bytes with the User Name Flag clear', { flags: 0x02, trailing: Buffer.from([0x00, 0x01, 0x75]) }],
    ['[MQTT-3.1.2-18] Password bytes with the Password Flag clear', { username: 'u', flags: 0x82, trailing: Buffer.from([0x00, 0x01, 0x70]) }],
    ['[MQTT-3.1.2-17] the User Name Flag set with no User Name', { flags: 0x82 }],
    ['[MQTT-3.1.2-19] the Password Flag set with no Password', { username: 'u', flags: 0xc2 }]
  ]
  for (const [name, bytes] of fields) {
    await t.test(`${name} -> CONNACK 0x81 (v5)`, async (t) => {
      await expectConnack(t, connectBytes(bytes), ReasonCode.MalformedPacket)
    })
    await t.test(`3.1.1 [MQTT-3.1.4-1] ${name} -> closed without CONNACK`, async (t) => {
      await expectNoConnack(t, connectBytes({ ...bytes, version: 4 }), 4)
    })
  }

  await t.test('3.1.1 [MQTT-3.1.2-22] a Password without a User Name -> closed without CONNACK', async (t) => {
    await expectNoConnack(t, connectBytes({ version: 4, flags: 0x42, password: 'p' }), 4)
  })

  await t.test('MQTT 3.1 (MQIsdp): an empty Client Identifier -> CONNACK 2, identifier rejected', async (t) => {
    const { c, connack } = await refused(t, connectBytes({ version: 3, clientId: '' }), 3)
    t.equal(connack?.returnCode, 2, 'identifier rejected')
    t.equal(c.packets.length, 1, 'nothing but the CONNACK')
    await served(t)
  })

  const mismatched: ReadonlyArray<readonly [string, 3 | 4 | 5]> = [['MQTT', 3], ['MQIsdp', 4], ['MQIsdp', 5]]
  for (const [name, version] of mismatched) {
    const answer = version === 5 ? 'CONNACK 0x84 (Unsupported Protocol Version)' : 'CONNACK 1 (unacceptable protocol version)'
    await t.test(`[MQTT-3.1.2-1] [MQTT-3.1.2-2] Protocol Name ${name} at level ${version} -> ${answer} and a close${version === 5 ? '' : ', as mosquitto'}`, async (t) => {
      const { c, connack } = await refused(t, connectBytes({ version, protocolName: name, clientId: uniqueId('mismatch') }), version === 5 ? 5 : 4)
      if (version === 5) t.equal(connack?.reasonCode, ReasonCode.UnsupportedProtocolVersion, 'CONNACK 0x84')
      else t.equal(connack?.returnCode, 1, 'return code 1')
      t.equal(c.packets.length, 1, 'nothing but the CONNACK')
      await served(t)
    })
  }

  await t.test('MQTT 3.1 (MQIsdp): a PUBREL with DUP set is valid and completes the QoS 2 flow', async (t) => {
    const c = await RawClient.connect(port, 3, { clientId: 'mqisdp-dup' })
    t.teardown(() => c.destroy())
    c.send({ cmd: 'publish', topic: 'mqisdp/dup', payload: Buffer.from('x'), qos: 2, messageId: 7, retain: false, dup: false })
    const pubrec = await c.next('pubrec') as mqtt.IPubrecPacket
    t.equal(pubrec.messageId, 7)
    // PUBREL with DUP, QoS 1: 0110 1010
    c.sendRaw(Buffer.from([0x6a, 0x02, 0x00, 0x07]))
    const pubcomp = await c.next('pubcomp') as mqtt.IPubcompPacket
    t.equal(pubcomp.messageId, 7, 'PUBCOMP, the connection stays open')
    t.notOk(c.closed)
  })

  await t.test('MQTT 3.1 (MQIsdp): SUBSCRIBE and UNSUBSCRIBE with DUP set (flags 1010) are valid: SUBACK, UNSUBACK', async (t) => {
    const c = await RawClient.connect(port, 3, { clientId: 'mqisdp-dup-sub' })
    t.teardown(() => c.destroy())
    // SUBSCRIBE, DUP and QoS 1: 1000 1010; id 9, filter "mqisdp/sub", QoS 1
    c.sendRaw(packet(0x8a, [0x00, 0x09], str('mqisdp/sub'), [0x01]))
    const suback = await c.next('suback') as mqtt.ISubackPacket
    t.same([suback.messageId, suback.granted], [9, [1]], 'SUBACK')
    // UNSUBSCRIBE, DUP and QoS 1: 1010 1010
    c.sendRaw(packet(0xaa, [0x00, 0x0a], str('mqisdp/sub')))
    const unsuback = await c.next('unsuback') as mqtt.IUnsubackPacket
    t.equal(unsuback.messageId, 10, 'UNSUBACK')
    t.notOk(c.closed, 'the connection stays open')
  })

  for (const version of [4, 5] as const) {
    // MQTT 5 has an (empty) property block after the packet id
    const props: number[][] = version === 5 ? [[0x00]] : []
    const cases = [
      ['SUBSCRIBE', '3.8.1-1', packet(0x8a, [0x00, 0x09], ...props, str('dup/sub'), [0x01])],
      ['UNSUBSCRIBE', '3.10.1-1', packet(0xaa, [0x00, 0x0a], ...props, str('dup/sub'))]
    ] as const
    for (const [name, rule, bytes] of cases) {
      await t.test(`${version === 5 ? 'v5' : '3.1.1'} [MQTT-${rule}] ${name} with DUP set (flags 1010) is malformed: ${version === 5 ? 'DISCONNECT 0x81 and ' : ''}closed`, async (t) => {
        const c = await rawClient(t, port, version)
        c.sendRaw(bytes)
        await expectServerClose(t, c, version, ReasonCode.MalformedPacket)
      })
    }
  }

  // Item 16

  await t.test('[MQTT-3.14.2-2] Session Expiry Interval above 0 on DISCONNECT after a CONNECT with 0 -> DISCONNECT 0x82; the session does not persist', async (t) => {
    const clientId = uniqueId('sei')
    const c = await rawClient(t, port, 5, { clientId })
    await rawSubscribe(c, [{ topic: 'sei/#', qos: 1 }])
    c.sendRaw(packet(0xe0, Buffer.from([0x00]), properties(prop.four(SESSION_EXPIRY, 300))))
    await expectServerClose(t, c, 5, ReasonCode.ProtocolError)
    const { connack } = await rawConnect(t, port, 5, { clientId, clean: false })
    t.equal(connack.sessionPresent, false, 'no session was kept')
    await served(t)
  })

  await t.test('the well-behaved client was never dropped', async (t) => {
    t.equal(goodDropped, 0)
    await good.publishAsync('good/after', 'still here', { qos: 1 })
    const [m] = await goodMessages.next(1)
    t.equal(m?.payload.toString(), 'still here')
  })
})

t.test('a Will Topic over the topic limits is refused as a PUBLISH Topic Name over them is', async (t) => {
  const server = await startTestServer(t, { maxTopicLevels: 3, maxTopicLength: 20 })
  const port = tcpPort(server)
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['more levels than maxTopicLevels (3)', 'w/a/b/c'],
    ['longer than maxTopicLength (20 bytes)', 'w/' + 'x'.repeat(19)]
  ]
  for (const [name, topic] of cases) {
    await t.test(`a PUBLISH Topic Name ${name} gets PUBACK 0x90 (v5)`, async (t) => {
      const c = await rawClient(t, port, 5)
      const id = rawPublish(c, topic, 'x', { qos: 1 })
      const ack = await c.next('puback') as mqtt.IPubackPacket
      t.same([ack.messageId, ack.reasonCode], [id, ReasonCode.TopicNameInvalid])
    })
    await t.test(`a Will Topic ${name} -> CONNACK 0x90 (Topic Name invalid) (v5)`, async (t) => {
      const c = await RawClient.open(port, 5)
      t.teardown(() => c.destroy())
      c.sendRaw(connectBytes({ clientId: uniqueId('wl'), will: { topic, payload: 'gone' } }))
      const connack = await c.next('connack') as mqtt.IConnackPacket
      t.equal(connack.reasonCode, ReasonCode.TopicNameInvalid, 'CONNACK 0x90')
      await c.waitClose()
    })
    await t.test(`3.1.1: a Will Topic ${name} -> closed without CONNACK, as a PUBLISH Topic Name over them closes`, async (t) => {
      const c = await RawClient.open(port, 4)
      t.teardown(() => c.destroy())
      c.sendRaw(connectBytes({ version: 4, clientId: uniqueId('wl'), will: { topic, payload: 'gone' } }))
      await c.waitClose()
      t.same(c.packets.map(p => p.cmd), [], 'closed without CONNACK')
    })
  }
  await t.test('a Will Topic within the limits is accepted', async (t) => {
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    c.sendRaw(connectBytes({ clientId: uniqueId('wl'), will: { topic: 'w/a/b', payload: 'gone' } }))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, 0)
  })
})

t.test('[MQTT-3.1.2-24] a CONNACK never exceeds the client\'s Maximum Packet Size', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)

  await t.test('[MQTT-3.2.2-19] a refusal carries its Reason String when it fits', async (t) => {
    const { connack } = await rawConnect(t, port, 5, { properties: { authenticationMethod: 'no-such-method' } })
    t.equal(connack.reasonCode, ReasonCode.BadAuthenticationMethod, 'CONNACK 0x8C')
    t.match(connack.properties?.reasonString, /no-such-method/, 'with a Reason String')
  })

  await t.test('[MQTT-3.2.2-19] and loses it when the client\'s Maximum Packet Size is smaller', async (t) => {
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    const bytes: Buffer[] = []
    c.socket.on('data', (d: Buffer) => bytes.push(d))
    c.sendRaw(connectBytes({ properties: properties(prop.four(MAXIMUM_PACKET_SIZE, 16), prop.string(AUTH_METHOD, 'no-such-method')) }))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, ReasonCode.BadAuthenticationMethod, 'CONNACK 0x8C')
    t.equal(connack.properties?.reasonString, undefined, 'without the Reason String')
    await c.waitClose()
    t.ok(Buffer.concat(bytes).length <= 16, 'no more than 16 bytes sent')
  })

  await t.test('[MQTT-3.1.2-24] an accepted CONNACK is made to fit: what limits the client stays, what its absence says anyway goes', async (t) => {
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    const bytes: Buffer[] = []
    c.socket.on('data', (d: Buffer) => bytes.push(d))
    c.sendRaw(connectBytes({ properties: properties(prop.four(MAXIMUM_PACKET_SIZE, 16)) }))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, ReasonCode.Success, 'accepted')
    t.ok(Buffer.concat(bytes).length <= 16, `${Buffer.concat(bytes).length} bytes, no more than 16`)
    t.equal(connack.properties?.receiveMaximum, server.config.receiveMaximum, 'Receive Maximum kept')
    t.equal(connack.properties?.maximumPacketSize, server.config.maximumPacketSize, 'Maximum Packet Size kept')
    t.notOk(c.closed, 'the connection stays')
  })

  await t.test('[MQTT-3.1.2-24] an accepted CONNACK that cannot fit is not sent; the connection closes', async (t) => {
    const c = await RawClient.open(port, 5)
    t.teardown(() => c.destroy())
    const bytes: Buffer[] = []
    c.socket.on('data', (d: Buffer) => bytes.push(d))
    c.sendRaw(connectBytes({ properties: properties(prop.four(MAXIMUM_PACKET_SIZE, 8)) }))
    await c.waitClose()
    t.equal(Buffer.concat(bytes).length, 0, 'nothing over 8 bytes was sent')
    const ok = await rawClient(t, port, 5)
    t.notOk(ok.closed, 'the next client is accepted')
  })
})
