/**
 * The client's bytes, in order, to aedes (the inbound pipeline):
 *
 * 1. [MQTT-3.1.0-1] the first packet must be CONNECT: judged on the first
 *    byte, so bytes that are not MQTT are refused without waiting for more;
 * 2. the bytes are split into frames (frame.ts): a malformed one is 0x81, one
 *    over culex's Maximum Packet Size is DISCONNECT 0x95 [MQTT-3.2.2-15];
 * 3. [MQTT-3.1.2-22] a packet from the client restarts its keep-alive,
 *    whichever path answers it;
 * 4. between CONNECT and CONNACK the frames wait, are dropped or refused
 *    (inbound/connack-gate.ts); past `MAX_HELD_BEFORE_CONNACK` waiting the
 *    socket is paused;
 * 5. each frame gets its flow's verdict (`checkFrame`, one flow per packet
 *    type); a deferred verdict holds the frames behind it;
 * 6. the packets go to aedes; past `MAX_IN_PROGRESS` unfinished ones the
 *    socket is paused until aedes catches up (back-pressure to the client).
 */
import type { Client } from 'aedes'
import type { Packet } from 'mqtt-packet'
import { injectPacket, packetsInProgress, publishQoS0, refreshKeepAlive } from '../../aedes-internals.js'
import type { ProtocolVersion } from '../codec.js'
import { decodeOther } from '../decode.js'
import { PacketType, type Frame, type FrameReader, type ReadResult } from '../frame.js'
import { checkAckFrame } from '../inbound/ack.js'
import { ConnackGate, MAX_HELD_BEFORE_CONNACK, gateDecision, type ConnackGateState } from '../inbound/connack-gate.js'
import { ReasonCode } from '../reason-codes.js'
import { onClientPuback, onClientPubrec, onClientPubrel, type AcksHost } from './acks.js'
import { onAuth, type AuthHost } from './auth.js'
import { onConnect, type ConnectHost } from './connect.js'
import { onDisconnect, type DisconnectHost } from './disconnect.js'
import { onPublish, onRetainedPublish, type PublishInHost } from './publish-in.js'
import { onSubscribeInOrder, onUnsubscribe, type SubscribeHost } from './subscribe.js'

/** the frames of a connection with none pending, shared: never pushed to (`host.pending` is replaced first) */
export const NO_FRAMES: Frame[] = Object.freeze([]) as unknown as Frame[]
import { PASS, type Verdict } from './verdict.js'

/** packets aedes may have in progress before the socket is paused */
export const MAX_IN_PROGRESS = 256

export interface InboundHost {
  readonly client: Client
  readonly side: { readonly destroyed: boolean }
  readonly socket: { pause (): unknown, resume (): unknown }
  readonly settings: { readonly maximumPacketSize: number }
  readonly log: { error (obj: object, msg?: string): void }
  /** splits the client's bytes into frames */
  readonly inbound: FrameReader
  readonly version: ProtocolVersion | undefined
  readonly isClosed: boolean
  readonly connectSeen: boolean
  readonly gate: ConnackGateState
  /** frames read and not yet checked, from `pendingHead` on; `NO_FRAMES` when there are none */
  pending: Frame[]
  pendingHead: number
  /** an asynchronous decision is awaited: the frames behind it wait */
  deferred: boolean
  /** the socket is paused while frames wait for the CONNACK */
  heldPaused: boolean
  /** the socket is paused while aedes catches up */
  socketPaused: boolean
  /** the verdict of the frame's flow (`checkFrame`) */
  check (frame: Frame): Verdict
  fail (reasonCode: number, reason: string): void
}

/** Steps 1-4: bytes from the socket. */
export function fromClient (host: InboundHost, chunk: Buffer): void {
  if (host.isClosed) return
  if (!host.connectSeen && host.inbound.buffered === 0 && chunk.length > 0 && chunk[0] !== 0x10) {
    host.fail(ReasonCode.ProtocolError, 'first packet is not CONNECT')
    return
  }
  const results: ReadResult[] = []
  host.inbound.push(chunk, results)
  if (results.length > 0) refreshKeepAlive(host.client)
  for (const result of results) {
    if (result.kind === 'malformed') {
      processInbound(host)
      host.fail(ReasonCode.MalformedPacket, result.reason)
      return
    }
    if (result.kind === 'too-large') {
      processInbound(host)
      // [MQTT-3.2.2-15] [MQTT-4.13.1-1] DISCONNECT 0x95, then close
      host.fail(ReasonCode.PacketTooLarge, `packet of ${result.size} bytes exceeds the maximum of ${host.settings.maximumPacketSize}`)
      return
    }
    if (host.pending === NO_FRAMES) host.pending = [result.frame]
    else host.pending.push(result.frame)
  }
  processInbound(host)
  if (!host.heldPaused && host.gate === ConnackGate.Waiting && host.pending.length - host.pendingHead > MAX_HELD_BEFORE_CONNACK) {
    host.heldPaused = true
    host.socket.pause()
  }
}

/** Steps 4-6: the frames received, in order, stopping at a deferred decision. */
export function processInbound (host: InboundHost): void {
  if (host.deferred) return
  const forward: Packet[] = []
  while (host.pendingHead < host.pending.length && !host.isClosed) {
    const frame = host.pending[host.pendingHead] as Frame
    const gate = gateDecision(host.gate, frame.type)
    if (gate === 'hold') break
    host.pendingHead++
    if (gate === 'drop') continue
    let verdict: Verdict
    try {
      verdict = gate === 'protocol-error'
        // [MQTT-3.1.2-30] during enhanced authentication, only AUTH or DISCONNECT until CONNACK (spec 4.12)
        ? { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'packet other than AUTH during authentication' }
        : host.check(frame)
    } catch (err) {
      // whatever a client sends, it ends at most its own connection
      verdict = { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `undecodable packet: ${(err as Error).message}` }
    }
    if (verdict.kind === 'defer') {
      flushToBroker(host, forward)
      forward.length = 0
      host.deferred = true
      verdict.decision.then((decided) => {
        host.deferred = false
        if (host.isClosed) return
        if (apply(host, decided, frame, forward)) flushToBroker(host, forward)
        processInbound(host)
      }, (err: unknown) => {
        host.deferred = false
        // the detail is for the log; the client (a CONNACK's Reason String) is told no more than this
        host.log.error({ err }, 'deciding on a packet failed')
        host.fail(ReasonCode.UnspecifiedError, 'internal error')
      })
      return
    }
    if (!apply(host, verdict, frame, forward)) return
  }
  if (host.pendingHead >= host.pending.length) {
    // an idle connection keeps no array: a new one per chunk read costs less than one per connection held
    host.pending = NO_FRAMES
    host.pendingHead = 0
  }
  flushToBroker(host, forward)
}

/** Applies a verdict; false when the connection was closed. */
function apply (host: InboundHost, verdict: Verdict, frame: Frame, forward: Packet[]): boolean {
  switch (verdict.kind) {
    case 'pass': {
      const packet = decodeOther(frame, host.version)
      if (packet instanceof Error) return closeWith(host, forward, ReasonCode.MalformedPacket, packet.message)
      forward.push(packet)
      return true
    }
    case 'replace': for (const p of verdict.packets) forward.push(p); return true
    case 'drop': return true
    case 'close': return closeWith(host, forward, verdict.reasonCode, verdict.reason)
    case 'defer':
      throw new Error('a deferred decision cannot defer again')
  }
}

/** What was decided before the failure still goes to aedes, in order; false. */
function closeWith (host: InboundHost, forward: Packet[], reasonCode: number, reason: string): false {
  flushToBroker(host, forward)
  forward.length = 0
  host.fail(reasonCode, reason)
  return false
}

/** Step 6 (aedes-internals.ts `injectPacket`). */
function flushToBroker (host: InboundHost, packets: Packet[]): void {
  if (packets.length === 0 || host.side.destroyed) return
  // a plain QoS 0 PUBLISH skips aedes' per-packet handling (aedes-internals.ts `publishQoS0`)
  for (const p of packets) if (!publishQoS0(host.client, p)) injectPacket(host.client, p)
  if (!host.socketPaused && packetsInProgress(host.client) > MAX_IN_PROGRESS) {
    host.socketPaused = true
    host.socket.pause()
  }
}

/** aedes finished a packet (aedes-internals.ts `pacePackets`): the socket reads again once it caught up. */
export function packetDone (host: InboundHost): void {
  if (host.socketPaused && packetsInProgress(host.client) <= MAX_IN_PROGRESS / 2) {
    host.socketPaused = false
    if (!host.heldPaused) host.socket.resume()
  }
}

/** A refused CONNECT: the frames held behind it are never checked (inbound/connack-gate.ts). */
export function dropHeldFrames (host: InboundHost): void {
  host.pending = NO_FRAMES
  host.pendingHead = 0
}

/** The CONNACK is out: the frames held behind the CONNECT are checked from the next tick, in order. */
export function resumeHeldFrames (host: InboundHost): void {
  if (host.heldPaused) {
    host.heldPaused = false
    if (!host.socketPaused) host.socket.resume()
  }
  if (host.pendingHead < host.pending.length) process.nextTick(processInbound, host)
}

/** The gateway with every flow's host interface. */
export type FlowsHost = ConnectHost & AuthHost & PublishInHost & AcksHost & SubscribeHost & DisconnectHost
type Check = (host: FlowsHost, frame: Frame) => Verdict

/** One flow per packet type from the client; the others (PINGREQ) go to aedes as they are. */
const CHECKS: ReadonlyArray<Check | undefined> = (() => {
  const checks: Array<Check | undefined> = []
  checks[PacketType.CONNECT] = onConnect
  checks[PacketType.PUBLISH] = (host, frame) => (frame.flags & 0x01) === 0 ? onPublish(host, frame) : onRetainedPublish(host, frame)
  checks[PacketType.PUBACK] = onClientPuback
  checks[PacketType.PUBREC] = onClientPubrec
  checks[PacketType.PUBREL] = onClientPubrel
  checks[PacketType.PUBCOMP] = onClientPuback
  checks[PacketType.SUBSCRIBE] = onSubscribeInOrder
  checks[PacketType.UNSUBSCRIBE] = onUnsubscribe
  checks[PacketType.DISCONNECT] = onDisconnect
  checks[PacketType.AUTH] = onAuth
  return checks
})()

/** Step 5: the checks every frame gets, then its flow's. */
export function checkFrame (host: FlowsHost, frame: Frame): Verdict {
  if (!host.connectSeen && frame.type !== PacketType.CONNECT) {
    // [MQTT-3.1.0-1] the first packet must be CONNECT
    return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'first packet is not CONNECT' }
  }
  if (frame.type >= PacketType.PUBACK && frame.type <= PacketType.PUBCOMP) {
    // spec 3.4-3.7: a whole, well-formed acknowledgement before it changes any state
    const bad = checkAckFrame(frame, host.version)
    if (bad !== undefined) return { kind: 'close', reasonCode: bad.reasonCode, reason: bad.reason }
  }
  const check = CHECKS[frame.type]
  return check === undefined ? PASS : check(host, frame)
}
