// A connection without a socket or aedes, for the unit tests of
// lib/protocol/flows/: it records what would be written to the client,
// handed to aedes, counted and logged.
import type { AedesPublishPacket, Client } from 'aedes'
import type { IConnectPacket, Packet } from 'mqtt-packet'
import { ConnectionLogger, silentLogger } from '../../lib/logging.js'
import { Authenticators, type AuthContext, type AuthStep } from '../../lib/protocol/auth.js'
import { ReasonCode } from '../../lib/protocol/reason-codes.js'
import { decodeBuffer, encode, type ProtocolVersion } from '../../lib/protocol/codec.js'
import { frameOf, type Frame } from '../../lib/protocol/frame.js'
import { OutboundWindow } from '../../lib/protocol/outbound/flow-control.js'
import type { OutboundAliases } from '../../lib/protocol/outbound/topic-alias.js'
import { PacketIdTable } from '../../lib/protocol/packet-id-table.js'
import type { AckFlow, InboundFlow } from '../../lib/protocol/flows/acks.js'
import type { PublishInHost } from '../../lib/protocol/flows/publish-in.js'
import { ackQueued, type EncodeOnceState, type FastPathHost, type QueueSent, type SinkPhase } from '../../lib/protocol/flows/fast-paths.js'
import { AliasTable } from '../../lib/aedes-internals.js'
import type { RetainedOrder } from '../../lib/protocol/inbound/retained-order.js'
import type { OutboundMode, Pressure } from '../../lib/protocol/flows/client-writer.js'

export class StubHost implements PublishInHost, FastPathHost {
  /** what aedes was asked to publish to the client (its own path) */
  readonly viaAedes: unknown[] = []
  readonly stubClient = {
    id: 'stub',
    clean: true,
    connecting: false,
    _nextId: 1,
    publish: (packet: unknown, done: (err?: Error) => void) => { this.viaAedes.push(packet); setImmediate(done) }
  }

  readonly client = this.stubClient as unknown as Client
  version: ProtocolVersion | undefined = 5
  /** socket writes, each one buffer */
  readonly writes: Buffer[] = []
  readonly socket = {
    destroyed: false,
    writable: true,
    writableNeedDrain: false,
    writableLength: 0,
    write: (buf: Buffer): boolean => { this.writes.push(buf); return true }
  }

  readonly settings = {
    slowConsumerTimeout: 1000,
    maxOutboundBuffer: 1024,
    maximumQoS: 2 as 0 | 1 | 2,
    retainAvailable: true,
    maxTopicLength: 100,
    maxTopicLevels: 10,
    validatePayloadFormat: true,
    topicAliasMaximum: 10,
    receiveMaximum: 2
  }
  /** QoS of each PUBLISH counted as received */
  readonly counted: number[] = []
  readonly sent: Array<{ qos: number, bytes: number }> = []
  readonly dropped: string[] = []
  readonly sharedAcks: Array<{ id: number, code: number }> = []
  readonly logged: string[] = []
  subscribers: (topic: string) => boolean | Promise<boolean> = () => true
  incoming: (id: number) => boolean = () => false
  readonly ctx = {
    observer: {
      publishReceived: (qos: number) => { this.counted.push(qos) },
      publishSent: (qos: number, bytes: number) => { this.sent.push({ qos, bytes }) },
      messageDropped: (reason: string) => { this.dropped.push(reason) }
    },
    shared: undefined as { onAck: (client: { id: string }, id: number, code: number) => void } | undefined,
    hasSubscribers: (topic: string) => this.subscribers(topic),
    broker: {
      authorizeForward: (_client: Client, packet: AedesPublishPacket) => this.forward(packet),
      listenerCount: (event: string) => event === 'ack' ? this.ackListeners : 0
    },
    hasIncoming: async (_clientId: string, id: number) => this.incoming(id)
  }

  readonly log = { repeated: (_level: string, key: string) => { this.logged.push(key) } }
  readonly window = new OutboundWindow(2, 3)
  aliases: OutboundAliases | undefined
  clientMaximumPacketSize = 0
  writtenAt = 0
  direct: Set<number> | undefined
  droppedQoS2: Set<number> | undefined
  /** packets handed to aedes as if from the client */
  readonly toAedes: Packet[] = []
  readonly inflightIn = new PacketIdTable<InboundFlow>()
  ackFlow: AckFlow | undefined
  requestProblemInformation = true
  outMode: OutboundMode = 'idle'
  outQueue: Buffer[] | undefined
  outQueueBytes = 0
  pressure: Pressure = 'flowing'
  stallTimer: ReturnType<typeof setTimeout> | undefined
  /** a test may state the queue length outright instead of filling the window */
  private queuedStated: number | undefined
  get queuedOutbound (): number { return this.queuedStated ?? this.window.queued }
  set queuedOutbound (queued: number) { this.queuedStated = queued }
  /** calls of the write path's back-pressure hooks (flows/client-writer.ts) */
  drainAwaited = 0
  brokerResumed = 0
  shedCalls = 0
  awaitDrain (): void { this.drainAwaited++ }
  brokerMayWrite (): void { this.brokerResumed++ }
  shed (): void { this.shedCalls++ }
  toBroker (packet: Packet): void { this.toAedes.push(packet) }
  readonly inboundAliases = new AliasTable()
  retainedOrder: RetainedOrder | undefined
  subacksAwaited = false
  rateLeft = Infinity
  denied = new Set<string>()
  isAccepted = true
  isClosed = false
  resumesSession = true
  readonly side = { writableLength: 0 }
  sharedUnseen = 0
  sinkPhase: SinkPhase = 'none'
  queueSent: QueueSent | undefined
  /** listeners of aedes' 'ack' event */
  ackListeners = 0
  encodeOnce: EncodeOnceState | undefined
  readable = new Set<string>()
  /** aedes' authorizeForward: the packet, corrected, or null when refused */
  forward: (packet: AedesPublishPacket) => AedesPublishPacket | null = packet => packet
  mayReceive (topic: string): boolean { return !this.denied.has(topic) }
  ackQueued (packetId: number): boolean { return ackQueued(this, packetId) }
  awaitingSuback (): boolean { return this.subacksAwaited }
  takePublish (): boolean { return this.rateLeft-- > 0 }
  mayPublish (topic: string): boolean { return !this.denied.has(topic) }

  /** what the client would read, decoded, after the writes of this loop turn and the next */
  async received (): Promise<Packet[]> {
    for (let turn = 0; turn < 2; turn++) await new Promise(resolve => setImmediate(resolve))
    return this.writes.flatMap(split).map(b => decodeBuffer(b, this.version) as Packet)
  }
}

/** Splits a socket write into its packets. */
function split (buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  while (at < buf.length) {
    let length = 0
    let mul = 1
    let i = at + 1
    for (;;) {
      const byte = buf[i++] as number
      length += (byte & 0x7f) * mul
      mul *= 128
      if ((byte & 0x80) === 0) break
    }
    out.push(buf.subarray(at, i + length))
    at = i + length
  }
  return out
}

export function publishFrame (packet: { topic: string, payload?: string, qos: 0 | 1 | 2, messageId?: number, properties?: Record<string, unknown> }, version: ProtocolVersion = 5): Frame {
  return frameOf(encode({ cmd: 'publish', retain: false, dup: false, payload: packet.payload ?? 'x', ...packet } as Packet, version))
}

export function ackFrame (cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', messageId: number, reasonCode?: number, version: ProtocolVersion = 5): Frame {
  return frameOf(encode({ cmd, messageId, ...(reasonCode === undefined ? {} : { reasonCode }) } as Packet, version))
}

/** The log of a stub connection: silent. */
export function silentConnectionLog (): ConnectionLogger {
  return new ConnectionLogger(silentLogger(), { transport: 'tcp', remoteAddress: undefined })
}

/** A CONNECT of client c1: MQTT 5, Clean Start, keep-alive 30 s, and `fields`. */
export function connectPacket (fields: Partial<Omit<IConnectPacket, 'cmd'>> = {}): IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c1', clean: true, keepalive: 30, ...fields }
}

/**
 * The Authentication Method 'TEST', whose exchanges answer with `steps` in
 * turn, then refuse (0x87); `seen` hears each exchange begin and each piece
 * of the client's Authentication Data.
 */
export function testAuthenticators (steps: AuthStep[], seen: { begin?: (ctx: AuthContext) => void, data?: (data: Buffer | undefined) => void } = {}): Authenticators {
  return new Authenticators([{
    method: 'TEST',
    begin: (ctx) => {
      seen.begin?.(ctx)
      return {
        step: async (data) => {
          seen.data?.(data)
          return steps.shift() ?? { kind: 'failure', reasonCode: ReasonCode.NotAuthorized }
        }
      }
    }
  }])
}
