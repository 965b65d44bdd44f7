/**
 * The protocol gateway: one per network connection, between the transport
 * socket and aedes. aedes reads and writes a stream (`BrokerSide`,
 * broker-side.ts) that the gateway feeds; the gateway splits both byte
 * streams into frames (frame.ts), answers what aedes would get wrong or only
 * answer by closing the socket, and passes everything else through untouched.
 *
 *   socket --inbound frames--> [checks] --> BrokerSide --> aedes
 *   socket <--outbound frames-- [checks] <-- BrokerSide <-- aedes
 *
 * Per packet type, the flows follow the spec: CONNECT and its CONNACK
 * (3.1, 3.2: flows/connect.ts), AUTH (3.15, 4.12: flows/auth.ts), PUBLISH
 * both ways (3.3, 4.9 flow control, topic aliases, Maximum Packet Size),
 * the acknowledgements (3.4-3.7), SUBSCRIBE and UNSUBSCRIBE (3.8-3.11:
 * flows/subscribe.ts), DISCONNECT (3.14: flows/disconnect.ts). The
 * connection keeps the state; each flow module sees it through a small
 * host interface of its own.
 */
import type { Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { ConnectionLogger, type Logger } from '../logging.js'
import type { Packet } from 'mqtt-packet'
import { FrameReader, PacketType, ackPacketId, type Frame, type ReadResult } from './frame.js'
import { encode, type ProtocolVersion } from './codec.js'
import type { SubscribePolicy } from './inbound/subscribe.js'
import type { PublishPolicy } from './inbound/publish.js'
import { OutboundWindow } from './outbound/flow-control.js'
import { checkAckFrame } from './inbound/ack.js'
import { RetainedOrder } from './inbound/retained-order.js'
import { ConnackGate, MAX_HELD_BEFORE_CONNACK, gateDecision, type ConnackGateState } from './inbound/connack-gate.js'
import { PacketIdTable } from './packet-id-table.js'
import { OutboundAliases } from './outbound/topic-alias.js'
import { ReasonCode, describeReasonCode, v5ToV311ConnackCode } from './reason-codes.js'
import type { Authenticators } from './auth.js'
import { hardenClient, handleStream, pacePackets, injectPacket, packetsInProgress, refreshKeepAlive, AliasTable, type PacketPacer } from '../aedes-internals.js'
import type { QueueSink } from '../persistence/types.js'
import { BrokerSide, type BrokerSideOwner } from './broker-side.js'
import { decodeOther } from './decode.js'
import type { BrokerObserver } from '../observer.js'
import type { DirectSend, MemberLink, SharedDelivery, SharedSubscriptions } from '../shared/dispatcher.js'
import type { Transport } from './transport-kind.js'
import type { ConnectionPolicy } from '../auth/admission.js'
import { PASS, type Verdict } from './flows/verdict.js'
import { brokerWroteConnack, connackWritten, fitConnackToClient, onConnack, onConnect, type ConnectHost } from './flows/connect.js'
import { onAuth, type AuthState, type EnhancedAuthResult } from './flows/auth.js'
import { onSubscribeInOrder, onSuback, subscribesPending, onUnsuback, onUnsubscribe, type SubscribeHost, type SubscribeState } from './flows/subscribe.js'
import { classifyBrokerError, disconnectReasonCode, onDisconnect, type DisconnectHost } from './flows/disconnect.js'
import { onPublish, onRetainedPublish, type PublishInHost } from './flows/publish-in.js'
import { onClientPuback, onClientPubrec, onClientPubrel, onOutboundAck, onPublished as publishedAck, type AckFlow, type InboundFlow } from './flows/acks.js'
import { fitBuf, onOutboundPublish, shedHeld } from './flows/publish-out.js'
import { armQueueSink, disarmQueueSink, isRepeat, publishShared, queueSink, room, sealEncoded, sendEncoded, sendShared, type EncodeOnceState, type FastPathHost, type SinkPhase } from './flows/fast-paths.js'
import { afterBrokerWrite, endHold, flushAll, progress, resumeBroker, startResumedDrain, write, type OutboundMode, type Pressure } from './flows/client-writer.js'

export type { Transport }
export type { ConnectionPolicy }
export type { EnhancedAuthResult }

export interface ProtocolSettings extends SubscribePolicy, PublishPolicy {
  /** inbound limit, advertised in CONNACK; 0 = none */
  maximumPacketSize: number
  /** inbound QoS 1/2 window, advertised to v5 clients and enforced for every client (spec 4.9) */
  receiveMaximum: number
  /** outbound QoS 1/2 window for 3.1.1 clients, which cannot state one */
  inflightWindow: number
  /** messages held for a client whose window is full, before the oldest are dropped */
  maxQueuedOutbound: number
  /** assign outbound topic aliases within the client's Topic Alias Maximum */
  outboundTopicAliases: boolean
  /**
   * A client that falls behind slows aedes down (back-pressure, no loss) as
   * long as it makes progress; after this many ms without progress it no
   * longer does, and its queue limits apply instead, so a stuck client never
   * blocks publishers for longer.
   */
  slowConsumerTimeout: number
  /** bytes buffered for a client's socket beyond which QoS 0 messages to it are dropped, once it is stuck */
  maxOutboundBuffer: number
  sharedSubscriptionAvailable: boolean
}

export interface ConnectionContext {
  readonly broker: Aedes
  readonly settings: ProtocolSettings
  readonly logger: Logger
  readonly observer: BrokerObserver
  readonly authenticators: Authenticators
  /** does any subscription, online or offline, match `topic`? (for 0x10) */
  hasSubscribers (topic: string): boolean | Promise<boolean>
  /** does the store hold inbound QoS 2 state for this id (from an earlier connection)? */
  hasIncoming (clientId: string, packetId: number): Promise<boolean>
  /** shared subscriptions ($share), when enabled */
  readonly shared: SharedSubscriptions | undefined
  readonly policy: ConnectionPolicy
  /** called once the connection is closed on both sides */
  onClose (conn: Connection): void
}

export interface ConnectionMeta {
  transport: Transport
  remoteAddress: string | undefined
  /** CN of a verified TLS client certificate */
  certificateCN?: string | undefined
}

/** packets aedes may have in progress before the socket is paused */
const MAX_IN_PROGRESS = 256

/** The gateway of a socket (the socket listeners are shared functions, not closures per connection). */
const kConnection = Symbol('culex connection')
interface Tagged { [kConnection]: Connection }

export class Connection implements MemberLink, PacketPacer, BrokerSideOwner, ConnectHost, SubscribeHost, DisconnectHost, PublishInHost, FastPathHost {
  readonly client: Client
  readonly log: ConnectionLogger
  readonly side: BrokerSide
  private readonly inbound: FrameReader
  private readonly outbound = new FrameReader(0)
  readonly settings: ProtocolSettings

  version: ProtocolVersion | undefined
  /** the Client Identifier of the CONNECT (aedes may assign one: `client.id`) */
  connectClientId: string | undefined
  username: string | undefined
  connectSeen = false
  connackSent = false
  accepted = false
  private disconnectSent = false
  private closed = false
  private socketPaused = false
  /** reason code of the DISCONNECT that ended the connection, either side's (flows/disconnect.ts) */
  disconnectReason: number | undefined
  disconnectBy: 'client' | 'server' | undefined

  // what the client told us in CONNECT
  requestProblemInformation = true
  /** the CONNECT's Session Expiry Interval, for [MQTT-3.14.2-2] */
  connectSessionExpiry = 0
  clientMaximumPacketSize = 0

  // inbound
  private readonly pending: Frame[] = []
  private pendingHead = 0
  private deferred = false
  /** what happens to frames between CONNECT and CONNACK (inbound/connack-gate.ts) */
  gate: ConnackGateState = ConnackGate.Open
  /** the socket is paused while frames wait for the CONNACK */
  private heldPaused = false
  /** aedes finished writing the CONNACK ('connackSent') */
  brokerConnacked = false
  /** a retained PUBLISH and a SUBSCRIBE take effect in the client's order (made on the first retained PUBLISH) */
  retainedOrder: RetainedOrder | undefined
  // The maps and sets of the connection are made on first use (the getters
  // below): an idle connection carries none of them.
  private _inflightIn: PacketIdTable<InboundFlow> | undefined
  /** inbound QoS 1 and 2 packet ids not yet completed (spec 4.9) */
  get inflightIn (): PacketIdTable<InboundFlow> { return (this._inflightIn ??= new PacketIdTable()) }
  /** shared with aedes (`client._topicAliases`), which validates the aliases */
  readonly inboundAliases = new AliasTable()
  /** SUBSCRIBEs and UNSUBSCRIBEs in progress (flows/subscribe.ts), made at the first */
  subscribeState: SubscribeState | undefined
  cleanStart = true
  /** shared deliveries handed to aedes and not yet written */
  sharedUnseen = 0

  // outbound
  // the PUBLISH and acknowledgement flows' state (flows/publish-out.ts, flows/acks.ts), made on first use
  readonly window: OutboundWindow
  aliases: OutboundAliases | undefined
  direct: Set<number> | undefined
  droppedQoS2: Set<number> | undefined
  ackFlow: AckFlow | undefined
  // the write path and aedes' back-pressure (flows/client-writer.ts)
  outMode: OutboundMode = 'idle'
  outQueue: Buffer[] | undefined
  outQueueBytes = 0
  pressure: Pressure = 'flowing'
  stallTimer: NodeJS.Timeout | undefined
  // the fast paths (flows/fast-paths.ts)
  sinkPhase: SinkPhase = 'none'
  encodeOnce: EncodeOnceState | undefined
  /** when aedes wrote the chunks being processed */
  writtenAt = 0

  // enhanced authentication (spec 4.12)
  /** an exchange in progress (flows/auth.ts), made when it starts */
  authState: AuthState | undefined
  enhancedAuth: EnhancedAuthResult | undefined
  /** who the client authenticated as (user name, certificate CN, or SCRAM user) */
  authenticatedAs: string | undefined
  /** a session for the Client Identifier existed at CONNECT (session-claim.ts): Session Present when resumed */
  sessionExisted = false
  /** reason code of the DISCONNECT that ended the connection (either side), for lifecycle events */
  get disconnectReasonCode (): number | undefined { return this.disconnectReason }
  get disconnectedBy (): 'client' | 'server' | undefined { return this.disconnectBy }

  /** the client has subscribed with a Subscription Identifier (deliveries must look them up) */
  usesSubscriptionIds = false
  /** QoS 0 subscriptions may carry QoS 1/2 messages (flows/subscribe.ts `routeDeliveries`) */
  deliveriesRouted = false

  constructor (
    readonly socket: Duplex,
    readonly meta: ConnectionMeta,
    readonly ctx: ConnectionContext
  ) {
    this.settings = ctx.settings
    this.inbound = new FrameReader(ctx.settings.maximumPacketSize)
    this.window = new OutboundWindow(ctx.settings.inflightWindow, ctx.settings.maxQueuedOutbound)
    this.log = new ConnectionLogger(ctx.logger, meta)
    this.side = new BrokerSide(this)
    ctx.observer.connectionOpened(meta.transport)
    this.client = handleStream(ctx.broker, this.side, this.inboundAliases)
    hardenClient(this.client)
    pacePackets(this.client, this)

    ;(socket as unknown as Tagged)[kConnection] = this
    socket.on('data', Connection.onSocketData)
    socket.on('end', Connection.onSocketEnd)
    socket.on('close', Connection.onSocketClose)
    socket.on('error', Connection.onSocketError)
  }

  private static onSocketData (this: Tagged, chunk: Buffer): void {
    this[kConnection].fromClient(chunk)
  }

  private static onSocketEnd (this: Tagged): void {
    this[kConnection].close('connection closed by peer')
  }

  private static onSocketClose (this: Tagged): void {
    this[kConnection].close('connection closed')
  }

  private static onSocketError (this: Tagged, err: Error): void {
    const conn = this[kConnection]
    conn.log.debug({ err }, 'socket error')
    conn.close('socket error')
  }

  private static onSocketDrain (this: Tagged): void {
    progress(this[kConnection])
  }

  private static checkHeldInbound (conn: Connection): void {
    conn.processInbound()
  }

  /** The gateway whose stream aedes was given (aedes' `client.conn`), if it is one. */
  static ofStream (stream: unknown): Connection | undefined {
    return stream instanceof BrokerSide ? stream.owner as Connection : undefined
  }

  get isAccepted (): boolean { return this.accepted }

  get isClosed (): boolean { return this.closed }

  /** the CONNECT asked to resume a session (Clean Start 0; 3.1.1: clean session 0) */
  get resumesSession (): boolean { return !this.cleanStart }

  /** messages waiting for room in the client's Receive Maximum */
  get queuedOutbound (): number { return this.window.queued }

  /** QoS 1/2 messages sent to the client and not yet acknowledged */
  get inflightOutbound (): number { return this.window.inflight.size }

  /** the client's outbound window (Receive Maximum, or inflightWindow for 3.1.1) */
  get outboundWindow (): number { return this.window.limit }

  // MemberLink, for shared subscriptions (lib/shared/dispatcher.ts)

  get clientId (): string { return this.client.id }

  room (): number {
    return room(this)
  }

  publish (packet: SharedDelivery, done: (err?: Error) => void): void {
    publishShared(this, packet, done)
  }

  /** A shared QoS 1 delivery the gateway sends itself (flows/fast-paths.ts); undefined: aedes' path (`publish`). */
  sendShared (packet: SharedDelivery): DirectSend {
    return sendShared(this, packet)
  }

  /** session state is ready (aedes' clientReady, after its queued messages): shared groups may deliver */
  ready (): void {
    disarmQueueSink(this)
    endHold(this)
    const shared = this.ctx.shared
    // a client in no group has nothing to restore (and no promise to make per connect)
    if (shared === undefined || !shared.isMember(this.client.id)) return
    shared.memberConnected(this, this.cleanStart).catch((err: unknown) => this.log.error({ err }, 'restoring shared subscriptions failed'))
  }

  // ---------------------------------------------------------------- inbound

  private fromClient (chunk: Buffer): void {
    if (this.closed) return
    if (!this.connectSeen && this.inbound.buffered === 0 && chunk.length > 0 && chunk[0] !== 0x10) {
      // [MQTT-3.1.0-1] the first packet must be CONNECT: judged on the first
      // byte, so bytes that are not MQTT are refused without waiting for more
      this.fail(ReasonCode.ProtocolError, 'first packet is not CONNECT')
      return
    }
    const results: ReadResult[] = []
    this.inbound.push(chunk, results)
    // [MQTT-3.1.2-22] a packet from the client restarts its keep-alive, whichever path answers it
    if (results.length > 0) refreshKeepAlive(this.client)
    for (const result of results) {
      if (result.kind === 'malformed') {
        this.processInbound()
        this.fail(ReasonCode.MalformedPacket, result.reason)
        return
      }
      if (result.kind === 'too-large') {
        this.processInbound()
        // [MQTT-3.2.2-15] [MQTT-4.13.1-1] DISCONNECT 0x95, then close
        this.fail(ReasonCode.PacketTooLarge, `packet of ${result.size} bytes exceeds the maximum of ${this.settings.maximumPacketSize}`)
        return
      }
      this.pending.push(result.frame)
    }
    this.processInbound()
    if (!this.heldPaused && this.gate === ConnackGate.Waiting && this.pending.length - this.pendingHead > MAX_HELD_BEFORE_CONNACK) {
      this.heldPaused = true
      this.socket.pause()
    }
  }

  /**
   * aedes finished writing the CONNACK (its 'connackSent'): the frames held
   * behind the CONNECT may go to it (flows/connect.ts).
   */
  brokerSentConnack (): void {
    brokerWroteConnack(this)
  }

  /** A refused CONNECT: the frames held behind it are never checked (inbound/connack-gate.ts). */
  dropHeldFrames (): void {
    this.pending.length = 0
    this.pendingHead = 0
  }

  /** The CONNACK is out: the frames held behind the CONNECT are checked from the next tick, in order. */
  resumeHeldFrames (): void {
    if (this.heldPaused) {
      this.heldPaused = false
      if (!this.socketPaused) this.socket.resume()
    }
    if (this.pendingHead < this.pending.length) process.nextTick(Connection.checkHeldInbound, this)
  }

  /** Runs the inbound checks on the frames received, in order, stopping at a deferred decision. */
  private processInbound (): void {
    if (this.deferred) return
    const forward: Packet[] = []
    while (this.pendingHead < this.pending.length && !this.closed) {
      const frame = this.pending[this.pendingHead] as Frame
      const gate = gateDecision(this.gate, frame.type)
      if (gate === 'hold') break
      this.pendingHead++
      if (gate === 'drop') continue
      let verdict: Verdict
      try {
        verdict = gate === 'protocol-error'
          // [MQTT-3.1.2-30] during enhanced authentication, only AUTH or DISCONNECT until CONNACK (spec 4.12)
          ? { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'packet other than AUTH during authentication' }
          : this.checkInbound(frame)
      } catch (err) {
        // whatever a client sends, it ends at most its own connection
        verdict = { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `undecodable packet: ${(err as Error).message}` }
      }
      if (verdict.kind === 'defer') {
        this.flushToBroker(forward)
        forward.length = 0
        this.deferred = true
        verdict.decision.then((decided) => {
          this.deferred = false
          if (this.closed) return
          if (this.apply(decided, frame, forward)) this.flushToBroker(forward)
          this.processInbound()
        }, (err: unknown) => {
          this.deferred = false
          // the detail is for the log; the client (a CONNACK's Reason String) is told no more than this
          this.log.error({ err }, 'deciding on a packet failed')
          this.fail(ReasonCode.UnspecifiedError, 'internal error')
        })
        return
      }
      if (!this.apply(verdict, frame, forward)) return
    }
    if (this.pendingHead >= this.pending.length) {
      this.pending.length = 0
      this.pendingHead = 0
    }
    this.flushToBroker(forward)
  }

  /** Applies a verdict; false when the connection was closed. */
  private apply (verdict: Verdict, frame: Frame, forward: Packet[]): boolean {
    switch (verdict.kind) {
      case 'pass': {
        const packet = decodeOther(frame, this.version)
        if (packet instanceof Error) {
          this.flushToBroker(forward)
          forward.length = 0
          this.fail(ReasonCode.MalformedPacket, packet.message)
          return false
        }
        forward.push(packet)
        return true
      }
      case 'replace': for (const p of verdict.packets) forward.push(p); return true
      case 'drop': return true
      case 'close':
        this.flushToBroker(forward)
        forward.length = 0
        this.fail(verdict.reasonCode, verdict.reason)
        return false
      case 'defer':
        throw new Error('a deferred decision cannot defer again')
    }
  }

  /**
   * Hands decoded packets to aedes (aedes-internals.ts `packetInjector`).
   * aedes handles them concurrently; past `MAX_IN_PROGRESS` unfinished ones
   * the socket is paused until aedes catches up (back-pressure to the client).
   */
  private flushToBroker (packets: Packet[]): void {
    if (packets.length === 0 || this.side.destroyed) return
    for (const p of packets) injectPacket(this.client, p)
    if (!this.socketPaused && packetsInProgress(this.client) > MAX_IN_PROGRESS) {
      this.socketPaused = true
      this.socket.pause()
    }
  }

  /** aedes finished a packet (aedes-internals.ts `pacePackets`) */
  packetDone (): void {
    if (this.socketPaused && packetsInProgress(this.client) <= MAX_IN_PROGRESS / 2) {
      this.socketPaused = false
      if (!this.heldPaused) this.socket.resume()
    }
  }

  private checkInbound (frame: Frame): Verdict {
    if (!this.connectSeen && frame.type !== PacketType.CONNECT) {
      // [MQTT-3.1.0-1] the first packet must be CONNECT
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'first packet is not CONNECT' }
    }
    if (frame.type >= PacketType.PUBACK && frame.type <= PacketType.PUBCOMP) {
      // spec 3.4-3.7: a whole, well-formed acknowledgement before it changes any state
      const bad = checkAckFrame(frame, this.version)
      if (bad !== undefined) return { kind: 'close', reasonCode: bad.reasonCode, reason: bad.reason }
    }
    switch (frame.type) {
      case PacketType.CONNECT: return onConnect(this, frame)
      case PacketType.PUBLISH: return (frame.flags & 0x01) === 0 ? onPublish(this, frame) : onRetainedPublish(this, frame)
      case PacketType.PUBACK: return onClientPuback(this, frame)
      case PacketType.PUBREC: return onClientPubrec(this, frame)
      case PacketType.PUBREL: return onClientPubrel(this, frame)
      case PacketType.PUBCOMP: return onClientPuback(this, frame)
      case PacketType.SUBSCRIBE: return onSubscribeInOrder(this, frame)
      case PacketType.UNSUBSCRIBE: return onUnsubscribe(this, frame)
      case PacketType.DISCONNECT: return onDisconnect(this, frame)
      case PacketType.AUTH: return onAuth(this, frame)
      default: return PASS
    }
  }

  // PUBLISH (spec 3.3)

  /** aedes routed a retained QoS 0/1 PUBLISH of the client, or refused it (lib/broker/hooks/publish.ts). */
  retainedRouted (): void {
    this.retainedOrder?.routed()
  }

  // PublishInHost (flows/publish-in.ts)

  awaitingSuback (): boolean {
    return subscribesPending(this)
  }

  takePublish (): boolean {
    return this.ctx.policy.takePublish(this)
  }

  mayPublish (topic: string): boolean {
    return this.ctx.policy.mayPublish(this, topic)
  }

  // acknowledgements from the client (spec 3.4-3.7)

  // --------------------------------------------------------------- outbound

  /**
   * Bytes aedes wrote. `done` tells aedes it may write more: at once while
   * the client keeps up; otherwise when it makes progress (back-pressure, so
   * a slow but live subscriber loses nothing); and after
   * `slowConsumerTimeout` without progress at once again, with the queue
   * limits applying, so a stuck client never blocks publishers for longer.
   */
  fromBroker (chunks: Buffer[], writtenAt: number = Date.now()): boolean {
    if (this.closed || this.socket.destroyed) return true
    const out: Buffer[] = []
    const results: ReadResult[] = []
    // aedes writes a packet in several small pieces: join them once, not per piece
    this.outbound.push(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks), results)
    this.writtenAt = writtenAt
    for (const result of results) {
      if (result.kind === 'frame') this.checkOutbound(result.frame, out)
    }
    write(this, out)
    return afterBrokerWrite(this)
  }

  // WriterHost (flows/client-writer.ts)

  awaitDrain (): void {
    this.socket.once('drain', Connection.onSocketDrain)
  }

  brokerMayWrite (): void {
    this.side.taken()
  }

  shed (): void {
    shedHeld(this)
  }

  mayReceive (topic: string): boolean {
    return this.ctx.policy.mayReceive(this, topic)
  }

  /** A resumed session's queue, taken from the store directly (flows/fast-paths.ts); offered once. */
  queueSink (): QueueSink | undefined {
    return queueSink(this)
  }

  private checkOutbound (frame: Frame, out: Buffer[]): void {
    switch (frame.type) {
      case PacketType.PUBLISH: onOutboundPublish(this, frame, out); return
      case PacketType.CONNACK:
        out.push(fitConnackToClient(this, onConnack(this, frame)))
        connackWritten(this, this.accepted)
        return
      case PacketType.PUBACK:
      case PacketType.PUBREC:
        if (frame.type === PacketType.PUBREC) this.retainedOrder?.pubrecSent(ackPacketId(frame))
        onOutboundAck(this, frame, out)
        return
      case PacketType.PUBREL: {
        const id = ackPacketId(frame)
        if (this.droppedQoS2?.delete(id) === true) {
          // culex completes a dropped QoS 2 message with aedes itself
          this.toBroker({ cmd: 'pubcomp', messageId: id })
          return
        }
        this.window.released(id)
        break
      }
      case PacketType.PUBCOMP:
        this.inflightIn.delete(ackPacketId(frame))
        break
      case PacketType.SUBACK: onSuback(this, frame, out); return
      case PacketType.UNSUBACK: onUnsuback(this, frame, out); return
      case PacketType.DISCONNECT:
        this.disconnectSent = true
        this.disconnectBy ??= 'server'
        this.disconnectReason ??= frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
        break
    }
    out.push(this.fit(frame))
  }

  /** A QoS 0 message encoded once for all its subscribers (flows/fast-paths.ts); false: aedes delivers it. */
  sendEncoded (frame: Frame): boolean {
    return sendEncoded(this, frame)
  }

  /** [MQTT-3.3.4-2] a copy of the message offered last, for another of the client's subscriptions (flows/fast-paths.ts). */
  isRepeat (brokerId: string, brokerCounter: number): boolean {
    return isRepeat(this, brokerId, brokerCounter)
  }

  /** aedes finished publishing the client's message `packetId` (its `published` hook): its PUBACK may go (flows/acks.ts). */
  onPublished (packetId: number): void {
    publishedAck(this, packetId)
  }

  /** aedes is about to write a message to this client: encoded messages after this one wait for it. */
  sealEncoded (): void {
    sealEncoded(this)
  }

  /** The client's Receive Maximum and Topic Alias Maximum, from its CONNECT (flows/connect.ts). */
  clientLimits (receiveMaximum: number, topicAliasMaximum: number): void {
    this.window.limit = receiveMaximum
    this.aliases = this.settings.outboundTopicAliases && topicAliasMaximum > 0 ? new OutboundAliases(topicAliasMaximum) : undefined
  }

  /** The CONNACK resumes a session: aedes sends its queued messages next (flows/client-writer.ts `startResumedDrain`, flows/fast-paths.ts `armQueueSink`). */
  expectQueuedMessages (): void {
    startResumedDrain(this)
    armQueueSink(this)
  }

  /**
   * [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size goes
   * out: Reason String and User Properties are left out first
   * [MQTT-3.1.2-25]; a packet that still does not fit is not sent.
   */
  private fit (frame: Frame): Buffer {
    return fitBuf(this, frame.buf)
  }

  // ---------------------------------------------------------------- helpers

  writeToClient (buf: Buffer): void {
    write(this, [buf])
  }

  /** Sends a packet the gateway built itself. */
  sendPacket (packet: Packet): void {
    write(this, [fitBuf(this, encode(packet, this.version))])
  }

  /** Writes a packet to aedes as if the client had sent it. */
  toBroker (packet: Packet): void {
    // not from inside aedes' own write, which is where culex decides to drop
    process.nextTick(() => { if (!this.side.destroyed) injectPacket(this.client, packet) })
  }

  // ---------------------------------------------------------------- closing

  /**
   * Ends the connection for a protocol failure [MQTT-4.13.1-1]: a v5 client
   * that has its CONNACK gets DISCONNECT with the reason; one still waiting
   * for CONNACK gets a CONNACK carrying it (spec 4.13.2); 3.1.1 is closed.
   */
  fail (reasonCode: number, reason: string): void {
    if (this.closed) return
    this.log.warn({ reasonCode: describeReasonCode(reasonCode), reason }, 'closing connection: protocol failure')
    this.sendFinal(reasonCode, reason)
    this.close(reason)
  }

  /** A server-initiated DISCONNECT (v5) or close, for culex's own reasons (e.g. rate limits, ACL reload). */
  disconnect (reasonCode: number, reason: string): void {
    if (this.closed) return
    this.log.info({ reasonCode: describeReasonCode(reasonCode), reason }, 'disconnecting client')
    this.sendFinal(reasonCode, reason)
    this.close(reason)
  }

  /** `reason`: the gateway's own words, sent as a CONNACK's Reason String (never an error from aedes or the store) */
  private sendFinal (reasonCode: number, reason?: string): void {
    if (this.version === 5 && this.accepted && !this.disconnectSent) {
      // [MQTT-3.14.2-1] only DISCONNECT reason codes: CONNACK-only ones are mapped
      const code = disconnectReasonCode(reasonCode)
      this.disconnectSent = true
      this.disconnectBy = 'server'
      this.disconnectReason = code
      this.sendPacket({ cmd: 'disconnect', reasonCode: code })
    } else if (this.version !== undefined && this.connectSeen && !this.connackSent) {
      this.connackSent = true
      this.ctx.observer.connectRefused(reasonCode)
      if (this.version === 5) {
        // the reason goes out as Reason String, left out when the CONNACK would not fit (fitBuf) [MQTT-3.2.2-19]
        this.sendPacket(reason === undefined
          ? { cmd: 'connack', sessionPresent: false, reasonCode }
          : { cmd: 'connack', sessionPresent: false, reasonCode, properties: { reasonString: reason } })
      } else if (reasonCode !== ReasonCode.MalformedPacket && reasonCode !== ReasonCode.ProtocolError && reasonCode !== ReasonCode.TopicNameInvalid) {
        // 3.1.1 [MQTT-3.1.4-1]: a CONNECT that does not conform is closed without CONNACK; so is a
        // Will Topic culex refuses, as 3.1.1 closes for a PUBLISH Topic Name it refuses
        this.sendPacket({ cmd: 'connack', sessionPresent: false, returnCode: v5ToV311ConnackCode(reasonCode) })
      }
    }
  }

  /** Broker shutdown: DISCONNECT 0x8B to every v5 client [MQTT-3.14.4-1], then close. */
  shutdown (): void {
    if (this.closed) return
    this.sendFinal(ReasonCode.ServerShuttingDown)
    this.close('server shutting down')
  }

  /** aedes closed or destroyed its side; `err` says why when it was an error. */
  brokerClosed (err: Error | null): void {
    if (this.closed) return
    if (err) {
      const code = classifyBrokerError(err)
      this.log.debug({ err: err.message }, 'broker closed the connection')
      this.sendFinal(code)
    }
    this.close(err ? err.message : 'closed by broker')
  }

  close (reason: string): void {
    if (this.closed) return
    this.closed = true
    disarmQueueSink(this)
    flushAll(this)
    resumeBroker(this)
    if (!this.side.destroyed) this.side.destroy()
    if (!this.socket.destroyed) {
      // end() flushes what was written (a final DISCONNECT) before the FIN
      this.socket.end()
      setTimeout(() => this.socket.destroy(), 2000).unref()
    }
    if (this.accepted) {
      const by = this.disconnectBy ?? 'network'
      const reasonCode = describeReasonCode(this.disconnectReason)
      this.log.info({
        // the client's DISCONNECT ended it, whichever side then closed the socket first
        reason: by === 'client' ? `DISCONNECT from the client: ${this.disconnectReason === 0 ? '0x00 Normal disconnection' : reasonCode}` : reason,
        reasonCode,
        by
      }, 'client disconnected')
    } else {
      this.log.debug({ reason }, 'connection closed before CONNACK')
    }
    if (this.accepted && this.ctx.shared) {
      // the session ends with the connection when its expiry is 0 (aedes' client.clean,
      // or a session resumed with expiry 0: aedes-internals.ts keepResumedSession)
      const ends = this.client.clean || (this.version === 5 && this.client.sessionExpiryInterval === 0)
      this.ctx.shared.memberDisconnected(this, new Set(this.window.inflight), ends)
        .catch((err: unknown) => this.log.error({ err }, 'returning shared messages to their group failed'))
    }
    this.ctx.observer.connectionClosed(this.meta.transport, this.version, this.accepted)
    this.ctx.onClose(this)
  }
}
