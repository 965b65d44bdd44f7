/**
 * lib/protocol/flows/connect.ts against a stub connection (no sockets): the
 * verdicts on a CONNECT, what the connection learns from it, the gate that
 * holds the packets behind it, and the CONNACK bytes the client gets.
 */
import t from 'tap'
import mqtt, { type IConnackPacket, type IConnectPacket, type Packet } from 'mqtt-packet'
import type { Client } from 'aedes'
import type { AuthStep } from '../../../lib/protocol/auth.js'
import { frameOf, type Frame } from '../../../lib/protocol/frame.js'
import { ConnackGate } from '../../../lib/protocol/inbound/connack-gate.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { AuthState } from '../../../lib/protocol/flows/auth.js'
import {
  brokerWroteConnack, connackWritten, fitConnackToClient, onConnack, onConnect, type ConnectHost, type ConnectSettings
} from '../../../lib/protocol/flows/connect.js'
import { connectPacket, silentConnectionLog, testAuthenticators } from '../../helpers/flow-host.js'
import { parsePacket } from '../../helpers/packet-bytes.js'

interface Stub extends ConnectHost {
  written: Buffer[]
  refused: number[]
  acceptedOn: Array<[string, number]>
  limits: Array<[number, number]>
  queued: number
  dropped: number
  resumed: number
  closed: string[]
}

interface StubOptions {
  settings?: Partial<ConnectSettings>
  admit?: (connect: IConnectPacket) => number | undefined
  steps?: AuthStep[]
  member?: boolean
  subscriptions?: Record<string, { qos: number, si?: number }>
}

const SETTINGS: ConnectSettings = {
  maximumQoS: 2,
  retainAvailable: true,
  maxTopicLength: 65535,
  maxTopicLevels: 128,
  validatePayloadFormat: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifierAvailable: true,
  sharedSubscriptionAvailable: true
}

function stub (o: StubOptions = {}): Stub {
  const client = { id: 'assigned', subscriptions: o.subscriptions ?? {}, deliver0: () => {}, deliverQoS: () => {} } as unknown as Client
  const steps = [...(o.steps ?? [{ kind: 'success', data: Buffer.from('server-final') }])]
  const host: Stub = {
    client,
    meta: { transport: 'tcp', remoteAddress: '127.0.0.1' },
    settings: { ...SETTINGS, ...o.settings },
    ctx: {
      observer: {
        connectRefused: (code) => { host.refused.push(code) },
        clientAccepted: (transport, version) => { host.acceptedOn.push([transport, version]) }
      },
      policy: { admit: (_conn, connect) => o.admit?.(connect) },
      shared: { isMember: () => o.member === true },
      authenticators: testAuthenticators(steps)
    },
    log: silentConnectionLog(),
    version: undefined,
    connectSeen: false,
    connackSent: false,
    accepted: false,
    connectClientId: undefined,
    username: undefined,
    authenticatedAs: undefined,
    cleanStart: true,
    requestProblemInformation: true,
    connectSessionExpiry: 0,
    clientMaximumPacketSize: 0,
    sessionExisted: false,
    usesSubscriptionIds: false,
    deliveriesRouted: false,
    takeLiveQoS0: () => false,
    gate: ConnackGate.Open,
    brokerConnacked: false,
    authState: undefined,
    enhancedAuth: undefined,
    clientLimits (receiveMaximum, topicAliasMaximum) { host.limits.push([receiveMaximum, topicAliasMaximum]) },
    expectQueuedMessages () { host.queued++ },
    dropHeldFrames () { host.dropped++ },
    resumeHeldFrames () { host.resumed++ },
    writeToClient (buf) { host.written.push(buf) },
    sendPacket (packet: Packet) { host.written.push(mqtt.generate(packet, { protocolVersion: 5 })) },
    close (reason) { host.closed.push(reason) },
    written: [],
    refused: [],
    acceptedOn: [],
    limits: [],
    queued: 0,
    dropped: 0,
    resumed: 0,
    closed: []
  }
  return host
}

type ConnectFields = Partial<Omit<IConnectPacket, 'cmd'>>

const connect = (fields: ConnectFields = {}): Frame => frameOf(mqtt.generate(connectPacket(fields)))

const connack = (fields: Partial<IConnackPacket> = {}, version: 4 | 5 = 5): Frame =>
  frameOf(mqtt.generate({ cmd: 'connack', sessionPresent: false, ...(version === 5 ? { reasonCode: 0 } : { returnCode: 0 }), ...fields } as IConnackPacket, { protocolVersion: version }))

function decodeConnack (buf: Buffer, version: 4 | 5 = 5): IConnackPacket {
  const packet = parsePacket(buf, version)
  if (packet.cmd !== 'connack') throw new Error('no CONNACK')
  return packet
}

t.test('a CONNECT goes to aedes; the connection learns the client from it', async (t) => {
  const h = stub()
  const verdict = onConnect(h, connect({
    username: 'u',
    properties: { receiveMaximum: 10, topicAliasMaximum: 5, maximumPacketSize: 2048, requestProblemInformation: false, sessionExpiryInterval: 60 }
  }))
  t.match(verdict, { kind: 'replace', packets: [{ cmd: 'connect', clientId: 'c1' }] })
  t.equal(h.version, 5)
  t.equal(h.connectClientId, 'c1')
  t.equal(h.username, 'u')
  t.same(h.limits, [[10, 5]])
  t.equal(h.clientMaximumPacketSize, 2048)
  t.equal(h.requestProblemInformation, false)
  t.equal(h.connectSessionExpiry, 60)
  t.equal(h.deliveriesRouted, false, 'a clean start has no subscriptions to route yet')
})

t.test('spec 3.1.2.11.3: an absent Receive Maximum is 65,535; a 3.1.1 client states none', async (t) => {
  const h = stub()
  onConnect(h, connect())
  t.same(h.limits, [[65535, 0]])
  const v4 = stub()
  onConnect(v4, connect({ protocolVersion: 4 }))
  t.same(v4.limits, [], 'the 3.1.1 window is the broker\'s')
  t.equal(v4.version, 4)
})

t.test('[MQTT-3.2.0-1] [MQTT-3.1.4-6] packets after a CONNECT wait for its CONNACK', async (t) => {
  const h = stub()
  onConnect(h, connect())
  t.equal(h.gate, ConnackGate.Waiting)
})

t.test('[MQTT-3.1.0-2] a second CONNECT is a Protocol Error', async (t) => {
  const h = stub()
  onConnect(h, connect())
  t.match(onConnect(h, connect()), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('[MQTT-3.1.2-1] a protocol name other than MQTT closes without CONNACK', async (t) => {
  const h = stub()
  t.match(onConnect(h, connect({ protocolId: 'MQTX' } as unknown as ConnectFields)), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  t.same(h.written, [])
})

t.test('[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, or 0x84 for level 5 under another name', async (t) => {
  const h = stub()
  const frame = connect({ protocolVersion: 4 })
  frame.buf[frame.headerLength + 6] = 6
  t.match(onConnect(h, frame), { kind: 'close', reasonCode: ReasonCode.UnsupportedProtocolVersion })
  t.same(h.written, [Buffer.from([0x20, 0x02, 0x00, 0x01])])
  t.ok(h.connackSent)
  t.same(h.refused, [ReasonCode.UnsupportedProtocolVersion])
  const v5 = stub()
  onConnect(v5, connect({ protocolId: 'MQIsdp', protocolVersion: 5 } as ConnectFields))
  t.same(v5.written, [Buffer.from([0x20, 0x03, 0x00, 0x84, 0x00])])
})

t.test('MQTT 3.1 has no empty Client Identifier: 0x85', async (t) => {
  const h = stub()
  // MQIsdp, level 3, Clean Session, keep-alive 30, an empty Client Identifier
  const frame = frameOf(Buffer.from([0x10, 14, 0, 6, ...Buffer.from('MQIsdp'), 3, 0x02, 0, 30, 0, 0]))
  t.match(onConnect(h, frame), { kind: 'close', reasonCode: ReasonCode.ClientIdentifierNotValid })
  t.equal(h.version, 3)
})

t.test('admission refuses with its reason code', async (t) => {
  const h = stub({ admit: () => ReasonCode.ServerBusy })
  t.match(onConnect(h, connect()), { kind: 'close', reasonCode: ReasonCode.ServerBusy, reason: /0x89/ })
})

t.test('Will checks: topic limits 0x90, [MQTT-3.2.2-12] QoS 0x9B, [MQTT-3.2.2-13] retain 0x9A, payload format 0x99', async (t) => {
  const will = (w: Partial<NonNullable<IConnectPacket['will']>>): ConnectFields => ({ will: { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false, ...w } })
  t.match(onConnect(stub({ settings: { maxTopicLevels: 2 } }), connect(will({ topic: 'a/b/c' }))), { kind: 'close', reasonCode: ReasonCode.TopicNameInvalid })
  t.match(onConnect(stub({ settings: { maximumQoS: 1 } }), connect(will({ qos: 2 }))), { kind: 'close', reasonCode: ReasonCode.QoSNotSupported })
  t.match(onConnect(stub({ settings: { retainAvailable: false } }), connect(will({ retain: true }))), { kind: 'close', reasonCode: ReasonCode.RetainNotSupported })
  const notUtf8 = will({ payload: Buffer.from([0xff, 0xfe]), properties: { payloadFormatIndicator: true } })
  t.match(onConnect(stub(), connect(notUtf8)), { kind: 'close', reasonCode: ReasonCode.PayloadFormatInvalid })
  t.match(onConnect(stub({ settings: { validatePayloadFormat: false } }), connect(notUtf8)), { kind: 'replace' }, 'not checked when validation is off')
  t.match(onConnect(stub({ settings: { maximumQoS: 1 } }), connect(will({ qos: 1 }))), { kind: 'replace' })
})

t.test('a resumed session routes QoS 0 deliveries before aedes restores its subscriptions', async (t) => {
  const h = stub()
  onConnect(h, connect({ clean: false }))
  t.equal(h.cleanStart, false)
  t.ok(h.deliveriesRouted)
})

t.test('spec 4.12: an Authentication Method starts the exchange; aedes gets the CONNECT without it once it succeeds', async (t) => {
  const h = stub()
  const verdict = onConnect(h, connect({ properties: { authenticationMethod: 'TEST', authenticationData: Buffer.from('client-first') } }))
  t.equal(h.gate, ConnackGate.WaitingAuth, 'only AUTH until CONNACK [MQTT-3.1.2-30]')
  if (verdict.kind !== 'defer') { t.fail('deferred'); return }
  const decided = await verdict.decision
  t.equal(decided.kind, 'replace')
  const packet = (decided.kind === 'replace' ? decided.packets[0] : undefined) as IConnectPacket
  t.equal(packet.properties?.authenticationMethod, undefined)
  t.equal(packet.properties?.authenticationData, undefined)
  t.same(h.enhancedAuth, { method: 'TEST', username: undefined })
})

t.test('[MQTT-4.12.0-1] an unknown Authentication Method: 0x8C', async (t) => {
  t.match(onConnect(stub(), connect({ properties: { authenticationMethod: 'NOPE' } })), { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod })
})

t.test('the gate: refused, the held frames are dropped; accepted, they go on once aedes wrote the CONNACK too', async (t) => {
  const refused = stub()
  refused.gate = ConnackGate.Waiting
  connackWritten(refused, false)
  t.equal(refused.gate, ConnackGate.Refused)
  t.equal(refused.dropped, 1)

  const socketFirst = stub()
  socketFirst.gate = ConnackGate.WaitingAuth
  socketFirst.connackSent = socketFirst.accepted = true
  connackWritten(socketFirst, true)
  t.equal(socketFirst.gate, ConnackGate.Waiting, 'an AUTH exchange is over: held until aedes counts the client')
  t.equal(socketFirst.resumed, 0)
  brokerWroteConnack(socketFirst)
  t.equal(socketFirst.gate, ConnackGate.Open)
  t.equal(socketFirst.resumed, 1)

  const brokerFirst = stub()
  brokerFirst.gate = ConnackGate.Waiting
  brokerWroteConnack(brokerFirst)
  t.equal(brokerFirst.gate, ConnackGate.Waiting, 'the CONNACK is not out yet')
  brokerFirst.connackSent = brokerFirst.accepted = true
  connackWritten(brokerFirst, true)
  t.equal(brokerFirst.gate, ConnackGate.Open)
  t.equal(brokerFirst.resumed, 1)
  brokerWroteConnack(brokerFirst)
  t.equal(brokerFirst.resumed, 1, 'opened once')
})

t.test('a refused CONNACK is counted; [MQTT-3.2.2-6] a 3.1.1 return code over 5 becomes 3', async (t) => {
  const h = stub()
  h.version = 5
  const frame = connack({ reasonCode: ReasonCode.NotAuthorized })
  t.equal(onConnack(h, frame), frame.buf)
  t.notOk(h.accepted)
  t.ok(h.connackSent)
  t.same(h.refused, [ReasonCode.NotAuthorized])
  const v4 = stub()
  v4.version = 4
  const six = Buffer.from([0x20, 0x02, 0x00, 0x06])
  t.same(onConnack(v4, frameOf(six)), Buffer.from([0x20, 0x02, 0x00, 0x03]))
  t.same(v4.refused, [ReasonCode.ServerUnavailable], 'counted under its MQTT 5 code')
})

t.test('[MQTT-3.2.2-9] an accepted MQTT 5 CONNACK states culex\'s capabilities', async (t) => {
  const h = stub({ settings: { maximumQoS: 1, retainAvailable: false, wildcardSubscriptionAvailable: false, subscriptionIdentifierAvailable: false, sharedSubscriptionAvailable: false } })
  h.version = 5
  h.connectClientId = 'c1'
  const sent = decodeConnack(onConnack(h, connack({ properties: { topicAliasMaximum: 10 } })))
  t.ok(h.accepted)
  t.match(sent.properties, {
    topicAliasMaximum: 10,
    maximumQoS: 1,
    retainAvailable: false,
    wildcardSubscriptionAvailable: false,
    subscriptionIdentifiersAvailable: false,
    sharedSubscriptionAvailable: false
  })
  t.same(h.acceptedOn, [['tcp', 5]])
  t.equal(h.queued, 0, 'no session present: nothing queued')
})

t.test('connections with the same settings share one rewritten CONNACK', async (t) => {
  const settings = { ...SETTINGS, maximumQoS: 1 as const }
  const a = stub()
  const b = stub()
  Object.assign(a, { settings, version: 5, connectClientId: 'x' })
  Object.assign(b, { settings, version: 5, connectClientId: 'x' })
  const first = onConnack(a, connack())
  t.equal(onConnack(b, connack()), first)
})

t.test('[MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present for a resumed session the store or a shared group holds', async (t) => {
  const stored = stub()
  Object.assign(stored, { version: 5, cleanStart: false, sessionExisted: true, connectClientId: 'c1' })
  t.equal(decodeConnack(onConnack(stored, connack())).sessionPresent, true)
  t.equal(stored.queued, 1, 'its queued messages are expected next')
  const member = stub({ member: true })
  Object.assign(member, { version: 4, cleanStart: false, connectClientId: 'c1' })
  t.equal(decodeConnack(onConnack(member, connack({}, 4)), 4).sessionPresent, true)
  const fresh = stub()
  Object.assign(fresh, { version: 5, cleanStart: true, sessionExisted: true, connectClientId: 'c1' })
  t.equal(decodeConnack(onConnack(fresh, connack())).sessionPresent, false, 'Clean Start: never present')
})

t.test('a resumed session with Subscription Identifiers marks the connection', async (t) => {
  const h = stub({ subscriptions: { a: { qos: 1, si: 3 } } })
  Object.assign(h, { version: 5, connectClientId: 'c1' })
  onConnack(h, connack())
  t.ok(h.usesSubscriptionIds)
})

t.test('spec 3.2.2.3.17: the CONNACK of an enhanced authentication carries its method and data, once', async (t) => {
  const h = stub()
  Object.assign(h, { version: 5, connectClientId: 'c1', enhancedAuth: { method: 'TEST', username: 'u' }, authState: new AuthState(undefined, Buffer.from('server-final')) })
  const sent = decodeConnack(onConnack(h, connack()))
  t.equal(sent.properties?.authenticationMethod, 'TEST')
  t.same(sent.properties?.authenticationData, Buffer.from('server-final'))
  t.equal(h.authState, undefined, 'the exchange\'s state ends with its CONNACK')
})

t.test('[MQTT-3.1.2-24] a CONNACK too large for the client: made smaller, or not sent and the connection closed', async (t) => {
  const big = mqtt.generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: { reasonString: 'x'.repeat(100), maximumQoS: 1 } }, { protocolVersion: 5 })
  const h = stub()
  t.equal(fitConnackToClient(h, big), big, 'no limit')
  h.clientMaximumPacketSize = 20
  const smaller = fitConnackToClient(h, big)
  t.ok(smaller.length <= 20)
  t.equal(decodeConnack(smaller).properties?.reasonString, undefined, '[MQTT-3.2.2-19] the Reason String goes first')
  h.clientMaximumPacketSize = 3
  t.equal(fitConnackToClient(h, big).length, 0)
  t.same(h.closed, [], 'not closed from inside the write')
  await new Promise(resolve => process.nextTick(resolve))
  t.match(h.closed, [/Maximum Packet Size/])
})
