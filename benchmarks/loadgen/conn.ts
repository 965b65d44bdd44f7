// One raw MQTT connection for the load generator: a TCP socket (or a
// WebSocket stream) plus an mqtt-packet parser. It runs the acknowledgement
// flows itself (PUBACK, PUBREC/PUBREL/PUBCOMP) and batches everything it
// sends in response to one chunk of input into one write.
import net from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { generate, parser as createParser, type IConnackPacket, type ISubackPacket, type IPublishPacket, type Packet } from 'mqtt-packet'
import WebSocket, { createWebSocketStream } from 'ws'
import { assertLoopback } from '../lib/net.js'
import { encodePuback, encodePubcomp, encodePubrec, encodePubrel } from './encode.js'
import type { NegotiatedTls, ProtocolVersion, QoS, Target, TlsClientSettings, Transport } from './jobs.js'

export interface ConnectOptions {
  readonly host: string
  readonly port: number
  readonly transport: Transport
  readonly wsPort: number | null
  readonly wsPath: string
  readonly protocolVersion: ProtocolVersion
  readonly clientId: string
  readonly clean: boolean
  readonly keepaliveS: number
  /** MQTT 5 Session Expiry Interval; null = absent (session ends with the connection). */
  readonly sessionExpiryS: number | null
  readonly connectTimeoutMs: number
  /** A Will Message for this connection (no Will Delay). */
  readonly will?: { readonly topic: string, readonly payload: Buffer, readonly qos: QoS }
  /** MQTT over TLS to this port instead of `transport`. */
  readonly tls?: { readonly port: number, readonly settings: TlsClientSettings }
}

export interface ConnHandlers {
  /** A PUBLISH from the broker; the connection has already queued its acknowledgement. */
  publish?: (packet: IPublishPacket) => void
  /** One of our QoS 1/2 PUBLISHes finished its flow (PUBACK, or PUBCOMP / failed PUBREC). */
  published?: (messageId: number, reasonCode: number) => void
  /** The broker sent DISCONNECT (MQTT 5), with this reason code; `closed` follows. */
  disconnected?: (reasonCode: number) => void
  /** The connection closed; `error` is null for a close we asked for. */
  closed?: (error: Error | null) => void
}

export interface Subscription {
  readonly topic: string
  readonly qos: QoS
}

const CONNECT_TIMEOUT_MS = 10_000

/** A clean, non-persistent connection to the job's broker. */
export function connectOptions (target: Target, clientId: string, transport: Transport): ConnectOptions {
  return {
    host: target.host,
    port: target.port,
    transport,
    wsPort: target.wsPort,
    wsPath: target.wsPath,
    protocolVersion: target.protocolVersion,
    clientId,
    clean: true,
    keepaliveS: 60,
    sessionExpiryS: null,
    connectTimeoutMs: CONNECT_TIMEOUT_MS
  }
}

// The broker may have to queue a lot for a slow reader; a large Receive
// Maximum keeps the broker's flow control, not ours, out of the figures.
const RECEIVE_MAXIMUM = 65535

async function connectTcp (host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return await new Promise((resolve, reject) => {
    const socket = net.connect({ host, port })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('TCP connect timeout')) }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.setNoDelay(true)
      resolve(socket)
    })
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

async function connectTls (host: string, port: number, settings: TlsClientSettings, timeoutMs: number): Promise<tls.TLSSocket> {
  return await new Promise((resolve, reject) => {
    // A fresh handshake every time: no session is passed in, so nothing is resumed.
    const socket = tls.connect({
      host,
      port,
      ca: settings.caPem,
      ciphers: settings.ciphers,
      minVersion: settings.minVersion,
      maxVersion: settings.maxVersion,
      ecdhCurve: settings.ecdhCurve
    })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('TLS connect timeout')) }, timeoutMs)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      socket.setNoDelay(true)
      resolve(socket)
    })
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

/** The version, suite and group a finished TLS handshake settled on. */
export function negotiatedTls (socket: tls.TLSSocket): NegotiatedTls {
  const key = socket.getEphemeralKeyInfo()
  const group = typeof key === 'object' && key !== null && 'name' in key && typeof key.name === 'string' ? key.name : null
  return { protocol: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher().name, group }
}

async function connectWs (host: string, port: number, path: string, timeoutMs: number): Promise<Duplex> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}:${port}${path}`, 'mqtt', { perMessageDeflate: false, handshakeTimeout: timeoutMs })
    ws.once('open', () => resolve(createWebSocketStream(ws)))
    ws.once('error', reject)
  })
}

export class MqttConn {
  handlers: ConnHandlers = {}
  private readonly outbox: Buffer[] = []
  private flushQueued = false
  private readonly subacks = new Map<number, (packet: ISubackPacket) => void>()
  // Only SUBSCRIBE uses this counter: publishing connections never subscribe,
  // so it cannot collide with the pre-encoded PUBLISH packet identifiers.
  private nextSubscribeId = 1
  private connackWaiter: ((packet: IConnackPacket) => void) | null = null
  private connackAbort: ((error: Error) => void) | null = null
  private pingTimer: NodeJS.Timeout | null = null
  private closing = false
  private failure: Error | null = null
  readonly closed: Promise<void>

  /** Set for a TLS connection: what its handshake negotiated. */
  tls: NegotiatedTls | null = null

  private constructor (private readonly stream: Duplex, readonly protocolVersion: ProtocolVersion) {
    const parser = createParser({ protocolVersion })
    parser.on('packet', (packet: Packet) => this.dispatch(packet))
    parser.on('error', (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
    stream.on('data', (chunk: Buffer) => parser.parse(chunk))
    stream.on('error', (err: Error) => this.fail(err))
    this.closed = new Promise((resolve) => {
      stream.once('close', () => {
        if (this.pingTimer !== null) clearInterval(this.pingTimer)
        const error = this.closing ? null : (this.failure ?? new Error('connection closed by broker'))
        this.connackAbort?.(error ?? new Error('closed before CONNACK'))
        this.handlers.closed?.(error)
        resolve()
      })
    })
  }

  /**
   * Opens the transport, sends CONNECT and resolves once CONNACK says success.
   * Handlers are installed before CONNECT because a broker may send queued
   * messages in the same TCP segment as the CONNACK (session resumption).
   */
  static async open (options: ConnectOptions, handlers: ConnHandlers = {}): Promise<{ conn: MqttConn, connack: IConnackPacket }> {
    assertLoopback(options.host)
    let stream: Duplex
    let negotiated: NegotiatedTls | null = null
    if (options.tls !== undefined) {
      const socket = await connectTls(options.host, options.tls.port, options.tls.settings, options.connectTimeoutMs)
      negotiated = negotiatedTls(socket)
      stream = socket
    } else if (options.transport === 'ws') {
      if (options.wsPort === null) throw new Error('broker has no WebSocket port')
      stream = await connectWs(options.host, options.wsPort, options.wsPath, options.connectTimeoutMs)
    } else {
      stream = await connectTcp(options.host, options.port, options.connectTimeoutMs)
    }
    const conn = new MqttConn(stream, options.protocolVersion)
    conn.handlers = handlers
    conn.tls = negotiated
    try {
      const connack = await conn.handshake(options)
      return { conn, connack }
    } catch (err) {
      conn.destroy()
      throw err
    }
  }

  private async handshake (options: ConnectOptions): Promise<IConnackPacket> {
    const v5 = options.protocolVersion === 5
    const properties = v5
      ? {
          receiveMaximum: RECEIVE_MAXIMUM,
          ...(options.sessionExpiryS !== null ? { sessionExpiryInterval: options.sessionExpiryS } : {})
        }
      : undefined
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('CONNACK timeout')), options.connectTimeoutMs)
      this.connackWaiter = (packet) => { clearTimeout(timer); resolve(packet) }
      this.connackAbort = (error) => { clearTimeout(timer); reject(error) }
      this.write(generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: options.protocolVersion,
        clientId: options.clientId,
        clean: options.clean,
        keepalive: options.keepaliveS,
        ...(options.will !== undefined ? { will: { topic: options.will.topic, payload: options.will.payload, qos: options.will.qos, retain: false } } : {}),
        ...(properties !== undefined ? { properties } : {})
      }, { protocolVersion: options.protocolVersion }))
    })
    this.connackAbort = null
    const code = connack.reasonCode ?? connack.returnCode ?? 0
    if (code !== 0) throw new Error(`CONNACK refused with code 0x${code.toString(16)}`)
    // MQTT 5 §3.2.2.3.14: a Server Keep Alive overrides the value we asked for.
    const keepalive = connack.properties?.serverKeepAlive ?? options.keepaliveS
    if (keepalive > 0) {
      const pingreq = generate({ cmd: 'pingreq' })
      this.pingTimer = setInterval(() => this.queue(pingreq), keepalive * 750)
      this.pingTimer.unref()
    }
    return connack
  }

  private dispatch (packet: Packet): void {
    switch (packet.cmd) {
      case 'publish':
        if (packet.qos === 1) this.queue(encodePuback(packet.messageId ?? 0))
        else if (packet.qos === 2) this.queue(encodePubrec(packet.messageId ?? 0))
        this.handlers.publish?.(packet)
        break
      case 'pubrel':
        this.queue(encodePubcomp(packet.messageId ?? 0))
        break
      case 'puback':
        this.handlers.published?.(packet.messageId ?? 0, packet.reasonCode ?? 0)
        break
      case 'pubrec':
        // MQTT 5 §4.3.3: a PUBREC with a failure reason code ends the flow.
        if ((packet.reasonCode ?? 0) >= 0x80) this.handlers.published?.(packet.messageId ?? 0, packet.reasonCode ?? 0)
        else this.queue(encodePubrel(packet.messageId ?? 0))
        break
      case 'pubcomp':
        this.handlers.published?.(packet.messageId ?? 0, packet.reasonCode ?? 0)
        break
      case 'suback': {
        const waiter = this.subacks.get(packet.messageId ?? 0)
        this.subacks.delete(packet.messageId ?? 0)
        waiter?.(packet)
        break
      }
      case 'connack':
        this.connackWaiter?.(packet)
        this.connackWaiter = null
        break
      case 'disconnect':
        this.handlers.disconnected?.(packet.reasonCode ?? 0)
        this.fail(new Error(`broker sent DISCONNECT 0x${(packet.reasonCode ?? 0).toString(16)}`))
        break
      default:
        break
    }
  }

  private fail (error: Error): void {
    this.failure ??= error
    this.stream.destroy()
  }

  /** Writes now; false means the socket buffer is full (wait for drain). */
  write (data: Buffer): boolean {
    return this.stream.write(data)
  }

  /** Queues data to go out in one write once the current event has been handled. */
  queue (data: Buffer): void {
    this.outbox.push(data)
    if (this.flushQueued) return
    this.flushQueued = true
    process.nextTick(() => this.flush())
  }

  private flush (): void {
    this.flushQueued = false
    if (this.outbox.length === 0 || this.stream.destroyed) return
    const data = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox)
    this.outbox.length = 0
    this.stream.write(data)
  }

  get needsDrain (): boolean {
    return this.stream.writableNeedDrain
  }

  async drained (): Promise<void> {
    if (!this.stream.writableNeedDrain || this.stream.destroyed) return
    await new Promise<void>((resolve) => {
      const done = (): void => { this.stream.off('drain', done); this.stream.off('close', done); resolve() }
      this.stream.on('drain', done)
      this.stream.on('close', done)
    })
  }

  /** Sends SUBSCRIBE and resolves with the SUBACK reason codes, one per filter. */
  async subscribe (subscriptions: readonly Subscription[], timeoutMs: number): Promise<number[]> {
    const messageId = this.nextSubscribeId++
    const suback = await new Promise<ISubackPacket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SUBACK timeout')), timeoutMs)
      this.subacks.set(messageId, (packet) => { clearTimeout(timer); resolve(packet) })
      this.write(generate({
        cmd: 'subscribe',
        messageId,
        subscriptions: subscriptions.map((s) => ({ topic: s.topic, qos: s.qos }))
      }, { protocolVersion: this.protocolVersion }))
    })
    return suback.granted.map((code) => (typeof code === 'number' ? code : 0x80))
  }

  /** Sends SUBSCRIBE without waiting (the retained-lookup window starts here). */
  subscribeNoWait (subscription: Subscription): void {
    this.write(generate({
      cmd: 'subscribe',
      messageId: this.nextSubscribeId++,
      subscriptions: [{ topic: subscription.topic, qos: subscription.qos }]
    }, { protocolVersion: this.protocolVersion }))
  }

  /** Clean DISCONNECT (a persistent session stays on the broker), then close. */
  async disconnect (timeoutMs = 2000): Promise<void> {
    this.closing = true
    if (!this.stream.destroyed) {
      this.stream.end(generate({ cmd: 'disconnect' }, { protocolVersion: this.protocolVersion }))
    }
    const timer = setTimeout(() => this.stream.destroy(), timeoutMs)
    await this.closed
    clearTimeout(timer)
  }

  destroy (): void {
    this.closing = true
    this.stream.destroy()
  }
}
