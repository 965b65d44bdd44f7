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
 * The frames go through flows/inbound.ts and flows/outbound.ts, one flow
 * per packet type, each following the spec: CONNECT and its CONNACK (3.1,
 * 3.2: flows/connect.ts), AUTH (3.15, 4.12: flows/auth.ts), PUBLISH both
 * ways (3.3, 4.9: flows/publish-in.ts, flows/publish-out.ts), the
 * acknowledgements (3.4-3.7: flows/acks.ts), SUBSCRIBE and UNSUBSCRIBE
 * (3.8-3.11: flows/subscribe.ts), DISCONNECT (3.14: flows/disconnect.ts).
 * The connection keeps the state, the socket listeners and the public
 * surface; each flow module sees it through a small host interface of its own.
 */
import type { Duplex } from 'node:stream'
import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { ConnectionLogger, type Logger } from '../logging.js'
import type { Packet } from 'mqtt-packet'
import { FrameReader, type Frame, type TopicMemo } from './frame.js'
import { encode, type ProtocolVersion } from './codec.js'
import type { SubscribePolicy } from './inbound/subscribe.js'
import type { PublishPolicy } from './inbound/publish.js'
import { OutboundWindow } from './outbound/flow-control.js'
import type { RetainedOrder } from './inbound/retained-order.js'
import { ConnackGate, type ConnackGateState } from './inbound/connack-gate.js'
import { PacketIdTable } from './packet-id-table.js'
import { OutboundAliases } from './outbound/topic-alias.js'
import { ReasonCode, describeReasonCode } from './reason-codes.js'
import type { Authenticators } from './auth.js'
import { compactClientListeners, hardenClient, handleStream, pacePackets, injectPacket, wheelKeepAlive, AliasTable, type PacketPacer } from '../aedes-internals.js'
import type { QueueAck, QueueSink } from '../persistence/types.js'
import { BrokerSide, type BrokerSideOwner } from './broker-side.js'
import type { BrokerObserver } from '../observer.js'
import type { DirectSend, MemberLink, SharedDelivery, SharedSubscriptions } from '../shared/dispatcher.js'
import type { Transport } from './transport-kind.js'
import type { ConnectionPolicy } from '../auth/admission.js'
import type { Verdict } from './flows/verdict.js'
import { brokerWroteConnack } from './flows/connect.js'
import type { AuthState, EnhancedAuthResult } from './flows/auth.js'
import { subscribesPending, type SubscribeState } from './flows/subscribe.js'
import { classifyBrokerError, sendFinal } from './flows/disconnect.js'
import { onPublished as publishedAck, onPublishFailed, type AckFlow, type InboundFlow } from './flows/acks.js'
import { fitBuf, shedHeld } from './flows/publish-out.js'
import { ackQueued, armQueueSink, disarmQueueSink, isRepeat, mayTakeEncoded, publishShared, queueSink, room, sealEncoded, sendEncoded, qos0Batch, sendShared, type EncodeOnceState, type FastPathHost, type QueueSent, type SinkPhase } from './flows/fast-paths.js'
import type { QoS0Batch } from './outbound/qos0-batch.js'
import { endHold, flushAll, progress, resumeBroker, startGathering, startResumedDrain, write, type OutboundMode, type Pressure } from './flows/client-writer.js'
import { fromBroker, type OutboundHost } from './flows/outbound.js'
import { claimRetained, type RetainedOutHost } from './flows/retained-out.js'
import type { GrantedSubscription, RetainedLookup } from '../aedes-internals.js'
import { checkFrame, dropHeldFrames, fromClient, NO_FRAMES, packetDone, resumeHeldFrames, type FlowsHost, type InboundHost } from './flows/inbound.js'

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
  /** the forward steps of a live QoS 0 delivery the gateway takes whole (lib/broker/hooks/forward.ts `forwardLiveQoS0`); unset: aedes delivers every message */
  readonly forwardLive?: LiveForward
  /** called once the connection is closed on both sides */
  onClose (conn: Connection): void
}

/** The forward steps of a live QoS 0 delivery, then its encoding into the connection's `qos0Batch`; true: taken; null: dropped; undefined: not for the gateway (aedes delivers it). */
export type LiveForward = (client: Client, conn: Connection, version: ProtocolVersion, packet: AedesPublishPacket) => true | null | undefined

export interface ConnectionMeta {
  transport: Transport
  remoteAddress: string | undefined
  /** CN of a verified TLS client certificate */
  certificateCN?: string | undefined
}

/** The gateway of a socket (the socket listeners are shared functions, not closures per connection). */
const kConnection = Symbol('culex connection')
interface Tagged { [kConnection]: Connection }

export class Connection implements MemberLink, PacketPacer, BrokerSideOwner, FlowsHost, FastPathHost, InboundHost, OutboundHost, RetainedOutHost {
  readonly client: Client
  readonly log: ConnectionLogger
  readonly side: BrokerSide
  readonly inbound: FrameReader
  readonly outbound = new FrameReader(0)
  readonly settings: ProtocolSettings

  version: ProtocolVersion | undefined
  /** the Client Identifier of the CONNECT (aedes may assign one: `client.id`) */
  connectClientId: string | undefined
  username: string | undefined
  connectSeen = false
  connackSent = false
  accepted = false
  disconnectSent = false
  private closed = false
  socketPaused = false
  /** reason code of the DISCONNECT that ended the connection, either side's (flows/disconnect.ts) */
  disconnectReason: number | undefined
  disconnectBy: 'client' | 'server' | undefined

  // what the client told us in CONNECT
  requestProblemInformation = true
  /** the CONNECT's Session Expiry Interval, for [MQTT-3.14.2-2] */
  connectSessionExpiry = 0
  clientMaximumPacketSize = 0

  // inbound (flows/inbound.ts)
  pending: Frame[] = NO_FRAMES
  pendingHead = 0
  deferred = false
  /** what happens to frames between CONNECT and CONNACK (inbound/connack-gate.ts) */
  gate: ConnackGateState = ConnackGate.Open
  /** the socket is paused while frames wait for the CONNACK */
  heldPaused = false
  /** aedes finished writing the CONNACK ('connackSent') */
  brokerConnacked = false
  /** a retained PUBLISH and a SUBSCRIBE take effect in the client's order (made on the first retained PUBLISH) */
  retainedOrder: RetainedOrder | undefined
  /** the last Topic Name the client published to (frame.ts), made on the first PUBLISH */
  topicMemo: TopicMemo | undefined
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
  queueSent: QueueSent | undefined
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
    fromClient(this[kConnection], chunk)
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
  room (): number { return room(this) }
  publish (packet: SharedDelivery, done: (err?: Error) => void): void { publishShared(this, packet, done) }
  /** A shared QoS 1 delivery the gateway sends itself (flows/fast-paths.ts); undefined: aedes' path (`publish`). */
  sendShared (packet: SharedDelivery): DirectSend { return sendShared(this, packet) }

  /** session state is ready (aedes' clientReady, after its queued messages): shared groups may deliver */
  ready (): void {
    // after aedes' one-time 'connected' listener, which runs right after this
    process.nextTick(compactClientListeners, this.client)
    disarmQueueSink(this)
    endHold(this)
    const shared = this.ctx.shared
    // a client in no group has nothing to restore (and no promise to make per connect)
    if (shared === undefined || !shared.isMember(this.client.id)) return
    shared.memberConnected(this, this.cleanStart).catch((err: unknown) => this.log.error({ err }, 'restoring shared subscriptions failed'))
  }

  // aedes' side (lib/broker/, aedes-internals.ts)

  /** aedes finished a packet (aedes-internals.ts `pacePackets`) */
  packetDone (): void { packetDone(this) }
  /** aedes finished writing the CONNACK (its 'connackSent'): the frames held behind the CONNECT may go to it (flows/connect.ts). */
  brokerSentConnack (): void {
    wheelKeepAlive(this.client)
    brokerWroteConnack(this)
  }
  /** Bytes aedes wrote (flows/outbound.ts); true: it may write more at once, else when the client makes progress (flows/client-writer.ts). */
  fromBroker (chunks: Buffer[], writtenAt: number = Date.now()): boolean { return fromBroker(this, chunks, writtenAt) }
  /** aedes routed a retained QoS 0/1 PUBLISH of the client, or refused it (lib/broker/hooks/publish.ts). */
  retainedRouted (): void { this.retainedOrder?.routed() }
  /** aedes finished publishing the client's message `packetId` (its `published` hook): its PUBACK may go (flows/acks.ts). */
  onPublished (packetId: number): void { publishedAck(this, packetId) }
  /** aedes could not publish the client's QoS 1 message `packetId` (a refused store write): MQTT 5 gets its PUBACK with `reasonCode`; false: not answered (flows/acks.ts). */
  publishFailed (packetId: number, reasonCode: number, reason: string): boolean { return onPublishFailed(this, packetId, reasonCode, reason) }
  /** A resumed session's queue, taken from the store directly (flows/fast-paths.ts); offered once. */
  queueSink (acknowledge: QueueAck): QueueSink | undefined { return queueSink(this, acknowledge) }
  ackQueued (packetId: number): boolean { return ackQueued(this, packetId) }
  /** A QoS 0 message encoded once for all its subscribers (flows/fast-paths.ts); false: aedes delivers it. */
  sendEncoded (frame: Frame): boolean { return sendEncoded(this, frame) }
  /**
   * A live QoS 0 message on aedes' QoS 0 path, taken whole (flows/subscribe.ts
   * `routeDeliveries`): when the gateway can send an encoded message now, the
   * forward steps run and the message is encoded into the batch, as `sendEncoded` would
   * have had it; false: aedes delivers it (and asks authorizeForward).
   */
  takeLiveQoS0 (packet: AedesPublishPacket): boolean {
    const forward = this.ctx.forwardLive
    const version = this.version
    if (forward === undefined || version === undefined || packet.qos !== 0 || typeof packet.brokerId !== 'string' || !mayTakeEncoded(this)) return false
    return forward(this.client, this, version, packet) !== undefined
  }
  /** The QoS 0 messages going out at the next setImmediate, written into directly (flows/fast-paths.ts). */
  qos0Batch (): QoS0Batch { return qos0Batch(this) }
  /** [MQTT-3.3.4-2] a copy of the message offered last, for another of the client's subscriptions (flows/fast-paths.ts). */
  isRepeat (brokerId: string, brokerCounter: number): boolean { return isRepeat(this, brokerId, brokerCounter) }
  /** aedes is about to write a message to this client: encoded messages after this one wait for it. */
  sealEncoded (): void { sealEncoded(this) }
  /** A SUBSCRIBE's retained messages, sent by the gateway (flows/retained-out.ts); false: aedes sends them. */
  claimRetained (subscriptions: readonly GrantedSubscription[], lookup: () => RetainedLookup): boolean { return claimRetained(this, subscriptions, lookup) }
  writableAgain (ms: number): Promise<void> {
    const socket = this.socket
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        socket.off('drain', done)
        socket.off('close', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      socket.once('drain', done)
      socket.once('close', done)
    })
  }

  // the flows' host interfaces (flows/*.ts)

  check (frame: Frame): Verdict { return checkFrame(this, frame) }
  dropHeldFrames (): void { dropHeldFrames(this) }
  resumeHeldFrames (): void { resumeHeldFrames(this) }
  awaitingSuback (): boolean { return subscribesPending(this) }
  takePublish (): boolean { return this.ctx.policy.takePublish(this) }
  mayPublish (topic: string): boolean { return this.ctx.policy.mayPublish(this, topic) }
  mayReceive (topic: string): boolean { return this.ctx.policy.mayReceive(this, topic) }
  awaitDrain (): void { this.socket.once('drain', Connection.onSocketDrain) }
  brokerMayWrite (): void { this.side.taken() }
  shed (): void { shedHeld(this) }

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

  writeToClient (buf: Buffer): void { write(this, [buf]) }
  expectRetained (): void { startGathering(this) }

  /** Sends a packet the gateway built itself, fitted to the client's Maximum Packet Size (flows/publish-out.ts `fitBuf`). */
  sendPacket (packet: Packet): void { write(this, [fitBuf(this, encode(packet, this.version))]) }

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
    sendFinal(this, reasonCode, reason)
    this.close(reason)
  }

  /** A server-initiated DISCONNECT (v5) or close, for culex's own reasons (e.g. rate limits, ACL reload). */
  disconnect (reasonCode: number, reason: string): void {
    if (this.closed) return
    this.log.info({ reasonCode: describeReasonCode(reasonCode), reason }, 'disconnecting client')
    sendFinal(this, reasonCode, reason)
    this.close(reason)
  }

  /** Broker shutdown: DISCONNECT 0x8B to every v5 client [MQTT-3.14.4-1], then close. */
  shutdown (): void {
    if (this.closed) return
    sendFinal(this, ReasonCode.ServerShuttingDown)
    this.close('server shutting down')
  }

  /** aedes closed or destroyed its side; `err` says why when it was an error. */
  brokerClosed (err: Error | null): void {
    if (this.closed) return
    if (err) {
      const code = classifyBrokerError(err)
      this.log.debug({ err: err.message }, 'broker closed the connection')
      sendFinal(this, code)
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
