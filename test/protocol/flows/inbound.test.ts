/**
 * lib/protocol/flows/inbound.ts against a stub connection: the client's
 * bytes to frames, the CONNACK gate, verdicts in order (a deferred one holds
 * the frames behind it), packets to aedes and the socket's back-pressure.
 */
import t from 'tap'
import type { Client } from 'aedes'
import type { Packet } from 'mqtt-packet'
import { encode, type ProtocolVersion } from '../../../lib/protocol/codec.js'
import { FrameReader, PacketType, frameOf, type Frame } from '../../../lib/protocol/frame.js'
import { ConnackGate, MAX_HELD_BEFORE_CONNACK, type ConnackGateState } from '../../../lib/protocol/inbound/connack-gate.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { MAX_IN_PROGRESS, checkFrame, dropHeldFrames, fromClient, packetDone, resumeHeldFrames, type FlowsHost, type InboundHost } from '../../../lib/protocol/flows/inbound.js'
import { PASS, type Verdict } from '../../../lib/protocol/flows/verdict.js'
import { ackFrame } from '../../helpers/flow-host.js'
import { sleep } from '../../helpers/wait.js'

class InboundStub implements InboundHost {
  /** packets handed to aedes */
  readonly toAedes: Packet[] = []
  /** aedes' client as far as the pipeline reaches into it (aedes-internals.ts) */
  readonly aedesClient = { _parser: { emit: (_event: string, p: Packet) => { this.toAedes.push(p) } }, _parsingBatch: 0, _keepaliveInterval: 0 }
  readonly client = this.aedesClient as unknown as Client
  readonly side = { destroyed: false }
  paused = false
  readonly socket = { pause: () => { this.paused = true }, resume: () => { this.paused = false } }
  readonly settings = { maximumPacketSize: 64 }
  readonly errors: string[] = []
  readonly log = { error: (_obj: object, msg?: string) => { this.errors.push(msg ?? '') } }
  readonly inbound = new FrameReader(64)
  version: ProtocolVersion | undefined = 5
  isClosed = false
  connectSeen = true
  gate: ConnackGateState = ConnackGate.Open
  readonly pending: Frame[] = []
  pendingHead = 0
  deferred = false
  heldPaused = false
  socketPaused = false
  /** packet types checked, in order */
  readonly checked: number[] = []
  decide: (frame: Frame) => Verdict = () => PASS
  failed: { reasonCode: number, reason: string } | undefined

  check (frame: Frame): Verdict {
    this.checked.push(frame.type)
    return this.decide(frame)
  }

  fail (reasonCode: number, reason: string): void {
    this.failed ??= { reasonCode, reason }
    this.isClosed = true
  }
}

const bytes = (...packets: Packet[]): Buffer => Buffer.concat(packets.map(p => encode(p, 5)))
const ping: Packet = { cmd: 'pingreq' }
const sub = (messageId: number): Packet => ({ cmd: 'subscribe', messageId, subscriptions: [{ topic: 't', qos: 0 }] } as Packet)
const cmds = (host: InboundStub): string[] => host.toAedes.map(p => p.cmd)

t.test('[MQTT-3.1.0-1] bytes that do not start a CONNECT are refused at the first byte', async (t) => {
  const host = new InboundStub()
  host.connectSeen = false
  fromClient(host, Buffer.from([0xc0]))
  t.same(host.failed?.reasonCode, ReasonCode.ProtocolError)
  t.same(host.checked, [], 'nothing was checked')
})

t.test('frames are checked in order and go to aedes decoded, in one batch', async (t) => {
  const host = new InboundStub()
  fromClient(host, bytes(sub(1), ping, sub(2)))
  t.same(host.checked, [PacketType.SUBSCRIBE, PacketType.PINGREQ, PacketType.SUBSCRIBE])
  t.same(cmds(host), ['subscribe', 'pingreq', 'subscribe'])
  t.same(host.pending, [], 'nothing left over')
})

t.test('a frame split over two reads is checked once whole', async (t) => {
  const host = new InboundStub()
  const buf = bytes(sub(1))
  fromClient(host, buf.subarray(0, 3))
  t.same(host.checked, [])
  fromClient(host, buf.subarray(3))
  t.same(cmds(host), ['subscribe'])
})

t.test('verdicts: replace, drop, and close after the packets decided before it', async (t) => {
  const host = new InboundStub()
  const verdicts: Verdict[] = [
    { kind: 'replace', packets: [{ cmd: 'pingreq' }, { cmd: 'pingreq' }] },
    { kind: 'drop' },
    PASS,
    { kind: 'close', reasonCode: ReasonCode.QuotaExceeded, reason: 'no' }
  ]
  host.decide = () => verdicts.shift() ?? PASS
  fromClient(host, bytes(sub(1), sub(2), sub(3), sub(4), sub(5)))
  t.same(cmds(host), ['pingreq', 'pingreq', 'subscribe'])
  t.same(host.failed, { reasonCode: ReasonCode.QuotaExceeded, reason: 'no' })
  t.same(host.checked.length, 4, 'nothing after the close is checked')
})

t.test('a deferred verdict holds the frames behind it; they follow in order once decided', async (t) => {
  const host = new InboundStub()
  let decide: (v: Verdict) => void = () => {}
  host.decide = (frame) => frame.type === PacketType.SUBSCRIBE && host.checked.length === 2
    ? { kind: 'defer', decision: new Promise<Verdict>(resolve => { decide = resolve }) }
    : PASS
  fromClient(host, bytes(ping, sub(1), ping))
  t.same(cmds(host), ['pingreq'], 'what came before went on')
  fromClient(host, bytes(ping))
  t.same(host.checked.length, 2, 'later frames wait behind the decision')
  decide({ kind: 'replace', packets: [sub(9)] })
  await sleep(0)
  t.same(cmds(host), ['pingreq', 'subscribe', 'pingreq', 'pingreq'])
  t.equal((host.toAedes[1] as { messageId: number }).messageId, 9)
})

t.test('a decision that fails closes with 0x80, its detail only logged', async (t) => {
  const host = new InboundStub()
  host.decide = () => ({ kind: 'defer', decision: Promise.reject(new Error('store down')) })
  fromClient(host, bytes(ping))
  await sleep(0)
  t.same(host.failed, { reasonCode: ReasonCode.UnspecifiedError, reason: 'internal error' })
  t.same(host.errors, ['deciding on a packet failed'])
})

t.test('a check that throws ends the connection with 0x81, never the broker', async (t) => {
  const host = new InboundStub()
  host.decide = () => { throw new Error('bad bytes') }
  fromClient(host, bytes(ping))
  t.equal(host.failed?.reasonCode, ReasonCode.MalformedPacket)
  t.match(host.failed?.reason, /bad bytes/)
})

t.test('a malformed frame: the frames before it go to aedes, then 0x81', async (t) => {
  const host = new InboundStub()
  fromClient(host, Buffer.concat([bytes(ping), Buffer.from([0xc0, 0xff, 0xff, 0xff, 0xff])]))
  t.same(cmds(host), ['pingreq'])
  t.equal(host.failed?.reasonCode, ReasonCode.MalformedPacket)
})

t.test('[MQTT-3.2.2-15] a packet over culex\'s Maximum Packet Size is 0x95', async (t) => {
  const host = new InboundStub()
  fromClient(host, encode({ cmd: 'publish', topic: 't', payload: Buffer.alloc(100), qos: 0, retain: false, dup: false }, 5))
  t.equal(host.failed?.reasonCode, ReasonCode.PacketTooLarge)
  t.same(host.checked, [])
})

t.test('a PASS that does not decode is 0x81', async (t) => {
  const host = new InboundStub()
  fromClient(host, Buffer.from([0xc0, 0x01, 0x00]))
  t.equal(host.failed?.reasonCode, ReasonCode.MalformedPacket)
  t.same(host.toAedes, [])
})

t.test('before CONNACK the frames wait; past the limit the socket is paused; the CONNACK lets them on, in order', async (t) => {
  const host = new InboundStub()
  host.gate = ConnackGate.Waiting
  fromClient(host, bytes(...Array.from({ length: MAX_HELD_BEFORE_CONNACK }, () => ping)))
  t.same(host.checked, [])
  t.notOk(host.paused)
  fromClient(host, bytes(ping))
  t.ok(host.paused, 'what a client sends before it is accepted stays in its socket')
  host.gate = ConnackGate.Open
  resumeHeldFrames(host)
  t.notOk(host.paused)
  t.same(host.checked, [], 'checked from the next tick')
  await sleep(0)
  t.equal(host.toAedes.length, MAX_HELD_BEFORE_CONNACK + 1)
})

t.test('[MQTT-3.1.4-6] after a refused CONNECT the frames behind it are never checked', async (t) => {
  const host = new InboundStub()
  host.gate = ConnackGate.Waiting
  fromClient(host, bytes(sub(1), ping))
  host.gate = ConnackGate.Refused
  dropHeldFrames(host)
  resumeHeldFrames(host)
  fromClient(host, bytes(sub(2)))
  await sleep(0)
  t.same(host.checked, [])
  t.same(host.toAedes, [])
})

t.test('[MQTT-3.1.2-30] during enhanced authentication a packet other than AUTH or DISCONNECT is a Protocol Error', async (t) => {
  const host = new InboundStub()
  host.gate = ConnackGate.WaitingAuth
  fromClient(host, bytes({ cmd: 'auth', reasonCode: 0x18 } as Packet))
  t.same(host.checked, [PacketType.AUTH])
  fromClient(host, bytes(ping))
  t.equal(host.failed?.reasonCode, ReasonCode.ProtocolError)
})

t.test('past MAX_IN_PROGRESS packets in aedes the socket is paused, and reads again at half', async (t) => {
  const host = new InboundStub()
  host.aedesClient._parsingBatch = MAX_IN_PROGRESS + 1
  fromClient(host, bytes(ping))
  t.ok(host.paused)
  packetDone(host)
  t.ok(host.paused, 'aedes has not caught up')
  host.aedesClient._parsingBatch = MAX_IN_PROGRESS / 2
  packetDone(host)
  t.notOk(host.paused)
})

t.test('checkFrame: the checks every frame gets before its flow', async (t) => {
  const host = { connectSeen: false, version: 5 } as unknown as FlowsHost
  t.match(checkFrame(host, ackFrame('puback', 1)), { kind: 'close', reasonCode: ReasonCode.ProtocolError }, '[MQTT-3.1.0-1] CONNECT first')
  const connected = { connectSeen: true, version: 5 } as unknown as FlowsHost
  t.equal(checkFrame(connected, frameOf(Buffer.from([0x40, 0x01, 0x00]))).kind, 'close', 'spec 3.4: a malformed acknowledgement changes no state')
  t.same(checkFrame(connected, frameOf(Buffer.from([0xc0, 0x00]))), PASS, 'PINGREQ has no flow: aedes answers it')
})
