/**
 * The protocol gateway: one per network connection, between the transport
 * socket and aedes. aedes reads and writes a Duplex (`BrokerSide`) that the
 * gateway feeds; the gateway splits both byte streams into frames
 * (frame.ts), answers what aedes would get wrong or only answer by closing the
 * socket, and passes everything else through untouched.
 *
 *   socket --inbound frames--> [checks] --> BrokerSide --> aedes
 *   socket <--outbound frames-- [checks] <-- BrokerSide <-- aedes
 */
import { Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import type { IConnectPacket, ISubackPacket, ISubscribePacket, Packet } from 'mqtt-packet'
import { FrameReader, PacketType, ackPacketId, ackReasonCode, readPublishHeader, type Frame } from './frame.js'
import { decodeFrame, encode, type ProtocolVersion } from './codec.js'
import { inspectConnect, UNACCEPTABLE_PROTOCOL_VERSION_CONNACK } from './inbound/connect.js'
import { checkSubscription, PendingSuback, type SubscribePolicy } from './inbound/subscribe.js'
import { ReasonCode, describeReasonCode, isFailure, v5ToV311ConnackCode, v311ToV5ConnackCode } from './reason-codes.js'
import { hardenClient } from '../aedes-internals.js'
import type { BrokerObserver } from '../observer.js'

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

export interface ProtocolSettings extends SubscribePolicy {
  /** inbound limit, advertised in CONNACK; 0 = none */
  maximumPacketSize: number
  /** inbound QoS 1/2 window, advertised to v5 clients and enforced for every client (spec 4.9) */
  receiveMaximum: number
}

export interface ConnectionContext {
  readonly broker: Aedes
  readonly settings: ProtocolSettings
  readonly logger: Logger
  readonly observer: BrokerObserver
  /** called once the connection is closed on both sides */
  onClose (conn: Connection): void
}

export interface ConnectionMeta {
  transport: Transport
  remoteAddress: string | undefined
}

type Verdict =
  | { kind: 'pass' }
  | { kind: 'replace', bufs: Buffer[] }
  | { kind: 'drop' }
  | { kind: 'close', reasonCode: number, reason: string }

const PASS: Verdict = { kind: 'pass' }
const DROP: Verdict = { kind: 'drop' }

/** The stream aedes reads from and writes to. */
class BrokerSide extends Duplex {
  constructor (private readonly conn: Connection) {
    super({ allowHalfOpen: false })
  }

  override _read (): void {
    this.conn.resumeInbound()
  }

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.conn.fromBroker([chunk], cb)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.conn.fromBroker(chunks.map(c => c.chunk), cb)
  }

  override _final (cb: (err?: Error | null) => void): void {
    this.conn.brokerClosed(null)
    cb()
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    this.conn.brokerClosed(err)
    cb(null)
  }
}

export class Connection {
  readonly client: Client
  readonly log: Logger
  private logger: Logger
  private readonly side: BrokerSide
  private readonly inbound: FrameReader
  private readonly outbound = new FrameReader(0)
  private readonly settings: ProtocolSettings

  version: ProtocolVersion | undefined
  clientId: string | undefined
  private connectSeen = false
  connackSent = false
  private accepted = false
  private disconnectSent = false
  private closed = false
  private socketPaused = false
  /** reason code of the DISCONNECT that ended the connection, either side */
  private disconnectReason: number | undefined
  private disconnectBy: 'client' | 'server' | undefined

  /** inbound QoS 1 and 2 packet ids not yet completed (spec 4.9) */
  private readonly inflightIn = new Set<number>()
  /** SUBSCRIBE packets split into parts, by the internal id of each part */
  private readonly subParts = new Map<number, { pending: PendingSuback, index: number }>()
  private nextInternalId = 1

  constructor (
    readonly socket: Duplex,
    readonly meta: ConnectionMeta,
    private readonly ctx: ConnectionContext
  ) {
    this.settings = ctx.settings
    this.inbound = new FrameReader(ctx.settings.maximumPacketSize)
    this.logger = ctx.logger.child({ transport: meta.transport, remote: meta.remoteAddress })
    this.log = this.logger
    this.side = new BrokerSide(this)
    ctx.observer.connectionOpened(meta.transport)
    this.client = ctx.broker.handle(this.side)
    hardenClient(this.client)

    socket.on('data', (chunk: Buffer) => this.fromClient(chunk))
    socket.on('end', () => this.close('connection closed by peer'))
    socket.on('close', () => this.close('connection closed'))
    socket.on('error', (err: Error) => {
      this.log.debug({ err }, 'socket error')
      this.close('socket error')
    })
  }

  get isAccepted (): boolean { return this.accepted }

  // ---------------------------------------------------------------- inbound

  private fromClient (chunk: Buffer): void {
    if (this.closed) return
    if (!this.connectSeen && this.inbound.buffered === 0 && chunk.length > 0 && chunk[0] !== 0x10) {
      // [MQTT-3.1.0-1] the first packet must be CONNECT: judged on the first
      // byte, so bytes that are not MQTT are refused without waiting for more
      this.fail(ReasonCode.ProtocolError, 'first packet is not CONNECT')
      return
    }
    const forward: Buffer[] = []
    for (const result of this.inbound.push(chunk)) {
      if (result.kind === 'malformed') {
        this.flushToBroker(forward)
        this.fail(ReasonCode.MalformedPacket, result.reason)
        return
      }
      if (result.kind === 'too-large') {
        this.flushToBroker(forward)
        // [MQTT-3.2.2-15] [MQTT-4.13.1-1] DISCONNECT 0x95, then close
        this.fail(ReasonCode.PacketTooLarge, `packet of ${result.size} bytes exceeds the maximum of ${this.settings.maximumPacketSize}`)
        return
      }
      const verdict = this.checkInbound(result.frame)
      switch (verdict.kind) {
        case 'pass': forward.push(result.frame.buf); break
        case 'replace': forward.push(...verdict.bufs); break
        case 'drop': break
        case 'close':
          this.flushToBroker(forward)
          this.fail(verdict.reasonCode, verdict.reason)
          return
      }
    }
    this.flushToBroker(forward)
  }

  private flushToBroker (bufs: Buffer[]): void {
    if (bufs.length === 0 || this.side.destroyed) return
    const data = bufs.length === 1 ? bufs[0] as Buffer : Buffer.concat(bufs)
    if (!this.side.push(data) && !this.socketPaused) {
      // back-pressure: aedes is behind, stop reading the socket until it asks
      this.socketPaused = true
      this.socket.pause()
    }
  }

  resumeInbound (): void {
    if (this.socketPaused) {
      this.socketPaused = false
      this.socket.resume()
    }
  }

  private checkInbound (frame: Frame): Verdict {
    if (!this.connectSeen && frame.type !== PacketType.CONNECT) {
      // [MQTT-3.1.0-1] the first packet must be CONNECT
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'first packet is not CONNECT' }
    }
    switch (frame.type) {
      case PacketType.CONNECT: return this.onConnect(frame)
      case PacketType.PUBLISH: return this.onPublish(frame)
      case PacketType.SUBSCRIBE: return this.onSubscribe(frame)
      case PacketType.DISCONNECT: return this.onDisconnect(frame)
      default: return PASS
    }
  }

  private onConnect (frame: Frame): Verdict {
    if (this.connectSeen) {
      // [MQTT-3.1.0-2] a second CONNECT is a Protocol Error
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'second CONNECT on one connection' }
    }
    this.connectSeen = true
    const inspection = inspectConnect(frame)
    switch (inspection.kind) {
      case 'bad-protocol-name':
        return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'protocol name is not MQTT' }
      case 'bad-version':
        this.writeToClient(UNACCEPTABLE_PROTOCOL_VERSION_CONNACK)
        this.connackSent = true
        this.ctx.observer.connectRefused(ReasonCode.UnsupportedProtocolVersion)
        return { kind: 'close', reasonCode: ReasonCode.UnsupportedProtocolVersion, reason: `unsupported protocol level ${inspection.version}` }
      case 'malformed':
        this.version = inspection.version
        return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `malformed CONNECT: ${inspection.reason}` }
      case 'ok':
        this.onConnectAccepted(inspection.packet, inspection.version)
        return PASS
    }
  }

  private onConnectAccepted (packet: IConnectPacket, version: ProtocolVersion): void {
    this.version = version
    this.clientId = packet.clientId
    this.logger = this.logger.child({ clientId: packet.clientId || undefined })
    ;(this as { log: Logger }).log = this.logger
  }

  /**
   * Steps:
   * 1. [MQTT-3.3.1-4] QoS 3 is a Malformed Packet;
   * 2. spec 4.9: count a new QoS 1/2 packet id against the Receive Maximum
   *    culex advertised; one over it is DISCONNECT 0x93 [MQTT-3.3.4-9], which
   *    also bounds the inbound QoS 2 state a client can pin
   *    (GHSA-5jvp-3p2v-5qgf, GHSA-p8r9-qf8w-p73r).
   */
  private onPublish (frame: Frame): Verdict {
    const header = readPublishHeader(frame)
    if (header === null) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'truncated PUBLISH' }
    if (header.qos === 3) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'PUBLISH with QoS 3' }
    this.ctx.observer.publishReceived(header.qos, frame.buf.length)
    if (header.packetId !== undefined && !this.inflightIn.has(header.packetId)) {
      if (this.inflightIn.size >= this.settings.receiveMaximum) {
        return { kind: 'close', reasonCode: ReasonCode.ReceiveMaximumExceeded, reason: `more than ${this.settings.receiveMaximum} QoS 1/2 messages in flight` }
      }
      this.inflightIn.add(header.packetId)
    }
    return PASS
  }

  /** Splits a SUBSCRIBE into one aedes SUBSCRIBE per accepted filter (inbound/subscribe.ts). */
  private onSubscribe (frame: Frame): Verdict {
    const packet = decodeFrame(frame, this.version)
    if (packet instanceof Error || packet.cmd !== 'subscribe') {
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed SUBSCRIBE' }
    }
    const pending = new PendingSuback(packet.messageId ?? 0, packet.subscriptions.length)
    const parts: Buffer[] = []
    packet.subscriptions.forEach((sub, index) => {
      const verdict = checkSubscription(packet, sub, this.version ?? 4, this.settings)
      if (verdict.kind === 'reject') {
        this.log.debug({ filter: sub.topic, reasonCode: describeReasonCode(verdict.code) }, 'subscription refused')
        pending.settle(index, verdict.code)
        return
      }
      const id = this.allocateInternalId()
      this.subParts.set(id, { pending, index })
      const part: ISubscribePacket = { cmd: 'subscribe', messageId: id, subscriptions: [verdict.subscription] }
      if (packet.properties) part.properties = packet.properties
      parts.push(encode(part, this.version))
    })
    if (pending.complete) {
      this.writeSuback(pending)
      return DROP
    }
    return { kind: 'replace', bufs: parts }
  }

  private allocateInternalId (): number {
    for (;;) {
      const id = this.nextInternalId
      this.nextInternalId = id >= 0xffff ? 1 : id + 1
      if (!this.subParts.has(id)) return id
    }
  }

  private onDisconnect (frame: Frame): Verdict {
    this.disconnectBy = 'client'
    this.disconnectReason = frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
    return PASS
  }

  // --------------------------------------------------------------- outbound

  /** Bytes aedes wrote; `done` is called when the socket can take more. */
  fromBroker (chunks: Buffer[], done: (err?: Error | null) => void): void {
    if (this.closed || this.socket.destroyed) { done(); return }
    const out: Buffer[] = []
    for (const chunk of chunks) {
      for (const result of this.outbound.push(chunk)) {
        if (result.kind !== 'frame') continue
        const verdict = this.checkOutbound(result.frame)
        if (verdict.kind === 'pass') out.push(result.frame.buf)
        else if (verdict.kind === 'replace') out.push(...verdict.bufs)
      }
    }
    if (out.length === 0) { done(); return }
    // one socket write per batch aedes hands over (it corks per packet)
    const ok = this.socket.write(out.length === 1 ? out[0] as Buffer : Buffer.concat(out))
    if (ok) done()
    else this.socket.once('drain', () => done())
  }

  private checkOutbound (frame: Frame): Verdict {
    switch (frame.type) {
      case PacketType.PUBLISH:
        this.ctx.observer.publishSent((frame.flags >> 1) & 0x03, frame.buf.length)
        return PASS
      case PacketType.CONNACK: return this.onConnack(frame)
      case PacketType.PUBACK:
      case PacketType.PUBCOMP:
        this.inflightIn.delete(ackPacketId(frame))
        return PASS
      case PacketType.PUBREC:
        // a failed PUBREC ends the QoS 2 flow for that id (spec 4.3.3)
        if (this.version === 5 && isFailure(ackReasonCode(frame))) this.inflightIn.delete(ackPacketId(frame))
        return PASS
      case PacketType.SUBACK: return this.onSuback(frame)
      case PacketType.DISCONNECT:
        this.disconnectSent = true
        this.disconnectBy ??= 'server'
        this.disconnectReason ??= frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
        return PASS
      default: return PASS
    }
  }

  private onConnack (frame: Frame): Verdict {
    this.connackSent = true
    const code = frame.buf[frame.headerLength + 1] as number
    this.accepted = code === 0
    if (this.accepted) {
      this.ctx.observer.clientAccepted(this.meta.transport, this.version ?? 4)
      this.log.info({ version: this.version }, 'client connected')
    } else {
      this.ctx.observer.connectRefused(this.version === 5 ? code : v311ToV5ConnackCode(code))
      this.log.info({ reasonCode: this.version === 5 ? describeReasonCode(code) : code }, 'connection refused')
    }
    return PASS
  }

  private onSuback (frame: Frame): Verdict {
    const id = ackPacketId(frame)
    const part = this.subParts.get(id)
    if (!part) return PASS
    this.subParts.delete(id)
    const packet = decodeFrame(frame, this.version) as ISubackPacket | Error
    const code = packet instanceof Error ? ReasonCode.UnspecifiedError : (packet.granted[0] as number | undefined) ?? ReasonCode.UnspecifiedError
    if (!part.pending.settle(part.index, code)) return DROP
    return { kind: 'replace', bufs: [this.encodeSuback(part.pending)] }
  }

  private encodeSuback (pending: PendingSuback): Buffer {
    const packet: ISubackPacket = { cmd: 'suback', messageId: pending.messageId, granted: pending.codes.map(c => c ?? ReasonCode.UnspecifiedError) }
    return encode(packet, this.version)
  }

  private writeSuback (pending: PendingSuback): void {
    this.writeToClient(this.encodeSuback(pending))
  }

  // ---------------------------------------------------------------- closing

  private writeToClient (buf: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(buf)
  }

  /** Sends a packet the gateway built itself. */
  sendPacket (packet: Packet): void {
    this.writeToClient(encode(packet, this.version))
  }

  /**
   * Ends the connection for a protocol failure [MQTT-4.13.1-1]: a v5 client
   * that has its CONNACK gets DISCONNECT with the reason; one still waiting
   * for CONNACK gets a CONNACK carrying it (spec 4.13.2); 3.1.1 is closed.
   */
  fail (reasonCode: number, reason: string): void {
    if (this.closed) return
    this.log.warn({ reasonCode: describeReasonCode(reasonCode), reason }, 'closing connection: protocol failure')
    this.sendFinal(reasonCode)
    this.close(reason)
  }

  private sendFinal (reasonCode: number): void {
    if (this.version === 5 && this.accepted && !this.disconnectSent) {
      this.disconnectSent = true
      this.disconnectBy = 'server'
      this.disconnectReason = reasonCode
      this.sendPacket({ cmd: 'disconnect', reasonCode })
    } else if (this.version !== undefined && this.connectSeen && !this.connackSent) {
      this.connackSent = true
      this.ctx.observer.connectRefused(reasonCode)
      const connack: Packet = this.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode }
        : { cmd: 'connack', sessionPresent: false, returnCode: v5ToV311ConnackCode(reasonCode) }
      this.sendPacket(connack)
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
    if (!this.side.destroyed) this.side.destroy()
    if (!this.socket.destroyed) {
      // end() flushes what was written (a final DISCONNECT) before the FIN
      this.socket.end()
      setTimeout(() => this.socket.destroy(), 2000).unref()
    }
    if (this.accepted) {
      this.log.info({
        reason,
        reasonCode: describeReasonCode(this.disconnectReason),
        by: this.disconnectBy ?? 'network'
      }, 'client disconnected')
    } else {
      this.log.debug({ reason }, 'connection closed before CONNACK')
    }
    this.ctx.observer.connectionClosed(this.meta.transport, this.version, this.accepted)
    this.ctx.onClose(this)
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
