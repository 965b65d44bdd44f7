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
 * Per packet type, the flows follow the spec: CONNECT and AUTH (3.1, 3.15,
 * 4.12), PUBLISH both ways (3.3, 4.9 flow control, topic aliases, Maximum
 * Packet Size), the acknowledgements (3.4-3.7), SUBSCRIBE (3.8), DISCONNECT.
 */
import { isUtf8 } from 'node:buffer'
import type { Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { ConnectionLogger, type Logger } from '../logging.js'
import type { IAuthPacket, IConnackPacket, IConnectPacket, ISubackPacket, ISubscribePacket, ISubscription, IUnsubackPacket, IUnsubscribePacket, Packet } from 'mqtt-packet'
import { FrameReader, PacketType, ackPacketId, type Frame, type ReadResult } from './frame.js'
import { decodeFrame, encode, type ProtocolVersion } from './codec.js'
import { inspectConnect, UNACCEPTABLE_PROTOCOL_VERSION_CONNACK, UNSUPPORTED_PROTOCOL_VERSION_CONNACK_V5 } from './inbound/connect.js'
import { checkSubscribeFrame, checkSubscription, PendingSuback, type SubscribePolicy } from './inbound/subscribe.js'
import { willTopicOverLimits, type PublishPolicy } from './inbound/publish.js'
import { OutboundWindow } from './outbound/flow-control.js'
import { checkAckFrame } from './inbound/ack.js'
import { RetainedOrder } from './inbound/retained-order.js'
import { ConnackGate, MAX_HELD_BEFORE_CONNACK, afterConnack, afterConnect, gateDecision, type ConnackGateState } from './inbound/connack-gate.js'
import { PacketIdTable } from './packet-id-table.js'
import { OutboundAliases } from './outbound/topic-alias.js'
import { ReasonCode, describeReasonCode, v5ToV311ConnackCode, v311ToV5ConnackCode } from './reason-codes.js'
import type { Authenticators, AuthExchange, AuthStep } from './auth.js'
import { hardenClient, clientSubscriptions, handleStream, pacePackets, injectPacket, packetsInProgress, refreshKeepAlive, routeQoS0Delivery, AliasTable, type PacketPacer } from '../aedes-internals.js'
import type { QueueSink } from '../persistence/types.js'
import { BrokerSide, type BrokerSideOwner } from './broker-side.js'
import { decodeOther } from './decode.js'
import { checkAuth, checkDisconnect } from './inbound/disconnect-auth.js'
import type { BrokerObserver } from '../observer.js'
import type { DirectSend, MemberLink, SharedDelivery, SharedSubscriptions } from '../shared/dispatcher.js'
import { fitConnack } from './outbound/fit-connack.js'
import { shouldDeliverWithQoS } from './delivery.js'
import { parseSharedFilter, hasWildcard } from './topic.js'
import { DROP, PASS, type Verdict } from './flows/verdict.js'
import { onPublish, onRetainedPublish, type PublishInHost } from './flows/publish-in.js'
import { onClientPuback, onClientPubrec, onClientPubrel, onOutboundAck, onPublished as publishedAck, type AckFlow, type InboundFlow } from './flows/acks.js'
import { fitBuf, onOutboundPublish, shedHeld } from './flows/publish-out.js'
import { armQueueSink, disarmQueueSink, isRepeat, publishShared, queueSink, room, sealEncoded, sendEncoded, sendShared, type EncodeOnceState, type FastPathHost, type SinkPhase } from './flows/fast-paths.js'
import { afterBrokerWrite, endHold, flushAll, progress, resumeBroker, startResumedDrain, write, type OutboundMode, type Pressure } from './flows/client-writer.js'

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

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

/** Admission, authorization and limits the gateway applies (lib/broker.ts builds it). */
export interface ConnectionPolicy {
  /** at CONNECT: undefined to go on, or the reason code to refuse it with */
  admit (conn: Connection, connect: IConnectPacket): number | undefined
  mayPublish (conn: Connection, topic: string): boolean
  maySubscribe (conn: Connection, filter: string): boolean
  /** may the client be sent messages on `topic` (the ACL's read right)? */
  mayReceive (conn: Connection, topic: string): boolean
  /** per PUBLISH from the client: false when it exceeds its message rate */
  takePublish (conn: Connection): boolean
  /** subscriptions one client may hold */
  readonly maxSubscriptions: number
}

export interface EnhancedAuthResult {
  method: string
  username: string | undefined
}

/** accepted MQTT 5 CONNACKs as aedes wrote them → as culex sends them, per broker settings */
const connackRewrites = new WeakMap<ProtocolSettings, Map<string, Buffer>>()
const CONNACK_CACHE_SIZE = 64
/** packets aedes may have in progress before the socket is paused */
const MAX_IN_PROGRESS = 256

type AuthState =
  | { phase: 'connect', exchange: AuthExchange, method: string, connect: IConnectPacket }
  | { phase: 'reauth', exchange: AuthExchange, method: string }

/** The gateway of a socket (the socket listeners are shared functions, not closures per connection). */
const kConnection = Symbol('culex connection')
interface Tagged { [kConnection]: Connection }

export class Connection implements MemberLink, PacketPacer, BrokerSideOwner, PublishInHost, FastPathHost {
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
  private connectSeen = false
  connackSent = false
  private accepted = false
  private disconnectSent = false
  private closed = false
  private socketPaused = false
  private disconnectReason: number | undefined
  private disconnectBy: 'client' | 'server' | undefined

  // what the client told us in CONNECT
  requestProblemInformation = true
  /** the CONNECT's Session Expiry Interval, for [MQTT-3.14.2-2] */
  private connectSessionExpiry = 0
  clientMaximumPacketSize = 0

  // inbound
  private readonly pending: Frame[] = []
  private pendingHead = 0
  private deferred = false
  /** what happens to frames between CONNECT and CONNACK (inbound/connack-gate.ts) */
  private gate: ConnackGateState = ConnackGate.Open
  /** the socket is paused while frames wait for the CONNACK */
  private heldPaused = false
  /** aedes finished writing the CONNACK ('connackSent') */
  private brokerConnacked = false
  /** a retained PUBLISH and a SUBSCRIBE take effect in the client's order (made on the first retained PUBLISH) */
  retainedOrder: RetainedOrder | undefined
  // The maps and sets of the connection are made on first use (the getters
  // below): an idle connection carries none of them.
  private _inflightIn: PacketIdTable<InboundFlow> | undefined
  /** inbound QoS 1 and 2 packet ids not yet completed (spec 4.9) */
  get inflightIn (): PacketIdTable<InboundFlow> { return (this._inflightIn ??= new PacketIdTable()) }
  /** shared with aedes (`client._topicAliases`), which validates the aliases */
  readonly inboundAliases = new AliasTable()
  private _subParts: Map<number, { pending: PendingSuback, index: number }> | undefined
  /** SUBSCRIBE packets split into parts, by the internal id of each part */
  private get subParts (): Map<number, { pending: PendingSuback, index: number }> { return (this._subParts ??= new Map()) }
  private _unsubParts: Map<number, { messageId: number, codes: number[], indexes: number[] }> | undefined
  /** UNSUBSCRIBE packets whose $share filters culex answers, by the internal id of the rest */
  private get unsubParts (): Map<number, { messageId: number, codes: number[], indexes: number[] }> { return (this._unsubParts ??= new Map()) }
  private cleanStart = true
  /** new filters accepted so far in the SUBSCRIBE being checked */
  private subscribing = 0
  /** SUBSCRIBE parts sent to aedes before the one being checked, not yet answered */
  private partsBefore = 0
  /** shared deliveries handed to aedes and not yet written */
  sharedUnseen = 0
  private nextInternalId = 1

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
  private auth: AuthState | undefined
  enhancedAuth: EnhancedAuthResult | undefined
  private pendingConnackAuthData: Buffer | undefined
  /** who the client authenticated as (user name, certificate CN, or SCRAM user) */
  authenticatedAs: string | undefined
  /** a session for the Client Identifier existed at CONNECT (session-claim.ts): Session Present when resumed */
  sessionExisted = false
  /** reason code of the DISCONNECT that ended the connection (either side), for lifecycle events */
  get disconnectReasonCode (): number | undefined { return this.disconnectReason }
  get disconnectedBy (): 'client' | 'server' | undefined { return this.disconnectBy }

  /** the client has subscribed with a Subscription Identifier (deliveries must look them up) */
  usesSubscriptionIds = false
  /** QoS 0 subscriptions may carry QoS 1/2 messages (`routeDeliveries`) */
  private deliveriesRouted = false

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
   * The CONNACK went out (`checkOutbound`): the frames the client sent after
   * its CONNECT are checked now, in order, if it was accepted, behind the
   * CONNACK; if it was refused they never are (inbound/connack-gate.ts).
   */
  private connackWritten (accepted: boolean): void {
    if (!accepted) {
      this.gate = afterConnack(false)
      this.pending.length = 0
      this.pendingHead = 0
      return
    }
    // the CONNACK is out, an AUTH exchange over: what comes now waits for aedes
    this.gate = ConnackGate.Waiting
    if (this.brokerConnacked) this.openGate()
  }

  /**
   * aedes finished writing the CONNACK (its 'connackSent'): the frames held
   * behind the CONNECT go to it from the next tick, once it counts the client
   * as acknowledged and handles packets at once rather than queueing them
   * (its queue holds only a few dozen).
   */
  brokerSentConnack (): void {
    this.brokerConnacked = true
    if (this.connackSent && this.accepted) this.openGate()
  }

  /** Both the CONNACK is queued for the socket and aedes counts the client as acknowledged. */
  private openGate (): void {
    if (this.gate === ConnackGate.Open) return
    this.gate = afterConnack(true)
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
      case PacketType.CONNECT: return this.onConnect(frame)
      case PacketType.PUBLISH: return (frame.flags & 0x01) === 0 ? onPublish(this, frame) : onRetainedPublish(this, frame)
      case PacketType.PUBACK: return onClientPuback(this, frame)
      case PacketType.PUBREC: return onClientPubrec(this, frame)
      case PacketType.PUBREL: return onClientPubrel(this, frame)
      case PacketType.PUBCOMP: return onClientPuback(this, frame)
      case PacketType.SUBSCRIBE: return this.onSubscribeInOrder(frame)
      case PacketType.UNSUBSCRIBE: return this.onUnsubscribe(frame)
      case PacketType.DISCONNECT: return this.onDisconnect(frame)
      case PacketType.AUTH: return this.onAuth(frame)
      default: return PASS
    }
  }

  // CONNECT (spec 3.1)

  /**
   * Steps:
   * 1. [MQTT-3.1.0-2] a second CONNECT is a Protocol Error;
   * 2. protocol name and level (inbound/connect.ts) [MQTT-3.1.2-1] [MQTT-3.1.2-2];
   * 3. a Will Topic over the topic length or level limits is refused with
   *    CONNACK 0x90, as a PUBLISH Topic Name over them gets 0x90;
   *    [MQTT-3.2.2-12] [MQTT-3.2.2-13] a Will above the Maximum QoS, or
   *    retained when retain is unavailable, is refused with CONNACK 0x9B / 0x9A;
   *    a Will whose Payload Format Indicator says UTF-8 and whose payload is
   *    not, with 0x99;
   * 4. learn the client's Receive Maximum, Maximum Packet Size, Topic Alias
   *    Maximum and Request Problem Information;
   * 5. [MQTT-3.2.0-1] [MQTT-3.1.4-6] the packets after it wait for the
   *    CONNACK (inbound/connack-gate.ts);
   * 6. an Authentication Method starts enhanced authentication (spec 4.12).
   */
  private onConnect (frame: Frame): Verdict {
    if (this.connectSeen) {
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'second CONNECT on one connection' }
    }
    this.connectSeen = true
    const inspection = inspectConnect(frame)
    switch (inspection.kind) {
      case 'bad-protocol-name':
        return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'protocol name is not MQTT' }
      case 'bad-version':
        // level 5 is only here with a name other than MQTT: the client reads an MQTT 5 CONNACK
        this.writeToClient(inspection.version === 5 ? UNSUPPORTED_PROTOCOL_VERSION_CONNACK_V5 : UNACCEPTABLE_PROTOCOL_VERSION_CONNACK)
        this.connackSent = true
        this.ctx.observer.connectRefused(ReasonCode.UnsupportedProtocolVersion)
        return { kind: 'close', reasonCode: ReasonCode.UnsupportedProtocolVersion, reason: `unsupported protocol level ${inspection.version}` }
      case 'malformed':
        this.version = inspection.version
        return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `malformed CONNECT: ${inspection.reason}` }
      case 'invalid':
        this.version = inspection.version
        return { kind: 'close', reasonCode: inspection.reasonCode, reason: `invalid CONNECT: ${inspection.reason}` }
      case 'ok':
        break
    }
    const packet = inspection.packet
    this.learnConnect(packet, inspection.version)
    if (this.version === 3 && packet.clientId === '') {
      // MQTT 3.1 (MQIsdp) has no empty Client Identifiers: return code 2, identifier rejected
      return { kind: 'close', reasonCode: ReasonCode.ClientIdentifierNotValid, reason: 'empty Client Identifier in MQTT 3.1' }
    }
    // what follows the CONNECT waits for its CONNACK (inbound/connack-gate.ts)
    this.gate = afterConnect(this.version === 5 && packet.properties?.authenticationMethod !== undefined)
    const refused = this.ctx.policy.admit(this, packet)
    if (refused !== undefined) return { kind: 'close', reasonCode: refused, reason: `connection refused: ${describeReasonCode(refused)}` }
    const will = packet.will
    if (will && willTopicOverLimits(will.topic, this.settings)) {
      // 0x90 as for a PUBLISH Topic Name over them (inbound/publish.ts); 3.1.1 has no such return code: closed (sendFinal)
      return { kind: 'close', reasonCode: ReasonCode.TopicNameInvalid, reason: 'Will Topic over the topic limits' }
    }
    if (will && (will.qos ?? 0) > this.settings.maximumQoS) {
      return { kind: 'close', reasonCode: ReasonCode.QoSNotSupported, reason: 'will QoS above the maximum' }
    }
    if (will?.retain === true && !this.settings.retainAvailable) {
      return { kind: 'close', reasonCode: ReasonCode.RetainNotSupported, reason: 'retained will while retain is unavailable' }
    }
    if (will?.properties?.payloadFormatIndicator === true && this.settings.validatePayloadFormat && typeof will.payload !== 'string' && !isUtf8(will.payload)) {
      // spec 3.1.3.2.3: the Server MAY validate the Will Payload against its format
      return { kind: 'close', reasonCode: ReasonCode.PayloadFormatInvalid, reason: 'Will Payload is not valid UTF-8' }
    }
    const method = packet.properties?.authenticationMethod
    if (this.version === 5 && method !== undefined) return this.startConnectAuth(packet, method)
    return { kind: 'replace', packets: [packet] }
  }

  private learnConnect (packet: IConnectPacket, version: ProtocolVersion): void {
    this.version = version
    this.connectClientId = packet.clientId
    this.cleanStart = packet.clean !== false
    // a resumed session's subscriptions are restored during CONNECT
    if (!this.cleanStart) this.routeDeliveries()
    this.username = packet.username
    this.log.bind({ clientId: packet.clientId || undefined })
    if (version === 5) {
      const props = packet.properties
      this.requestProblemInformation = props?.requestProblemInformation !== false
      this.connectSessionExpiry = props?.sessionExpiryInterval ?? 0
      this.clientMaximumPacketSize = props?.maximumPacketSize ?? 0
      // spec 3.1.2.11.3: an absent Receive Maximum means 65,535
      this.window.limit = props?.receiveMaximum ?? 65535
      const aliasMax = props?.topicAliasMaximum ?? 0
      this.aliases = this.settings.outboundTopicAliases && aliasMax > 0 ? new OutboundAliases(aliasMax) : undefined
    }
  }

  // AUTH (spec 3.15, 4.12)

  private startConnectAuth (connect: IConnectPacket, method: string): Verdict {
    const authenticator = this.ctx.authenticators.get(method)
    if (!authenticator) {
      // [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C and close
      return { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod, reason: `unknown authentication method ${method}` }
    }
    const exchange = authenticator.begin({
      method,
      clientId: connect.clientId,
      username: connect.username,
      remoteAddress: this.meta.remoteAddress,
      reauthentication: false,
      authenticatedAs: undefined
    })
    this.auth = { phase: 'connect', exchange, method, connect }
    return { kind: 'defer', decision: exchange.step(connect.properties?.authenticationData).then(step => this.onAuthStep(step)) }
  }

  /**
   * Steps:
   * 1. an AUTH must carry the Authentication Method of the exchange [MQTT-4.12.0-5];
   * 2. during CONNECT, only reason 0x18 (continue), spec 3.15.2.1;
   * 3. after CONNACK, 0x19 starts a re-authentication with the same method
   *    [MQTT-4.12.1-1], and 0x18 continues one;
   * 4. anything else is a Protocol Error.
   */
  private onAuth (frame: Frame): Verdict {
    if (this.version !== 5) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH before MQTT 5 CONNECT' }
    const fault = checkAuth(frame)
    if (fault !== undefined) return { kind: 'close', reasonCode: fault.reasonCode, reason: `invalid AUTH: ${fault.reason}` }
    const packet = decodeFrame(frame, 5)
    if (packet instanceof Error || packet.cmd !== 'auth') {
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed AUTH' }
    }
    const method = packet.properties?.authenticationMethod
    const data = packet.properties?.authenticationData
    if (this.auth) {
      if (method !== this.auth.method || packet.reasonCode !== ReasonCode.ContinueAuthentication) {
        return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH out of sequence' }
      }
      return { kind: 'defer', decision: this.auth.exchange.step(data).then(step => this.onAuthStep(step)) }
    }
    if (packet.reasonCode === ReasonCode.ReAuthenticate && this.accepted && this.enhancedAuth && method === this.enhancedAuth.method) {
      const authenticator = this.ctx.authenticators.get(method)
      if (!authenticator) return { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod, reason: 'method no longer available' }
      const exchange = authenticator.begin({
        method,
        clientId: this.client.id,
        username: this.username,
        remoteAddress: this.meta.remoteAddress,
        reauthentication: true,
        authenticatedAs: this.enhancedAuth.username
      })
      this.auth = { phase: 'reauth', exchange, method }
      return { kind: 'defer', decision: exchange.step(data).then(step => this.onAuthStep(step)) }
    }
    return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'unexpected AUTH' }
  }

  private onAuthStep (step: AuthStep): Verdict {
    const state = this.auth
    if (!state) return DROP
    switch (step.kind) {
      case 'continue': {
        const auth: IAuthPacket = {
          cmd: 'auth',
          reasonCode: ReasonCode.ContinueAuthentication,
          properties: step.data ? { authenticationMethod: state.method, authenticationData: step.data } : { authenticationMethod: state.method }
        }
        this.sendPacket(auth)
        return DROP
      }
      case 'failure':
        this.auth = undefined
        this.log.info({ method: state.method, reason: step.reason }, 'authentication failed')
        return { kind: 'close', reasonCode: step.reasonCode, reason: step.reason ?? 'authentication failed' }
      case 'success': {
        this.auth = undefined
        if (state.phase === 'reauth') {
          this.enhancedAuth = { method: state.method, username: step.username ?? this.enhancedAuth?.username }
          const auth: IAuthPacket = {
            cmd: 'auth',
            reasonCode: ReasonCode.Success,
            properties: step.data ? { authenticationMethod: state.method, authenticationData: step.data } : { authenticationMethod: state.method }
          }
          this.sendPacket(auth)
          return DROP
        }
        this.enhancedAuth = { method: state.method, username: step.username ?? state.connect.username }
        this.pendingConnackAuthData = step.data
        // aedes refuses CONNECTs carrying an Authentication Method (0x8C): it
        // gets the CONNECT without it, the CONNACK gets it back (onConnack)
        const connect: IConnectPacket = { ...state.connect, properties: { ...state.connect.properties } }
        delete connect.properties?.authenticationMethod
        delete connect.properties?.authenticationData
        return { kind: 'replace', packets: [connect] }
      }
    }
  }

  // PUBLISH (spec 3.3)

  /** A SUBSCRIBE waits for the retained PUBLISHes before it to be routed (inbound/retained-order.ts). */
  private onSubscribeInOrder (frame: Frame): Verdict {
    const routed = this.retainedOrder?.whenRouted()
    if (routed === undefined) return this.onSubscribe(frame)
    return { kind: 'defer', decision: routed.then(() => this.onSubscribe(frame)) }
  }

  /** aedes routed a retained QoS 0/1 PUBLISH of the client, or refused it (lib/broker.ts). */
  retainedRouted (): void {
    this.retainedOrder?.routed()
  }

  // PublishInHost (flows/publish-in.ts)

  awaitingSuback (): boolean {
    return this._subParts !== undefined && this._subParts.size > 0
  }

  takePublish (): boolean {
    return this.ctx.policy.takePublish(this)
  }

  mayPublish (topic: string): boolean {
    return this.ctx.policy.mayPublish(this, topic)
  }

  // acknowledgements from the client (spec 3.4-3.7)

  // SUBSCRIBE (spec 3.8)

  /**
   * Splits a SUBSCRIBE (spec 3.8): the raw packet is checked first
   * (`checkSubscribeFrame`: flags, packet id, properties, UTF-8), then every
   * filter on its own (inbound/subscribe.ts); `$share/` filters join a shared group here
   * (spec 4.8.2), the others go to aedes one per SUBSCRIBE; the SUBACK
   * merges every answer in the order of the filters [MQTT-3.8.4-7].
   */
  private onSubscribe (frame: Frame): Verdict {
    const bad = checkSubscribeFrame(frame, this.version)
    if (bad !== undefined) return { kind: 'close', reasonCode: bad.reasonCode, reason: bad.reason }
    const packet = decodeFrame(frame, this.version)
    if (packet instanceof Error || packet.cmd !== 'subscribe') {
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed SUBSCRIBE' }
    }
    if (packet.subscriptions.length === 0) {
      // [MQTT-3.8.3-2] a SUBSCRIBE without a Topic Filter is a Protocol Error
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'SUBSCRIBE without a topic filter' }
    }
    this.routeDeliveries()
    this.subscribing = 0
    this.partsBefore = this.subParts.size
    const pending = new PendingSuback(packet.messageId ?? 0, packet.subscriptions.length)
    const parts: Packet[] = []
    const joins: Array<() => void> = []
    if (packet.properties?.subscriptionIdentifier !== undefined) this.usesSubscriptionIds = true
    for (let index = 0; index < packet.subscriptions.length; index++) {
      const sub = packet.subscriptions[index] as ISubscription
      const shared = parseSharedFilter(sub.topic)
      if (shared !== null) {
        const verdict = this.checkShared(packet, sub, shared)
        if (verdict.kind === 'close') return verdict
        if (verdict.kind === 'reject') pending.settle(index, verdict.code)
        else joins.push(() => this.joinShared(pending, index, sub, verdict.qos, packet.properties?.subscriptionIdentifier))
        continue
      }
      const verdict = checkSubscription(packet, sub, this.version ?? 4, this.settings)
      if (verdict.kind === 'reject') {
        this.log.repeated('debug', 'subscription refused ' + verdict.code, { filter: sub.topic, reasonCode: describeReasonCode(verdict.code) }, 'subscription refused')
        pending.settle(index, verdict.code)
        continue
      }
      const limited = this.subscriptionLimit(sub.topic)
      if (limited !== undefined) {
        pending.settle(index, limited)
        continue
      }
      const id = this.allocateInternalId()
      this.subParts.set(id, { pending, index })
      const part: ISubscribePacket = { cmd: 'subscribe', messageId: id, subscriptions: [verdict.subscription] }
      if (packet.properties) part.properties = packet.properties
      parts.push(part)
    }
    for (const join of joins) join()
    if (pending.complete) {
      this.writeToClient(this.encodeSuback(pending))
      return DROP
    }
    return parts.length > 0 ? { kind: 'replace', packets: parts } : DROP
  }

  /**
   * A `$share/{name}/{filter}` subscription (spec 4.8.2):
   * 1. [MQTT-4.8.2-1] [MQTT-4.8.2-2] a malformed share name or filter: 0x8F;
   * 2. [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error;
   * 3. shared subscriptions off: 0x9E;
   * 4. wildcards off and a wildcard filter: 0xA2; QoS capped at the maximum.
   */
  private checkShared (packet: ISubscribePacket, sub: ISubscription, shared: ReturnType<typeof parseSharedFilter>): { kind: 'close', reasonCode: number, reason: string } | { kind: 'reject', code: number } | { kind: 'join', qos: 0 | 1 | 2 } {
    const v5 = this.version === 5
    if (shared === 'invalid' || shared === null) return { kind: 'reject', code: v5 ? ReasonCode.TopicFilterInvalid : ReasonCode.UnspecifiedError }
    if (sub.nl === true) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'No Local on a shared subscription' }
    if (!this.ctx.shared) return { kind: 'reject', code: v5 ? ReasonCode.SharedSubscriptionsNotSupported : ReasonCode.UnspecifiedError }
    const plain = checkSubscription(packet, { ...sub, topic: shared.filter }, this.version ?? 4, this.settings)
    if (plain.kind === 'reject') return plain
    if (!this.settings.wildcardSubscriptionAvailable && hasWildcard(shared.filter)) {
      return { kind: 'reject', code: v5 ? ReasonCode.WildcardSubscriptionsNotSupported : ReasonCode.UnspecifiedError }
    }
    const limited = this.subscriptionLimit(sub.topic)
    if (limited !== undefined) return { kind: 'reject', code: limited }
    return { kind: 'join', qos: plain.subscription.qos }
  }

  /**
   * The ACL (a `$share/` filter is checked against its filter, lib/auth/acl.ts)
   * and the per-client subscription limit: 0x87 / 0x97 (0x80 for 3.1.1).
   */
  private subscriptionLimit (filter: string): number | undefined {
    const v5 = this.version === 5
    if (!this.ctx.policy.maySubscribe(this, filter)) {
      this.log.repeated('info', 'subscription not authorized', { filter }, 'subscription not authorized')
      return v5 ? ReasonCode.NotAuthorized : ReasonCode.UnspecifiedError
    }
    const subs = clientSubscriptions(this.client)
    if (subs[filter] === undefined) {
      // held, being made (earlier SUBSCRIBEs not yet answered, this one so far), and shared
      const count = Object.keys(subs).length + this.partsBefore + this.subscribing + (this.ctx.shared?.membershipCount(this.client.id) ?? 0)
      if (count >= this.ctx.policy.maxSubscriptions) {
        this.log.repeated('warn', 'subscription limit reached', { filter, limit: this.ctx.policy.maxSubscriptions }, 'subscription limit reached')
        return v5 ? ReasonCode.QuotaExceeded : ReasonCode.UnspecifiedError
      }
      this.subscribing++
    }
    return undefined
  }

  private joinShared (pending: PendingSuback, index: number, sub: ISubscription, qos: 0 | 1 | 2, si: number | undefined): void {
    const shared = this.ctx.shared as SharedSubscriptions
    const filter = (parseSharedFilter(sub.topic) as { filter: string }).filter
    const persistent = !this.client.clean
    shared.join(this, sub.topic, filter, { qos, si, rap: sub.rap === true }, persistent).then((result) => {
      const code = result.ok ? result.qos : result.reasonCode
      if (pending.settle(index, code)) this.writeToClient(this.encodeSuback(pending))
    }, (err: unknown) => {
      this.log.error({ err, filter: sub.topic }, 'joining a shared subscription failed')
      if (pending.settle(index, ReasonCode.UnspecifiedError)) this.writeToClient(this.encodeSuback(pending))
    })
  }

  /**
   * UNSUBSCRIBE (spec 3.10): `$share/` filters leave their group here; the
   * others go to aedes as one UNSUBSCRIBE, and the UNSUBACKs are merged.
   */
  private onUnsubscribe (frame: Frame): Verdict {
    const bad = checkSubscribeFrame(frame, this.version)
    if (bad !== undefined) return { kind: 'close', reasonCode: bad.reasonCode, reason: bad.reason }
    const packet = decodeFrame(frame, this.version)
    if (packet instanceof Error || packet.cmd !== 'unsubscribe') {
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed UNSUBSCRIBE' }
    }
    const shared = this.ctx.shared
    const sharedIndexes: number[] = []
    const rest: string[] = []
    const restIndexes: number[] = []
    packet.unsubscriptions.forEach((topic, i) => {
      if (shared && topic.startsWith('$share/')) sharedIndexes.push(i)
      else { rest.push(topic); restIndexes.push(i) }
    })
    if (sharedIndexes.length === 0) {
      // [MQTT-3.10.3-2] an UNSUBSCRIBE without a Topic Filter is a Protocol Error
      if (packet.unsubscriptions.length === 0) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'UNSUBSCRIBE without a topic filter' }
      return PASS
    }
    const codes = new Array<number>(packet.unsubscriptions.length).fill(ReasonCode.Success)
    const id = rest.length > 0 ? this.allocateInternalId() : 0
    const merge = { messageId: packet.messageId ?? 0, codes, indexes: restIndexes }
    const leaves = sharedIndexes.map(async (i) => {
      const left = await (shared as SharedSubscriptions).leave(this.client.id, packet.unsubscriptions[i] as string)
      codes[i] = left ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted
    })
    const decision = Promise.all(leaves).then((): Verdict => {
      if (rest.length === 0) {
        this.writeToClient(this.encodeUnsuback(merge.messageId, codes))
        return DROP
      }
      this.unsubParts.set(id, merge)
      const part: IUnsubscribePacket = { cmd: 'unsubscribe', messageId: id, unsubscriptions: rest }
      if (packet.properties) part.properties = packet.properties
      return { kind: 'replace', packets: [part] }
    })
    return { kind: 'defer', decision }
  }

  private encodeUnsuback (messageId: number, codes: number[]): Buffer {
    const packet: IUnsubackPacket = { cmd: 'unsuback', messageId, granted: this.version === 5 ? codes : [] }
    return encode(packet, this.version)
  }

  /**
   * aedes binds a QoS 0 subscription to `client.deliver0`; routed, a message
   * that also matches a higher-QoS subscription of the client goes out at that
   * QoS (lib/protocol/delivery.ts). Set up before aedes makes the client's
   * first subscription (a SUBSCRIBE, or a CONNECT resuming a session): until
   * then `deliver0` only carries QoS 0 messages, which it sends as they are.
   */
  private routeDeliveries (): void {
    if (this.deliveriesRouted) return
    this.deliveriesRouted = true
    const client = this.client
    routeQoS0Delivery(client, (packet) => shouldDeliverWithQoS(client, packet))
  }

  private allocateInternalId (): number {
    for (;;) {
      const id = this.nextInternalId
      this.nextInternalId = id >= 0xffff ? 1 : id + 1
      if (!this.subParts.has(id) && !this.unsubParts.has(id)) return id
    }
  }

  /**
   * A v5 DISCONNECT is checked before aedes applies it (inbound/disconnect-auth.ts):
   * a repeated property, or a Session Expiry Interval set after a CONNECT
   * with 0 [MQTT-3.14.2-2], is answered with DISCONNECT 0x82 and the session
   * keeps the expiry the CONNECT gave it.
   */
  private onDisconnect (frame: Frame): Verdict {
    if (this.version === 5) {
      const request = checkDisconnect(frame, this.connectSessionExpiry)
      if ('reason' in request) return { kind: 'close', reasonCode: request.reasonCode, reason: `invalid DISCONNECT: ${request.reason}` }
    }
    this.disconnectBy = 'client'
    this.disconnectReason = frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
    if (this.version === 5 && this.disconnectReason !== ReasonCode.Success && this.disconnectReason !== ReasonCode.DisconnectWithWill) {
      // [MQTT-3.14.4-3] [MQTT-3.1.2-8] only a DISCONNECT 0x00 discards the Will; aedes
      // keeps it for 0x04 alone, so any other client reason is handed to it as 0x04
      const packet = decodeOther(frame, this.version)
      if (packet instanceof Error) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: packet.message }
      return { kind: 'replace', packets: [{ ...packet, reasonCode: ReasonCode.DisconnectWithWill } as Packet] }
    }
    return PASS
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

  /**
   * onConnack starts a resumed session's drain by setting these three: the
   * write path's state is `outMode` (flows/client-writer.ts), the queue
   * sink's `sinkPhase` (flows/fast-paths.ts).
   */
  private set holdingDrain (_: true) { startResumedDrain(this) }
  private set connackAlone (_: true) { startResumedDrain(this) }
  private set queueSinkArmed (_: true) { armQueueSink(this) }

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
        out.push(this.fitConnack(this.onConnack(frame)))
        this.connackWritten(this.accepted)
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
      case PacketType.SUBACK: this.onSuback(frame, out); return
      case PacketType.UNSUBACK: this.onUnsuback(frame, out); return
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

  /**
   * CONNACK: an accepted MQTT 5 CONNACK states culex's capabilities
   * (spec 3.2.2.3): Maximum QoS [MQTT-3.2.2-9], Retain Available, Wildcard,
   * Subscription Identifier and Shared Subscription Available, and the
   * Authentication Method and Data of an enhanced authentication (spec
   * 3.2.2.3.17, 4.12).
   */
  private onConnack (frame: Frame): Buffer {
    this.connackSent = true
    const code = frame.buf[frame.headerLength + 1] as number
    this.accepted = code === 0
    if (!this.accepted) {
      this.ctx.observer.connectRefused(this.version === 5 ? code : v311ToV5ConnackCode(code))
      this.log.info({ reasonCode: this.version === 5 ? describeReasonCode(code) : code }, 'connection refused')
      if (this.version !== 5 && code > 5) {
        // [MQTT-3.2.2-6] 3.1.1 knows return codes 1-5; aedes answers 6 to a keep-alive over its limit
        const buf = Buffer.from(frame.buf)
        buf[frame.headerLength + 1] = 3
        return buf
      }
      return frame.buf
    }
    if (!this.cleanStart && (this.sessionExisted || this.ctx.shared?.isMember(this.client.id) === true)) {
      // [MQTT-3.2.2-2] [MQTT-3.2.2-3] a resumed session is present whether or not it holds
      // subscriptions (aedes says 1 only when it restored some), or holds only shared ones
      frame.buf[frame.headerLength] = (frame.buf[frame.headerLength] as number) | 0x01
    }
    if (this.version === 5) {
      // a resumed session's subscriptions are restored before CONNACK
      const subs = clientSubscriptions(this.client)
      for (const filter in subs) if (subs[filter]?.si !== undefined) { this.usesSubscriptionIds = true; break }
    }
    // an empty Client Identifier was assigned one by the broker: log under it
    if (!this.connectClientId) this.log.bind({ clientId: this.client.id })
    // a present session may have messages queued: aedes sends them next (`holdingDrain`)
    if (((frame.buf[frame.headerLength] as number) & 0x01) !== 0) this.holdingDrain = this.queueSinkArmed = this.connackAlone = true
    this.ctx.observer.clientAccepted(this.meta.transport, this.version ?? 4)
    this.log.info({ version: this.version, auth: this.enhancedAuth?.method }, 'client connected')
    if (this.version !== 5) return frame.buf
    if (this.enhancedAuth) return this.rewriteConnack(frame)
    // without enhanced authentication the rewrite depends only on aedes' bytes
    // and the broker's settings, so connections share the result
    let rewritten = connackRewrites.get(this.settings)
    if (!rewritten) connackRewrites.set(this.settings, rewritten = new Map())
    const key = frame.buf.toString('latin1')
    let buf = rewritten.get(key)
    if (!buf) {
      // broker-assigned client ids make every CONNACK different: keep the cache small
      if (rewritten.size >= CONNACK_CACHE_SIZE) rewritten.clear()
      buf = this.rewriteConnack(frame)
      rewritten.set(key, buf)
    }
    return buf
  }

  private rewriteConnack (frame: Frame): Buffer {
    const packet = decodeFrame(frame, 5) as IConnackPacket | Error
    if (packet instanceof Error) return frame.buf
    const s = this.settings
    const props: NonNullable<IConnackPacket['properties']> = { ...packet.properties }
    if (s.maximumQoS < 2) props.maximumQoS = s.maximumQoS
    if (!s.retainAvailable) props.retainAvailable = false
    if (!s.wildcardSubscriptionAvailable) props.wildcardSubscriptionAvailable = false
    if (!s.subscriptionIdentifierAvailable) props.subscriptionIdentifiersAvailable = false
    props.sharedSubscriptionAvailable = s.sharedSubscriptionAvailable
    if (this.enhancedAuth) {
      props.authenticationMethod = this.enhancedAuth.method
      if (this.pendingConnackAuthData) props.authenticationData = this.pendingConnackAuthData
      this.pendingConnackAuthData = undefined
    }
    return encode({ ...packet, properties: props }, 5)
  }

  /**
   * [MQTT-3.1.2-24] a CONNACK too large for the client is made smaller
   * (outbound/fit-connack.ts: Reason String and User Properties first
   * [MQTT-3.2.2-19] [MQTT-3.2.2-20]); one that still does not fit is not
   * sent, and the connection closes.
   */
  private fitConnack (buf: Buffer): Buffer {
    const max = this.clientMaximumPacketSize
    if (max === 0 || buf.length <= max) return buf
    const smaller = fitConnack(buf, max)
    if (smaller !== undefined) return smaller
    this.log.warn({ bytes: buf.length, maximum: max }, 'CONNACK larger than the client accepts: not sent, closing')
    // not from inside aedes' write of the CONNACK
    process.nextTick(() => this.close('CONNACK larger than the client\'s Maximum Packet Size'))
    return Buffer.alloc(0)
  }

  private onSuback (frame: Frame, out: Buffer[]): void {
    const id = ackPacketId(frame)
    const part = this.subParts.get(id)
    if (!part) { out.push(frame.buf); return }
    this.subParts.delete(id)
    if (this.subParts.size === 0) this.retainedOrder?.subscriptionsAnswered()
    const packet = decodeFrame(frame, this.version) as ISubackPacket | Error
    const code = packet instanceof Error ? ReasonCode.UnspecifiedError : (packet.granted[0] as number | undefined) ?? ReasonCode.UnspecifiedError
    if (part.pending.settle(part.index, code)) out.push(this.encodeSuback(part.pending))
  }

  private onUnsuback (frame: Frame, out: Buffer[]): void {
    const id = ackPacketId(frame)
    const merge = this.unsubParts.get(id)
    if (!merge) { out.push(frame.buf); return }
    this.unsubParts.delete(id)
    const packet = decodeFrame(frame, this.version) as IUnsubackPacket | Error
    const granted = packet instanceof Error ? [] : (packet.granted ?? [])
    merge.indexes.forEach((target, i) => { merge.codes[target] = (granted[i] as number | undefined) ?? ReasonCode.Success })
    out.push(this.encodeUnsuback(merge.messageId, merge.codes))
  }

  private encodeSuback (pending: PendingSuback): Buffer {
    const packet: ISubackPacket = { cmd: 'suback', messageId: pending.messageId, granted: pending.codes.map(c => c ?? ReasonCode.UnspecifiedError) }
    return encode(packet, this.version)
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

  private writeToClient (buf: Buffer): void {
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

/** CONNACK-only reason codes have no place in a DISCONNECT (spec 3.14.2.1). */
function disconnectReasonCode (code: number): number {
  switch (code) {
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
    case ReasonCode.Banned:
      return ReasonCode.NotAuthorized
    case ReasonCode.UnsupportedProtocolVersion:
    case ReasonCode.ClientIdentifierNotValid:
    case ReasonCode.ServerUnavailable:
    case ReasonCode.PacketIdentifierInUse:
    case ReasonCode.PacketIdentifierNotFound:
      return ReasonCode.UnspecifiedError
    default:
      return code
  }
}

/** Maps the error aedes closed a connection with to the reason code the client is told. */
function classifyBrokerError (err: Error): number {
  const message = err.message
  if (message === 'keep alive timeout') return ReasonCode.KeepAliveTimeout // [MQTT-3.1.2-22] spec 3.14.2.1
  if (message === 'packet too large') return ReasonCode.PacketTooLarge
  if (message === 'connect did not arrive in time') return ReasonCode.MaximumConnectTime
  if (message === 'Client queue limit reached') return ReasonCode.QuotaExceeded
  if (message.includes('not allowed') || message.includes('impossible to') || message.includes('too many levels')) {
    return ReasonCode.ProtocolError
  }
  // mqtt-packet's decoder: the bytes were not a valid packet
  if (/^(Invalid|Malformed|Packet too short|Cannot parse)/i.test(message)) return ReasonCode.MalformedPacket
  return ReasonCode.UnspecifiedError
}
