/**
 * lib/protocol/flows/disconnect.ts against a stub connection: the verdict on
 * a client's DISCONNECT, what it records, the reason codes of the
 * server's DISCONNECT and the server's last word (`sendFinal`).
 */
import t from 'tap'
import mqtt, { type IDisconnectPacket, type Packet } from 'mqtt-packet'
import { frameOf } from '../../../lib/protocol/frame.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { classifyBrokerError, disconnectReasonCode, onDisconnect, sendFinal, type DisconnectHost, type ServerDisconnectHost } from '../../../lib/protocol/flows/disconnect.js'

const host = (version: 4 | 5, connectSessionExpiry = 0): DisconnectHost => ({
  version,
  connectSessionExpiry,
  disconnectBy: undefined,
  disconnectReason: undefined
})

const disconnect = (packet: Omit<IDisconnectPacket, 'cmd'>, version: 4 | 5 = 5) =>
  frameOf(mqtt.generate({ cmd: 'disconnect', ...packet }, { protocolVersion: version }))

t.test('a DISCONNECT 0x00 passes to aedes and is recorded as the client\'s', async (t) => {
  const h = host(5)
  t.same(onDisconnect(h, disconnect({ reasonCode: 0 })), { kind: 'pass' })
  t.equal(h.disconnectBy, 'client')
  t.equal(h.disconnectReason, 0)
})

t.test('a 3.1.1 DISCONNECT (no reason byte) records 0x00', async (t) => {
  const h = host(4)
  t.same(onDisconnect(h, disconnect({}, 4)), { kind: 'pass' })
  t.equal(h.disconnectReason, 0)
})

t.test('[MQTT-3.14.4-3] [MQTT-3.1.2-8] a reason other than 0x00 reaches aedes as 0x04, so the Will is kept', async (t) => {
  const h = host(5)
  const verdict = onDisconnect(h, disconnect({ reasonCode: ReasonCode.UnspecifiedError }))
  t.equal(verdict.kind, 'replace')
  if (verdict.kind !== 'replace') return
  t.match(verdict.packets, [{ cmd: 'disconnect', reasonCode: ReasonCode.DisconnectWithWill }])
  t.equal(h.disconnectReason, ReasonCode.UnspecifiedError, 'the client\'s own reason is what is recorded')
  t.same(onDisconnect(host(5), disconnect({ reasonCode: ReasonCode.DisconnectWithWill })), { kind: 'pass' }, '0x04 passes as it is')
})

t.test('[MQTT-3.14.2-2] a Session Expiry Interval after a CONNECT with 0 is a Protocol Error', async (t) => {
  const h = host(5, 0)
  const verdict = onDisconnect(h, disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 60 } }))
  t.match(verdict, { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  t.equal(h.disconnectBy, undefined, 'nothing recorded for a refused DISCONNECT')
  t.same(onDisconnect(host(5, 30), disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 60 } })), { kind: 'pass' }, 'allowed after a CONNECT with an expiry')
})

t.test('a repeated DISCONNECT property is a Protocol Error (spec 2.2.2.2)', async (t) => {
  // Reason String twice
  const body = Buffer.from([0x00, 0x0a, 0x1f, 0x00, 0x02, 0x61, 0x62, 0x1f, 0x00, 0x02, 0x63, 0x64])
  const verdict = onDisconnect(host(5), frameOf(Buffer.concat([Buffer.from([0xe0, body.length]), body])))
  t.match(verdict, { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('[MQTT-3.14.2-1] CONNACK-only reason codes are mapped for a DISCONNECT', async (t) => {
  t.equal(disconnectReasonCode(ReasonCode.BadUserNameOrPassword), ReasonCode.NotAuthorized)
  t.equal(disconnectReasonCode(ReasonCode.BadAuthenticationMethod), ReasonCode.NotAuthorized)
  t.equal(disconnectReasonCode(ReasonCode.Banned), ReasonCode.NotAuthorized)
  t.equal(disconnectReasonCode(ReasonCode.ClientIdentifierNotValid), ReasonCode.UnspecifiedError)
  t.equal(disconnectReasonCode(ReasonCode.PacketIdentifierNotFound), ReasonCode.UnspecifiedError)
  t.equal(disconnectReasonCode(ReasonCode.ServerShuttingDown), ReasonCode.ServerShuttingDown, 'a DISCONNECT code stays')
  t.equal(disconnectReasonCode(ReasonCode.MessageRateTooHigh), ReasonCode.MessageRateTooHigh)
})

t.test('[MQTT-3.1.2-22] aedes\' errors are told as their reason codes (spec 3.14.2.1)', async (t) => {
  t.equal(classifyBrokerError(new Error('keep alive timeout')), ReasonCode.KeepAliveTimeout)
  t.equal(classifyBrokerError(new Error('packet too large')), ReasonCode.PacketTooLarge)
  t.equal(classifyBrokerError(new Error('connect did not arrive in time')), ReasonCode.MaximumConnectTime)
  t.equal(classifyBrokerError(new Error('Client queue limit reached')), ReasonCode.QuotaExceeded)
  t.equal(classifyBrokerError(new Error('topic not allowed here')), ReasonCode.ProtocolError)
  t.equal(classifyBrokerError(new Error('Invalid header flag bits')), ReasonCode.MalformedPacket)
  t.equal(classifyBrokerError(new Error('Packet too short')), ReasonCode.MalformedPacket)
  t.equal(classifyBrokerError(new Error('store exploded')), ReasonCode.UnspecifiedError)
})

interface FinalStub extends ServerDisconnectHost { readonly sent: Packet[], readonly refused: number[] }

function finalHost (version: 4 | 5, o: { accepted?: boolean, connackSent?: boolean } = {}): FinalStub {
  const sent: Packet[] = []
  const refused: number[] = []
  return {
    ...host(version),
    connectSeen: true,
    accepted: o.accepted ?? false,
    connackSent: o.connackSent ?? o.accepted ?? false,
    disconnectSent: false,
    ctx: { observer: { connectRefused: (code: number) => { refused.push(code) } } },
    sendPacket: (packet: Packet) => { sent.push(packet) },
    sent,
    refused
  }
}

t.test('[MQTT-4.13.1-1] [MQTT-3.14.2-1] an accepted MQTT 5 client gets one DISCONNECT, CONNACK-only codes mapped', async (t) => {
  const h = finalHost(5, { accepted: true })
  sendFinal(h, ReasonCode.BadUserNameOrPassword, 'bad')
  sendFinal(h, ReasonCode.ServerShuttingDown)
  t.same(h.sent, [{ cmd: 'disconnect', reasonCode: ReasonCode.NotAuthorized }], 'only the first')
  t.same([h.disconnectBy, h.disconnectReason], ['server', ReasonCode.NotAuthorized])
})

t.test('spec 4.13.2: an MQTT 5 client waiting for CONNACK gets a CONNACK with the reason, counted as a refusal', async (t) => {
  const h = finalHost(5)
  sendFinal(h, ReasonCode.ProtocolError, 'first packet is not CONNECT')
  t.same(h.sent, [{ cmd: 'connack', sessionPresent: false, reasonCode: ReasonCode.ProtocolError, properties: { reasonString: 'first packet is not CONNECT' } }])
  t.same(h.refused, [ReasonCode.ProtocolError])
  t.equal(h.connackSent, true)
  const plain = finalHost(5)
  sendFinal(plain, ReasonCode.ServerShuttingDown)
  t.same(plain.sent, [{ cmd: 'connack', sessionPresent: false, reasonCode: ReasonCode.ServerShuttingDown }], 'no Reason String when there is none')
})

t.test('[MQTT-3.1.4-1] 3.1.1: a non-conforming CONNECT is closed without CONNACK; other refusals get a return code', async (t) => {
  const malformed = finalHost(4)
  sendFinal(malformed, ReasonCode.MalformedPacket)
  t.same(malformed.sent, [])
  t.same(malformed.refused, [ReasonCode.MalformedPacket], 'still counted')
  const denied = finalHost(4)
  sendFinal(denied, ReasonCode.NotAuthorized)
  t.same(denied.sent, [{ cmd: 'connack', sessionPresent: false, returnCode: 5 }])
})

t.test('3.1.1 after CONNACK, or a connection before CONNECT, is closed without a packet', async (t) => {
  const accepted = finalHost(4, { accepted: true })
  sendFinal(accepted, ReasonCode.ServerShuttingDown)
  t.same(accepted.sent, [])
  const early = { ...finalHost(5), connectSeen: false }
  sendFinal(early, ReasonCode.ProtocolError)
  t.same(early.sent, [])
})
