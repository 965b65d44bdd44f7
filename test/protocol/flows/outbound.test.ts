/**
 * lib/protocol/flows/outbound.ts against a stub connection: what aedes
 * writes goes through the flow of its packet type to the client's socket.
 * The flows themselves have their own tests (publish-out, acks, connect,
 * subscribe); these are the ones the dispatch does in passing.
 */
import t from 'tap'
import type { Packet } from 'mqtt-packet'
import { encode } from '../../../lib/protocol/codec.js'
import { FrameReader } from '../../../lib/protocol/frame.js'
import { fromBroker, type OutboundHost } from '../../../lib/protocol/flows/outbound.js'
import { OutboundFlow } from '../../../lib/protocol/outbound/flow-control.js'
import { StubHost, publishFrame } from '../../helpers/flow-host.js'

class OutboundStub extends StubHost {
  readonly outbound = new FrameReader(0)
  disconnectSent = false
  disconnectBy: 'client' | 'server' | undefined
  disconnectReason: number | undefined
}

const write = (host: OutboundStub, ...packets: Packet[]): boolean =>
  fromBroker(host as unknown as OutboundHost, packets.map(p => encode(p, 5)), 42)

t.test('a packet with no flow of its own (PINGRESP) is written as aedes wrote it, pieces joined', async (t) => {
  const host = new OutboundStub()
  const buf = encode({ cmd: 'pingresp' }, 5)
  t.equal(fromBroker(host as unknown as OutboundHost, [buf.subarray(0, 1), buf.subarray(1)], 42), true)
  t.match(await host.received(), [{ cmd: 'pingresp' }])
  t.equal(host.writtenAt, 42)
})

t.test('spec 4.3.3: a PUBREL releases its message from the window and goes out', async (t) => {
  const host = new OutboundStub()
  host.window.admit({ frame: publishFrame({ topic: 't', qos: 2, messageId: 5 }), qos: 2, packetId: 5 })
  write(host, { cmd: 'pubrel', messageId: 5 })
  t.equal(host.window.flowOf(5), OutboundFlow.QoS2Released, 'PUBCOMP completes it now')
  t.match(await host.received(), [{ cmd: 'pubrel', messageId: 5 }])
  t.same(host.toAedes, [])
})

t.test('the PUBREL of a QoS 2 message culex dropped is not sent: culex completes it with aedes', async (t) => {
  const host = new OutboundStub()
  host.droppedQoS2 = new Set([6])
  write(host, { cmd: 'pubrel', messageId: 6 })
  t.same(await host.received(), [])
  t.same(host.toAedes, [{ cmd: 'pubcomp', messageId: 6 }])
  t.equal(host.droppedQoS2.size, 0)
})

t.test('spec 4.9: the PUBCOMP of the client\'s QoS 2 message frees its packet id', async (t) => {
  const host = new OutboundStub()
  host.inflightIn.set(7, { qos: 2, topic: 't' })
  write(host, { cmd: 'pubcomp', messageId: 7 })
  t.equal(host.inflightIn.get(7), undefined)
  t.match(await host.received(), [{ cmd: 'pubcomp', messageId: 7 }])
})

t.test('a DISCONNECT from aedes is recorded as the server\'s; a client\'s DISCONNECT recorded first stays', async (t) => {
  const host = new OutboundStub()
  write(host, { cmd: 'disconnect', reasonCode: 0x8d })
  t.same([host.disconnectSent, host.disconnectBy, host.disconnectReason], [true, 'server', 0x8d])
  const other = new OutboundStub()
  other.disconnectBy = 'client'
  other.disconnectReason = 0
  write(other, { cmd: 'disconnect', reasonCode: 0x8d })
  t.same([other.disconnectBy, other.disconnectReason], ['client', 0])
})

t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a packet over the client\'s Maximum Packet Size loses its Reason String, else is not sent', async (t) => {
  const host = new OutboundStub()
  host.clientMaximumPacketSize = 8
  write(host, { cmd: 'disconnect', reasonCode: 0x8d, properties: { reasonString: 'a long reason string' } })
  const got = await host.received()
  t.match(got, [{ cmd: 'disconnect', reasonCode: 0x8d }])
  t.equal((got[0] as { properties?: { reasonString?: string } }).properties?.reasonString, undefined)
})

t.test('a closed connection takes no more bytes', async (t) => {
  const host = new OutboundStub()
  Object.assign(host, { isClosed: true })
  t.equal(write(host, { cmd: 'pingresp' }), true)
  t.same(host.writes, [])
})
