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
import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { ConnectionLogger, type Logger } from '../logging.js'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { FrameReader, PacketType, ackPacketId, ackReasonCode, readPublishHeader, readPublishId, frameOf, type Frame, type PublishHeader, type ReadResult } from './frame.js'
import { decodeBuffer, decodeFrame, encode, type ProtocolVersion } from './codec.js'
import type { SubscribePolicy } from './inbound/subscribe.js'
import { checkPublishHeader, checkPublishProperties, type PublishPolicy } from './inbound/publish.js'
import { OutboundFlow, OutboundWindow, type HeldPublish } from './outbound/flow-control.js'
import { checkAckFrame, wrongAckKind } from './inbound/ack.js'
import { checkProperties } from './property-rules.js'
import { RetainedOrder } from './inbound/retained-order.js'
import { ConnackGate, MAX_HELD_BEFORE_CONNACK, gateDecision, type ConnackGateState } from './inbound/connack-gate.js'
import { PacketIdTable } from './packet-id-table.js'
import { OutboundAliases } from './outbound/topic-alias.js'
import { ReasonCode, describeReasonCode, isFailure, v5ToV311ConnackCode } from './reason-codes.js'
import type { Authenticators } from './auth.js'
import { hardenClient, handleStream, pacePackets, injectPacket, packetsInProgress, refreshKeepAlive, AliasTable, allocatePacketId, type PacketPacer } from '../aedes-internals.js'
import type { QueueSink } from '../persistence/types.js'
import { BrokerSide, type BrokerSideOwner } from './broker-side.js'
import { publishPacket, decodeOther } from './decode.js'
import type { BrokerObserver } from '../observer.js'
import type { DirectSend, MemberLink, SharedDelivery, SharedSubscriptions } from '../shared/dispatcher.js'
import { encodePublish } from './outbound/encode-publish.js'
import { AckOrder, type PendingAck } from './outbound/ack-order.js'
import { forwardCorrections } from './delivery.js'
import type { Transport } from './transport-kind.js'
import type { ConnectionPolicy } from '../auth/admission.js'
import { DROP, PASS, type Verdict } from './flows/verdict.js'
import { brokerWroteConnack, connackWritten, fitConnackToClient, onConnack, onConnect, type ConnectHost } from './flows/connect.js'
import { onAuth, type AuthState, type EnhancedAuthResult } from './flows/auth.js'
import { onSubscribeInOrder, onSuback, onUnsuback, onUnsubscribe, subscribesPending, type SubscribeHost, type SubscribeState } from './flows/subscribe.js'
import { classifyBrokerError, disconnectReasonCode, onDisconnect, type DisconnectHost } from './flows/disconnect.js'

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
/** bytes of a resumed session's queue gathered into one socket write (`holdingDrain`) */
const HOLD_LIMIT = 64 * 1024

interface InboundFlow { qos: number, topic: string }

/** The gateway of a socket (the socket listeners are shared functions, not closures per connection). */
const kConnection = Symbol('culex connection')
interface Tagged { [kConnection]: Connection }

export class Connection implements MemberLink, PacketPacer, BrokerSideOwner, DisconnectHost, SubscribeHost, ConnectHost {
  readonly client: Client
  readonly log: ConnectionLogger
  private readonly side: BrokerSide
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
  private get inflightIn (): PacketIdTable<InboundFlow> { return (this._inflightIn ??= new PacketIdTable()) }
  /** shared with aedes (`client._topicAliases`), which validates the aliases */
  private readonly inboundAliases = new AliasTable()
  /** SUBSCRIBEs and UNSUBSCRIBEs in progress (flows/subscribe.ts), made at the first */
  subscribeState: SubscribeState | undefined
  cleanStart = true
  /** shared deliveries handed to aedes and not yet written */
  private sharedUnseen = 0

  // outbound
  private window: OutboundWindow
  private aliases: OutboundAliases | undefined
  /** packet ids of shared QoS 1 deliveries the gateway sent itself (sendShared): aedes never saw them */
  private _direct: Set<number> | undefined
  private get direct (): Set<number> { return (this._direct ??= new Set()) }
  private _synthetic: Set<number> | undefined
  /** QoS 2 messages culex dropped and completes with aedes on the client's behalf */
  private get synthetic (): Set<number> { return (this._synthetic ??= new Set()) }
  private _acks: AckOrder | undefined
  private get acks (): AckOrder { return (this._acks ??= new AckOrder()) }
  private _publishedEarly: Set<number> | undefined
  private get publishedEarly (): Set<number> { return (this._publishedEarly ??= new Set()) }
  /** packets for the client, written at the next setImmediate (`flushScheduled`) */
  private outQueue: Buffer[] | undefined
  private flushScheduled = false
  /** bytes in outQueue while a resumed session's queue is being sent (`holdingDrain`) */
  private outQueueBytes = 0
  /**
   * A resumed session's queued messages are being sent: aedes writes one per
   * event-loop turn, and they go to the socket together, in one write at the
   * end (aedes' clientReady, `ready()`), or as soon as HOLD_LIMIT bytes wait
   * or the client's window fills, rather than one write per message.
   */
  private holdingDrain = false
  /** the next write is the CONNACK of a resumed session: it goes out alone (`writeOut`) */
  private connackAlone = false
  /** the resumed session's queue waits for the client to have read its CONNACK (`writeOut`) */
  private queueGate = false
  /** aedes' next outgoingStream for this client is the resumed session's queue (`queueSink`) */
  private queueSinkArmed = false
  /** sending queued messages directly: live QoS 0 takes aedes' path, in order behind them */
  private sendingQueued = false
  /** the live message aedes offered this client last (`isRepeat`) */
  private lastOfferedBroker: string | undefined
  private lastOfferedCounter = 0
  /** QoS 0 messages encoded once for many subscribers, going out at the next setImmediate */
  private encodedBatch: Frame[] | undefined
  /** when aedes wrote the chunks being processed */
  private writtenAt = 0
  /** aedes' writes wait for this client to make progress (back-pressure) */
  private brokerWaiting = false
  private stallTimer: NodeJS.Timeout | undefined
  /** the client stalled: queue limits apply instead of back-pressure */
  private shedding = false

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
    this[kConnection].onProgress()
  }

  private static flushOutOf (conn: Connection): void {
    conn.flushOut()
  }

  private static checkHeldInbound (conn: Connection): void {
    conn.processInbound()
  }

  /** The gateway whose stream aedes was given (aedes' `client.conn`), if it is one. */
  static ofStream (stream: unknown): Connection | undefined {
    return stream instanceof BrokerSide ? stream.owner as Connection : undefined
  }

  get isAccepted (): boolean { return this.accepted }

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
    return this.window.limit - this.window.inflight.size - this.window.queued - this.sharedUnseen
  }

  publish (packet: SharedDelivery, done: (err?: Error) => void): void {
    // until aedes has written it, the window does not count it: this does
    if (packet.qos > 0) this.sharedUnseen++
    this.client.publish(packet as unknown as Parameters<Client['publish']>[0], (err?: Error) => {
      if (packet.qos > 0) this.sharedUnseen--
      done(err)
    })
  }

  /**
   * A shared QoS 1 delivery sent by the gateway itself, to a client whose
   * session keeps nothing (aedes' `client.clean`): aedes would store it
   * nowhere and only copy, encode and write it, so culex skips that round
   * trip. Steps, as lib/broker.ts `authorizeForward` takes them on aedes' path:
   * 1. the ACL read right: 'refused' when the client may not read the topic;
   * 2. [MQTT-3.3.2-5] 'expired' past its Message Expiry, otherwise the
   *    interval sent is what remains [MQTT-3.3.2-6];
   * 3. a packet id from aedes' own sequence, so none collides with aedes';
   * 4. encoded, then the outbound steps of every PUBLISH (onOutboundPublish):
   *    Receive Maximum, Maximum Packet Size, topic alias, metrics.
   * Its PUBACK ends here too (onClientPuback). undefined: aedes' path (`publish`).
   */
  sendShared (packet: SharedDelivery): DirectSend {
    if (packet.qos !== 1 || this.client.clean !== true || !this.accepted || this.closed || this.socket.destroyed || this.version === undefined) return undefined
    if (!this.ctx.policy.mayReceive(this, packet.topic)) return 'refused'
    const now = Date.now()
    const corrected = forwardCorrections(this.client, packet as unknown as AedesPublishPacket, { subscriptionIdentifiers: false, now, shared: true })
    if (corrected === null) return 'expired'
    const packetId = allocatePacketId(this.client)
    const frame = frameOf(encodePublish({ topic: corrected.topic, payload: corrected.payload, qos: 1, retain: corrected.retain, dup: false, messageId: packetId, properties: corrected.properties }, this.version))
    this.direct.add(packetId)
    this.sendOwnPublishes([frame], now)
    return packetId
  }

  /** session state is ready (aedes' clientReady, after its queued messages): shared groups may deliver */
  ready (): void {
    this.queueSinkArmed = false
    this.endDrainHold()
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
      case PacketType.PUBLISH: return (frame.flags & 0x01) === 0 ? this.onPublish(frame) : this.onRetainedPublish(frame)
      case PacketType.PUBACK: return this.onClientPuback(frame)
      case PacketType.PUBREC: return this.onClientPubrec(frame)
      case PacketType.PUBREL: return this.onClientPubrel(frame)
      case PacketType.PUBCOMP: return this.onClientPuback(frame)
      case PacketType.SUBSCRIBE: return onSubscribeInOrder(this, frame)
      case PacketType.UNSUBSCRIBE: return onUnsubscribe(this, frame)
      case PacketType.DISCONNECT: return onDisconnect(this, frame)
      case PacketType.AUTH: return onAuth(this, frame)
      default: return PASS
    }
  }

  // PUBLISH (spec 3.3)

  /**
   * Steps:
   * 1. [MQTT-3.3.1-4] QoS 3 is a Malformed Packet;
   * 2. header checks (inbound/publish.ts): Maximum QoS, packet identifier,
   *    Retain Available, Topic Name;
   * 3. MQTT 5 properties, checked and decoded only when present
   *    (property-rules.ts, then inbound/publish.ts): repeated or
   *    ill-formed properties, Payload Format Indicator, Subscription
   *    Identifier; an unknown topic alias with an empty topic is a Protocol
   *    Error;
   * 4. spec 4.3.2, 4.3.3: a QoS 1 PUBLISH reusing the id of a
   *    QoS 2 flow in progress, or the reverse, gets 0x91;
   * 5. spec 4.9: count a new QoS 1/2 packet id against the Receive Maximum
   *    culex advertised; one over it is DISCONNECT 0x93 [MQTT-3.3.4-7], which
   *    also bounds the inbound QoS 2 state a client can pin
   *    (GHSA-5jvp-3p2v-5qgf, GHSA-p8r9-qf8w-p73r).
   */
  private onPublish (frame: Frame): Verdict {
    const header = readPublishHeader(frame)
    if (header === null) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'truncated PUBLISH' }
    if (header.qos === 3) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'PUBLISH with QoS 3' }
    this.ctx.observer.publishReceived(header.qos, frame.buf.length)
    const version = this.version ?? 4
    let topic = header.topic
    const checked = checkPublishHeader(header, frame, version, this.settings)
    if (checked.kind !== 'ok') return this.refusePublish(header, checked)
    let packet = publishPacket(frame, header, version)
    if (packet === null) {
      // only a PUBLISH that carries properties pays for their checks
      const raw = checkProperties(frame.buf, header.afterId, frame.buf.length, 'publish')
      if (typeof raw !== 'number') return { kind: 'close', reasonCode: raw.reasonCode, reason: raw.reason }
      const decoded = decodeFrame(frame, 5)
      if (decoded instanceof Error || decoded.cmd !== 'publish') {
        return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed PUBLISH' }
      }
      packet = decoded
      const props = checkPublishProperties(packet, this.settings)
      if (props.kind !== 'ok') return this.refusePublish(header, props)
      const alias = packet.properties?.topicAlias
      if (alias !== undefined) {
        // aedes refuses an alias of 0 or over the maximum (DISCONNECT 0x94);
        // culex follows the mapping
        if (topic.length > 0) this.inboundAliases.set(alias, topic)
        else {
          const known = this.inboundAliases.get(alias)
          if (known === undefined && alias >= 1 && alias <= this.settings.topicAliasMaximum) {
            // spec 3.3.2.3.4: an empty Topic Name with an alias the client never set is a Protocol Error
            return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: `unknown topic alias ${alias}` }
          }
          topic = known ?? ''
        }
      }
    }
    if (!this.ctx.policy.takePublish(this)) {
      return { kind: 'close', reasonCode: ReasonCode.MessageRateTooHigh, reason: 'message rate too high' }
    }
    if (!this.ctx.policy.mayPublish(this, topic)) return this.deniedPublish(header)
    const id = header.packetId
    if (id !== undefined) {
      const flow = this.inflightIn.get(id)
      if (flow !== undefined) {
        if (flow.qos !== header.qos) {
          return this.refusePublish(header, { kind: 'refuse', reasonCode: ReasonCode.PacketIdentifierInUse, reason: `packet id ${id} in use` })
        }
      } else {
        if (this.inflightIn.size >= this.settings.receiveMaximum) {
          return { kind: 'close', reasonCode: ReasonCode.ReceiveMaximumExceeded, reason: `more than ${this.settings.receiveMaximum} QoS 1/2 messages in flight` }
        }
        this.inflightIn.set(id, { qos: header.qos, topic })
      }
      // its acknowledgement, written by aedes, goes out at this place [MQTT-4.6.0-2] [MQTT-4.6.0-3]
      this.acks.expect(id)
    }
    if (header.retain) (this.retainedOrder ??= new RetainedOrder()).forwarded(header.qos === 2 ? id : undefined)
    return { kind: 'replace', packets: [packet] }
  }

  /** A retained PUBLISH waits for the SUBSCRIBEs before it to be answered (inbound/retained-order.ts). */
  private onRetainedPublish (frame: Frame): Verdict {
    if (!subscribesPending(this)) return this.onPublish(frame)
    const order = this.retainedOrder ??= new RetainedOrder()
    return { kind: 'defer', decision: order.whenSubscribed().then(() => this.onPublish(frame)) }
  }

  /** aedes routed a retained QoS 0/1 PUBLISH of the client, or refused it (lib/broker.ts). */
  retainedRouted (): void {
    this.retainedOrder?.routed()
  }

  /**
   * An ACL refusal: MQTT 5 gets PUBACK/PUBREC 0x87; 3.1.1, which has no way
   * to say it, gets a plain acknowledgement and the message is dropped, as
   * mosquitto does (its PUBREL is answered by aedes).
   */
  private deniedPublish (header: PublishHeader): Verdict {
    this.log.repeated('info', 'publish not authorized', { topic: header.topic }, 'publish not authorized')
    if (this.version === 5) {
      return this.refusePublish(header, { kind: 'refuse', reasonCode: ReasonCode.NotAuthorized, reason: 'not authorized' })
    }
    this.ctx.observer.messageDropped('not-authorized', 1)
    if (header.packetId !== undefined) this.sendOrderedAck(header.packetId, { cmd: header.qos === 1 ? 'puback' : 'pubrec', messageId: header.packetId })
    return DROP
  }

  private refusePublish (header: PublishHeader, verdict: { kind: 'refuse' | 'disconnect', reasonCode: number, reason: string }): Verdict {
    if (verdict.kind === 'disconnect' || this.version !== 5) {
      return { kind: 'close', reasonCode: verdict.reasonCode, reason: verdict.reason }
    }
    this.log.repeated('debug', 'publish refused ' + verdict.reasonCode, { topic: header.topic, reasonCode: describeReasonCode(verdict.reasonCode), reason: verdict.reason }, 'publish refused')
    this.ctx.observer.messageDropped('not-authorized', 1)
    if (header.qos === 0 || header.packetId === undefined) return DROP
    this.sendOrderedAck(header.packetId, this.ackPacket(header.qos === 1 ? 'puback' : 'pubrec', header.packetId, verdict.reasonCode, verdict.reason))
    return DROP
  }

  // acknowledgements from the client (spec 3.4-3.7)

  /**
   * PUBACK or PUBCOMP: the client completed an outbound QoS 1 / 2 flow.
   * The wrong kind for the id in flight is a Protocol Error (`wrongAckKind`).
   */
  private onClientPuback (frame: Frame): Verdict {
    const id = ackPacketId(frame)
    const wrong = wrongAckKind(frame.type, this.window.flowOf(id))
    if (wrong !== undefined) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: wrong }
    if (this.window.complete(id)) this.releaseHeld()
    // after the window made room: a shared group gives this client its next message at once
    if (frame.type !== PacketType.PUBACK) return PASS
    this.ctx.shared?.onAck(this.client, id, this.version === 5 ? ackReasonCode(frame) : 0)
    // a shared delivery culex sent itself: aedes has no flow to complete
    return this._direct?.delete(id) === true ? DROP : PASS
  }

  /**
   * PUBREC: the wrong kind for the id in flight is a Protocol Error
   * (`wrongAckKind`); a failed PUBREC completes the flow (spec 4.3.3); one
   * for a packet id culex never sent gets PUBREL 0x92 (spec 3.6.2.1).
   */
  private onClientPubrec (frame: Frame): Verdict {
    const id = ackPacketId(frame)
    const flow = this.window.flowOf(id)
    const wrong = wrongAckKind(frame.type, flow)
    if (wrong !== undefined) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: wrong }
    if (flow === OutboundFlow.None) {
      if (this.version === 5) {
        this.sendAck('pubrel', id, ReasonCode.PacketIdentifierNotFound, 'unknown packet identifier')
        return DROP
      }
      return PASS
    }
    const code = this.version === 5 ? ackReasonCode(frame) : 0
    if (isFailure(code)) {
      this.window.complete(id)
      this.releaseHeld()
    }
    this.ctx.shared?.onAck(this.client, id, code)
    return PASS
  }

  /**
   * PUBREL: for a packet id with no QoS 2 state, on this connection or in the
   * store, the answer is PUBCOMP 0x92 (spec 3.7.2.1) instead of aedes' 0x00.
   */
  private onClientPubrel (frame: Frame): Verdict {
    const id = ackPacketId(frame)
    if (this.version !== 5 || this.inflightIn.get(id)?.qos === 2) return PASS
    const clientId = this.client.id
    return {
      kind: 'defer',
      decision: this.ctx.hasIncoming(clientId, id).then((known) => {
        if (known) return PASS
        this.sendAck('pubcomp', id, ReasonCode.PacketIdentifierNotFound, 'unknown packet identifier')
        return DROP
      })
    }
  }

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
    this.writeOut(out)
    if (this.shedding || !this.congested()) return true
    // aedes is made to wait for the client: what it was sent must reach it
    this.endDrainHold()
    this.brokerWaiting = true
    if (this.socket.writableNeedDrain) this.socket.once('drain', Connection.onSocketDrain)
    this.armStall()
    return false
  }

  private congested (): boolean {
    return this.window.queued > 0 || this.socket.writableNeedDrain
  }

  private armStall (): void {
    if (this.stallTimer) this.stallTimer.refresh()
    else {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined
        if (!this.brokerWaiting) return
        this.shedding = true
        this.log.repeated('warn', 'stalled', { queued: this.window.queued, buffered: this.socket.writableLength }, 'client is not keeping up: queue limits apply')
        for (const dropped of this.window.trim()) this.dropPublish(dropped, 'queue-full')
        this.resumeBroker()
      }, this.settings.slowConsumerTimeout)
      this.stallTimer.unref()
    }
  }

  /** The client acknowledged something or its socket drained. */
  private onProgress (): void {
    if (this.shedding && this.window.queued === 0 && !this.socket.writableNeedDrain) this.shedding = false
    if (!this.brokerWaiting) return
    if (this.congested()) {
      if (this.socket.writableNeedDrain) this.socket.once('drain', Connection.onSocketDrain)
      this.armStall()
      return
    }
    this.resumeBroker()
  }

  private resumeBroker (): void {
    if (this.stallTimer) { clearTimeout(this.stallTimer); this.stallTimer = undefined }
    if (!this.brokerWaiting) return
    this.brokerWaiting = false
    this.side.taken()
  }

  /**
   * Everything for the client goes through here, in order. Writes are
   * coalesced: aedes writes each message in its own event-loop callback, and
   * one socket write per loop turn, for all of them, saves a system call per
   * message.
   */
  private writeOut (out: Buffer[]): void {
    if (out.length === 0) return
    const q = this.outQueue
    if (q === undefined) this.outQueue = out
    else for (const b of out) q.push(b)
    if (this.connackAlone) {
      // A resumed session's CONNACK goes out in a write of its own, and its
      // queue only after two more turns of the event loop, so that a poll
      // phase, where a client reads its socket, comes between them (one
      // setImmediate can run before the next poll). A client reading both in
      // one chunk handles the queue before the code that awaited its connect
      // runs: MQTT.js's `await connectAsync(...)` then `on('message')`
      // acknowledged a whole queue of 50 without a listener (0 of 50; 50 of
      // 50 in 20 runs with this gate; one setImmediate was enough in that
      // test, where the CONNACK is written in a check phase, but not when it
      // is written in the poll phase). test/e2e/persistence/resume-connect-async.test.ts
      this.connackAlone = false
      this.flushOut()
      this.queueGate = true
      setImmediate(Connection.passTurn, this)
      return
    }
    if (this.holdingDrain) {
      for (const b of out) this.outQueueBytes += b.length
      if (this.outQueueBytes < HOLD_LIMIT) return
      this.holdingDrain = false
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(Connection.flushOutOf, this)
    }
  }

  /**
   * The resumed session's queue, taken from the store directly (see the
   * store's QueueSink) rather than one message per event-loop turn through
   * aedes' emptyQueue; offered once, to the stream aedes opens right after
   * CONNACK, and only for a session resumed as it was (aedes drops the queue
   * of a Clean Start or of a session that ends with the connection).
   */
  queueSink (): QueueSink | undefined {
    if (!this.queueSinkArmed) return undefined
    this.queueSinkArmed = false
    if (this.closed || !this.client.connecting || this.client.clean || this.cleanStart) return undefined
    return {
      room: () => this.closed ? 0 : this.room(),
      nextPacketId: () => allocatePacketId(this.client),
      send: (packet) => this.sendQueued(packet as unknown as AedesPublishPacket)
    }
  }

  /**
   * One queued message, with the steps of aedes' emptyQueue: the remaining
   * Message Expiry Interval [MQTT-3.3.2-6]; authorizeForward (culex's
   * delivery corrections, ACL, DUP); not sent once expired [MQTT-3.3.2-5];
   * then the outbound steps every PUBLISH takes (`onOutboundPublish`).
   */
  private sendQueued (packet: AedesPublishPacket): boolean {
    const now = Date.now()
    if (packet.messageExpiry !== undefined && packet.messageExpiry > now) {
      packet.properties = { ...packet.properties, messageExpiryInterval: Math.ceil((packet.messageExpiry - now) / 1000) }
    }
    this.sendingQueued = true
    let authorized: AedesPublishPacket | null | void
    try {
      authorized = this.ctx.broker.authorizeForward(this.client, packet)
    } finally {
      this.sendingQueued = false
    }
    if (authorized === null || authorized === undefined) return false
    if (packet.messageExpiry !== undefined && packet.messageExpiry <= Date.now()) return false
    // aedes writes the packet it asked about, corrected in place
    this.sendOwnPublishes([frameOf(encodePublish(packet as unknown as IPublishPacket, this.version ?? 4))], now)
    return true
  }

  /** The resumed session's queue has been sent (or the client must get what it has): write it now. */
  private endDrainHold (): void {
    if (!this.holdingDrain) return
    this.holdingDrain = false
    if (!this.flushScheduled) this.flushOut()
  }

  private static passTurn (conn: Connection): void {
    setImmediate(Connection.openQueueGate, conn)
  }

  private static openQueueGate (conn: Connection): void {
    conn.queueGate = false
    if (!conn.holdingDrain && !conn.flushScheduled) conn.flushOut()
  }

  private flushOut (): void {
    this.flushScheduled = false
    if (this.queueGate) return
    this.outQueueBytes = 0
    const q = this.outQueue
    if (q === undefined) return
    this.outQueue = undefined
    if (this.socket.destroyed || !this.socket.writable) return
    this.socket.write(q.length === 1 ? q[0] as Buffer : Buffer.concat(q))
    if (this.brokerWaiting) this.onProgress()
  }

  private checkOutbound (frame: Frame, out: Buffer[]): void {
    switch (frame.type) {
      case PacketType.PUBLISH: this.onOutboundPublish(frame, out); return
      case PacketType.CONNACK:
        out.push(fitConnackToClient(this, onConnack(this, frame)))
        connackWritten(this, this.accepted)
        return
      case PacketType.PUBACK:
      case PacketType.PUBREC:
        if (frame.type === PacketType.PUBREC) this.retainedOrder?.pubrecSent(ackPacketId(frame))
        this.onOutboundAck(frame, out)
        return
      case PacketType.PUBREL: {
        const id = ackPacketId(frame)
        if (this.synthetic.delete(id)) {
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

  /**
   * Steps for a PUBLISH to the client:
   * 1. spec 4.9: QoS 1/2 beyond the client's Receive Maximum waits, in order
   *    (outbound/flow-control.ts); a client that never acknowledges has the
   *    oldest waiting messages dropped past `maxQueuedOutbound`;
   * 2. then `sendPublish`.
   */
  private onOutboundPublish (frame: Frame, out: Buffer[]): void {
    const ids = readPublishId(frame)
    if (ids === null) return
    // the time aedes wrote it: a message may have waited for the client before it got here
    const held: HeldPublish = { frame, qos: ids.qos, packetId: ids.packetId, heldAt: this.writtenAt }
    if (this.window.admit(held)) {
      this.sendPublish(held, null, out)
      return
    }
    // a client that keeps up only waits here; one that stalled has its oldest dropped
    for (const dropped of this.window.hold(held, this.shedding)) this.dropPublish(dropped, 'queue-full')
  }

  /**
   * 1. [MQTT-3.3.2-5] a message that waited in the window past its Message
   *    Expiry is not sent; otherwise the interval is reduced by the wait
   *    [MQTT-3.3.2-6];
   * 2. [MQTT-3.1.2-24] a PUBLISH larger than the client's Maximum Packet Size
   *    is not sent; culex acts as if it had been delivered (spec 3.1.2.11.4);
   * 3. [MQTT-3.3.2-8] [MQTT-3.3.2-11] [MQTT-3.1.2-26] an outbound topic alias replaces the topic.
   */
  private sendPublish (p: HeldPublish, header: PublishHeader | null, out: Buffer[]): void {
    if (p.heldAt !== undefined && this.version === 5 && !this.ageHeld(p)) {
      this.dropPublish(p, 'expired')
      return
    }
    const max = this.clientMaximumPacketSize
    if (max > 0 && p.frame.buf.length > max) {
      this.dropPublish(p, 'packet-too-large')
      return
    }
    if (p.qos === 0 && this.shedding && this.socket.writableLength > this.settings.maxOutboundBuffer) {
      this.dropPublish(p, 'queue-full')
      return
    }
    let buf = p.frame.buf
    if (this.aliases) {
      const h = header ?? readPublishHeader(p.frame)
      if (h) {
        const aliased = this.alias(p.frame, h, this.aliases)
        // [MQTT-3.1.2-24] the alias property must not push it over the client's maximum
        if (max > 0 && aliased.length > max) this.aliases.forget(h.topic)
        else buf = aliased
      }
    }
    this.ctx.observer.publishSent(p.qos, buf.length)
    out.push(buf)
  }

  private alias (frame: Frame, header: PublishHeader, aliases: OutboundAliases): Buffer {
    const use = aliases.use(header.topic)
    if (use.kind === 'none') return frame.buf
    const packet = decodeFrame(frame, 5)
    if (packet instanceof Error || packet.cmd !== 'publish') return frame.buf
    const aliased: IPublishPacket = { ...packet, properties: { ...packet.properties, topicAlias: use.alias } }
    if (use.kind === 'reuse') aliased.topic = ''
    return encode(aliased, 5)
  }

  /** Reduces the Message Expiry Interval of a held message by its wait; false when it expired. */
  private ageHeld (p: HeldPublish): boolean {
    const waitedSeconds = Math.floor((Date.now() - (p.heldAt as number)) / 1000)
    if (waitedSeconds < 1) return true
    const header = readPublishHeader(p.frame)
    if (!header || p.frame.buf.length <= header.afterId || p.frame.buf[header.afterId] === 0) return true
    const packet = decodeFrame(p.frame, 5)
    if (packet instanceof Error || packet.cmd !== 'publish') return true
    const interval = packet.properties?.messageExpiryInterval
    if (interval === undefined) return true
    if (interval - waitedSeconds <= 0) return false
    p.frame = frameOf(encode({ ...packet, properties: { ...packet.properties, messageExpiryInterval: interval - waitedSeconds } }, 5))
    return true
  }

  /** Drops a message for this client and completes its flow with aedes, as if it had been delivered. */
  private dropPublish (p: HeldPublish, reason: 'queue-full' | 'packet-too-large' | 'expired'): void {
    this.ctx.observer.messageDropped(reason, 1)
    this.log.repeated('warn', 'dropped ' + reason, { reason, qos: p.qos, bytes: p.frame.buf.length }, 'message to client dropped')
    if (p.qos === 0 || p.packetId === undefined) return
    this.window.complete(p.packetId)
    const id = p.packetId
    // a shared delivery: its group counts it as delivered (spec 3.1.2.11.4), after the current step
    if (this.ctx.shared !== undefined) queueMicrotask(() => this.ctx.shared?.onAck(this.client, id, 0))
    // a shared delivery culex sent itself: aedes has no flow to complete
    if (this._direct?.delete(id) === true) return
    if (p.qos === 1) {
      this.toBroker({ cmd: 'puback', messageId: p.packetId })
    } else {
      this.synthetic.add(p.packetId)
      this.toBroker({ cmd: 'pubrec', messageId: p.packetId })
    }
  }

  private releaseHeld (): void {
    const out: Buffer[] = []
    // a released message may be dropped (expired, too large), freeing its place again
    for (let released = this.window.release(); released.length > 0; released = this.window.release()) {
      for (const p of released) this.sendPublish(p, null, out)
    }
    this.writeOut(out)
    this.onProgress()
  }

  /**
   * Acknowledgements of the client's PUBLISHes go out in the order the
   * PUBLISHes came [MQTT-4.6.0-2] [MQTT-4.6.0-3], and:
   * 1. a QoS 1 PUBACK only once aedes finished publishing the message, so it
   *    is in the store for every persistent session (culex's durability
   *    contract; aedes writes the PUBACK first);
   * 2. MQTT 5: 0x10 (No matching subscribers) when no subscription matches.
   */
  private onOutboundAck (frame: Frame, out: Buffer[]): void {
    const id = ackPacketId(frame)
    const code = this.version === 5 ? ackReasonCode(frame) : 0
    const flow = this.inflightIn.get(id)
    if (frame.type === PacketType.PUBACK) this.inflightIn.delete(id)
    else if (isFailure(code)) this.inflightIn.delete(id)
    const waitPublished = frame.type === PacketType.PUBACK && code === 0 && flow !== undefined &&
      (this._publishedEarly === undefined || !this._publishedEarly.delete(id))
    const entry = this.acks.fromBroker(id, frame)
    entry.waiting = waitPublished
    entry.topic = this.version === 5 && code === 0 && flow !== undefined ? flow.topic : undefined
    if (!waitPublished) this.ackReady(entry)
    this.flushAcks(out)
  }

  /** The acknowledgement may go: with 0x10 when no subscription matches (MQTT 5 success, spec 3.4.2.1). */
  private ackReady (entry: PendingAck): void {
    const topic = entry.topic
    const frame = entry.frame
    if (topic !== undefined && frame !== undefined) {
      const has = this.ctx.hasSubscribers(topic)
      if (has === false) {
        entry.buf = this.withReasonCode(frame, ReasonCode.NoMatchingSubscribers)
      } else if (has !== true) {
        has.then((yes) => {
          if (!yes) entry.buf = this.withReasonCode(frame, ReasonCode.NoMatchingSubscribers)
          entry.ready = true
          this.flushAcks()
        }, () => { entry.ready = true; this.flushAcks() })
        return
      }
    }
    entry.ready = true
  }

  /**
   * A QoS 0 message for this client, already encoded once for all its
   * subscribers (lib/protocol/outbound/encode-once.ts) instead of by aedes
   * for each. It goes out as aedes would have written it: after a
   * setImmediate, behind anything aedes was already about to write to this
   * client (`sealEncoded`), then through the same outbound steps. false: not
   * now (before CONNACK, closing, or while the client is behind, where
   * aedes' own path gives back-pressure); aedes delivers it instead.
   */
  sendEncoded (frame: Frame): boolean {
    if (this.sendingQueued || !this.accepted || this.closed || this.shedding || this.congested() || this.side.writableLength > 0) return false
    let batch = this.encodedBatch
    if (batch === undefined) {
      const fresh: Frame[] = []
      batch = this.encodedBatch = fresh
      setImmediate(() => { this.flushEncoded(fresh) })
    }
    batch.push(frame)
    return true
  }

  /**
   * [MQTT-3.3.4-2] one copy per client of a message that matches several of
   * its subscriptions: aedes offers the copies one after another, all within
   * one emit, so a copy is the message offered last (aedes-internals.ts
   * `hardenClient` says why aedes' own check is off).
   */
  isRepeat (brokerId: string, brokerCounter: number): boolean {
    if (this.lastOfferedCounter === brokerCounter && this.lastOfferedBroker === brokerId) return true
    this.lastOfferedBroker = brokerId
    this.lastOfferedCounter = brokerCounter
    return false
  }

  /** aedes is about to write a message to this client: encoded messages after this one wait for it. */
  sealEncoded (): void {
    this.encodedBatch = undefined
  }

  private flushEncoded (batch: Frame[]): void {
    if (this.encodedBatch === batch) this.encodedBatch = undefined
    if (this.closed || this.socket.destroyed) return
    this.sendOwnPublishes(batch, Date.now())
  }

  /**
   * PUBLISH frames culex encoded itself (QoS 0 encoded once, shared QoS 1,
   * a resumed queue), through the outbound steps of every PUBLISH.
   */
  private sendOwnPublishes (frames: Frame[], writtenAt: number): void {
    const out: Buffer[] = []
    this.writtenAt = writtenAt
    for (const frame of frames) this.onOutboundPublish(frame, out)
    this.writeOut(out)
  }

  /** aedes finished publishing the client's message `packetId` (its `published` hook). */
  onPublished (packetId: number): void {
    // A waiting PUBACK holds back the ones behind it, so it is still in
    // `acks`; aedes publishes a client's messages in order, so it is
    // usually the first. The oldest one with this id (a client may repeat
    // a PUBLISH) is released.
    const entry = this._acks?.waitingFor(packetId)
    if (entry === undefined) {
      this.publishedEarly.add(packetId)
      return
    }
    entry.waiting = false
    this.ackReady(entry)
    this.flushAcks()
  }

  private flushAcks (out?: Buffer[]): void {
    const target = out ?? []
    const acks = this._acks
    if (acks !== undefined) {
      for (let buf = acks.takeReady(); buf !== undefined; buf = acks.takeReady()) target.push(this.fitBuf(buf))
    }
    if (!out) this.writeOut(target)
  }

  private withReasonCode (frame: Frame, code: number): Buffer {
    const buf = Buffer.from(frame.buf)
    if (buf.length > frame.headerLength + 2) {
      buf[frame.headerLength + 2] = code
      return buf
    }
    // spec 3.4.2.1: a Reason Code with no Property Length (Remaining Length 3); hand-encoded as it can go out for every QoS 1 PUBLISH
    const id = ackPacketId(frame)
    const ack = Buffer.allocUnsafe(5)
    ack[0] = frame.type << 4
    ack[1] = 3
    ack[2] = id >> 8
    ack[3] = id & 0xff
    ack[4] = code
    return ack
  }

  /** The client's Receive Maximum and Topic Alias Maximum, from its CONNECT (flows/connect.ts). */
  clientLimits (receiveMaximum: number, topicAliasMaximum: number): void {
    this.window.limit = receiveMaximum
    this.aliases = this.settings.outboundTopicAliases && topicAliasMaximum > 0 ? new OutboundAliases(topicAliasMaximum) : undefined
  }

  /** The CONNACK resumes a session: aedes sends its queued messages next (`holdingDrain`). */
  expectQueuedMessages (): void {
    this.holdingDrain = this.queueSinkArmed = this.connackAlone = true
  }

  /**
   * [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size goes
   * out: Reason String and User Properties are left out first
   * [MQTT-3.1.2-25]; a packet that still does not fit is not sent.
   */
  private fit (frame: Frame): Buffer {
    return this.fitBuf(frame.buf)
  }

  private fitBuf (buf: Buffer): Buffer {
    const max = this.clientMaximumPacketSize
    if (max === 0 || buf.length <= max) return buf
    const decoded = decodeBuffer(buf, this.version)
    if (!(decoded instanceof Error) && 'properties' in decoded && decoded.properties) {
      const props = { ...decoded.properties } as Record<string, unknown>
      delete props.reasonString
      delete props.userProperties
      const smaller = encode({ ...decoded, properties: props } as Packet, this.version)
      if (smaller.length <= max) return smaller
    }
    this.ctx.observer.messageDropped('packet-too-large', 1)
    this.log.repeated('warn', 'packet too large', { bytes: buf.length, maximum: max }, 'packet larger than the client accepts: not sent')
    return Buffer.alloc(0)
  }

  // ---------------------------------------------------------------- helpers

  writeToClient (buf: Buffer): void {
    this.writeOut([buf])
  }

  /** Sends a packet the gateway built itself. */
  sendPacket (packet: Packet): void {
    this.writeToClient(this.fitBuf(encode(packet, this.version)))
  }

  /** An acknowledgement with a reason code; the Reason String only if the client allows problem information [MQTT-3.1.2-29]. */
  private sendAck (cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', messageId: number, reasonCode: number, reason: string): void {
    this.sendPacket(this.ackPacket(cmd, messageId, reasonCode, reason))
  }

  private ackPacket (cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', messageId: number, reasonCode: number, reason: string): Packet {
    const packet = { cmd, messageId, reasonCode } as Packet & { properties?: { reasonString: string } }
    if (this.requestProblemInformation) packet.properties = { reasonString: reason }
    return packet
  }

  /** A PUBACK / PUBREC the gateway answers itself, behind those of the PUBLISHes before it [MQTT-4.6.0-2] [MQTT-4.6.0-3]. */
  private sendOrderedAck (messageId: number, packet: Packet): void {
    this.acks.own(messageId, encode(packet, this.version))
    this.flushAcks()
  }

  /** Writes a packet to aedes as if the client had sent it. */
  private toBroker (packet: Packet): void {
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
    this.queueSinkArmed = false
    this.queueGate = false
    this.flushOut()
    this.resumeBroker()
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
