/**
 * The fast paths: PUBLISH packets culex encodes and sends itself instead of
 * having aedes copy, encode and write one per subscriber. Each goes through
 * the outbound steps of every PUBLISH (flows/publish-out.ts): Receive
 * Maximum, Message Expiry, Maximum Packet Size, topic alias, metrics.
 *
 * - shared QoS 1 deliveries to a client whose session keeps nothing
 *   (`sendShared`), and the window a shared group sees (`room`, `publish`);
 * - a resumed session's queue, taken from the store directly (`queueSink`);
 * - live QoS 0 messages encoded once for all their subscribers
 *   (`sendEncoded`, outbound/encode-once.ts), and the one-copy rule
 *   [MQTT-3.3.4-2] for overlapping subscriptions (`isRepeat`).
 */
import type { AedesPublishPacket, Client } from 'aedes'
import type { IPublishPacket } from 'mqtt-packet'
import { allocatePacketId } from '../../aedes-internals.js'
import type { QueueAck, QueueSink } from '../../persistence/types.js'
import type { DirectSend, SharedDelivery } from '../../shared/dispatcher.js'
import { expiryIntervalLeft, forwardCorrections } from '../delivery.js'
import { frameOf, type Frame } from '../frame.js'
import { encodePublish } from '../outbound/encode-publish.js'
import { QoS0Batch } from '../outbound/qos0-batch.js'
import { congested } from './client-writer.js'
import { sendOwnPublishes, sendOwnQoS0, type PublishOutHost } from './publish-out.js'

/**
 * The resumed session's queue sink: offered once, with the CONNACK of a
 * resumed session ('armed'); while the store's sink asks aedes whether a
 * queued message may go ('sending'), live QoS 0 takes aedes' path, in order
 * behind the queue.
 */
export type SinkPhase = 'none' | 'armed' | 'sending'

/** What a resumed session's queue sink sent (`queueSink`), for its PUBACKs (`ackQueued`). */
export interface QueueSent {
  readonly ids: Set<number>
  readonly acknowledge: QueueAck
}

/** Encode-once state of a connection, made on the first live message offered to it. */
export class EncodeOnceState {
  /** QoS 0 messages encoded once for many subscribers, going out at the next setImmediate */
  batch: QoS0Batch | undefined = undefined
  /** the live message aedes offered this client last (`isRepeat`) */
  lastBroker: string | undefined = undefined
  lastCounter = 0
}

export interface FastPathHost extends PublishOutHost {
  readonly isAccepted: boolean
  readonly isClosed: boolean
  /** Clean Start 0 (3.1.1: clean session 0) */
  readonly resumesSession: boolean
  /** aedes' side of the stream: bytes it wrote that the gateway has not taken */
  readonly side: { readonly writableLength: number }
  readonly ctx: PublishOutHost['ctx'] & {
    readonly broker: {
      authorizeForward: (client: Client, packet: AedesPublishPacket) => AedesPublishPacket | null | undefined | void
      listenerCount: (event: string) => number
    }
  }
  /** shared deliveries handed to aedes and not yet written */
  sharedUnseen: number
  sinkPhase: SinkPhase
  /** QoS 1 messages the queue sink sent, by packet id, and the store's way to clear them at their PUBACK */
  queueSent: QueueSent | undefined
  encodeOnce: EncodeOnceState | undefined
  /** the ACL's read right */
  mayReceive (topic: string): boolean
}

// shared subscriptions (lib/shared/dispatcher.ts MemberLink)

/** Messages the client takes now: its window, less what is in flight, waiting, or handed to aedes. */
export function room (host: FastPathHost): number {
  const window = host.window
  return window.limit - window.inflight.size - window.queued - host.sharedUnseen
}

/** A shared delivery on aedes' path. */
export function publishShared (host: FastPathHost, packet: SharedDelivery, done: (err?: Error) => void): void {
  // until aedes has written it, the window does not count it: this does
  if (packet.qos > 0) host.sharedUnseen++
  host.client.publish(packet as unknown as Parameters<Client['publish']>[0], (err?: Error) => {
    if (packet.qos > 0) host.sharedUnseen--
    done(err)
  })
}

/**
 * A shared QoS 1 delivery sent by the gateway itself, to a client whose
 * session keeps nothing (aedes' `client.clean`): aedes would store it
 * nowhere and only copy, encode and write it, so culex skips that round
 * trip. Steps, as lib/broker/hooks/forward.ts `FORWARD_STEPS` takes them on aedes' path:
 * 1. the ACL read right: 'refused' when the client may not read the topic;
 * 2. [MQTT-3.3.2-5] 'expired' past its Message Expiry, otherwise the
 *    interval sent is what remains [MQTT-3.3.2-6];
 * 3. a packet id from aedes' own sequence, so none collides with aedes';
 * 4. encoded, then the outbound steps of every PUBLISH.
 * Its PUBACK ends here too (flows/acks.ts). undefined: aedes' path (`publishShared`).
 */
export function sendShared (host: FastPathHost, packet: SharedDelivery): DirectSend {
  const version = host.version
  if (packet.qos !== 1 || host.client.clean !== true || !host.isAccepted || host.isClosed || host.socket.destroyed || version === undefined) return undefined
  if (!host.mayReceive(packet.topic)) return 'refused'
  const now = Date.now()
  const corrected = forwardCorrections(host.client, packet as unknown as AedesPublishPacket, { subscriptionIdentifiers: false, now, shared: true })
  if (corrected === null) return 'expired'
  const packetId = allocatePacketId(host.client)
  const frame = frameOf(encodePublish({ topic: corrected.topic, payload: corrected.payload, qos: 1, retain: corrected.retain, dup: false, messageId: packetId, properties: corrected.properties }, version))
  const direct = host.direct ??= new Set()
  direct.add(packetId)
  sendOwnPublishes(host, [frame], now)
  return packetId
}

// a resumed session's queue

/** The CONNACK of a resumed session went out: its queue may be taken from the store directly. */
export function armQueueSink (host: FastPathHost): void {
  host.sinkPhase = 'armed'
}

/** Session state is ready (aedes' clientReady), or the connection closed: the offer ends. */
export function disarmQueueSink (host: FastPathHost): void {
  if (host.sinkPhase === 'armed') host.sinkPhase = 'none'
}

/**
 * The resumed session's queue, taken from the store directly (see the
 * store's QueueSink) rather than one message per event-loop turn through
 * aedes' emptyQueue; offered once, to the stream aedes opens right after
 * CONNACK, and only for a session resumed as it was (aedes drops the queue
 * of a Clean Start or of a session that ends with the connection).
 */
export function queueSink (host: FastPathHost, acknowledge: QueueAck): QueueSink | undefined {
  if (host.sinkPhase !== 'armed') return undefined
  host.sinkPhase = 'none'
  if (host.isClosed || !host.client.connecting || host.client.clean || !host.resumesSession) return undefined
  const sent: QueueSent = host.queueSent ??= { ids: new Set(), acknowledge }
  return {
    room: () => host.isClosed ? 0 : room(host),
    nextPacketId: () => allocatePacketId(host.client),
    send: (packet) => {
      const ok = sendQueued(host, packet as unknown as AedesPublishPacket)
      if (ok) sent.ids.add(packet.messageId as number)
      return ok
    }
  }
}

/**
 * The PUBACK of a message the queue sink sent: aedes' handlePuback would
 * only clear it from the store (through a promise per message) and emit
 * 'ack' with it; the store clears it here instead (the gateway takes this
 * step over: README "What culex takes over from aedes"). With an 'ack'
 * listener, or a message the store no longer holds, aedes' path runs
 * (false).
 */
export function ackQueued (host: FastPathHost, packetId: number): boolean {
  const sent = host.queueSent
  if (sent === undefined || !sent.ids.delete(packetId)) return false
  if (host.ctx.broker.listenerCount('ack') > 0) return false
  return sent.acknowledge(packetId)
}

/**
 * One queued message, with the steps of aedes' emptyQueue: the remaining
 * Message Expiry Interval [MQTT-3.3.2-6]; authorizeForward (culex's
 * delivery corrections, ACL, DUP); not sent once expired [MQTT-3.3.2-5];
 * then the outbound steps every PUBLISH takes.
 */
export function sendQueued (host: FastPathHost, packet: AedesPublishPacket): boolean {
  const now = Date.now()
  if (packet.messageExpiry !== undefined && packet.messageExpiry > now) {
    packet.properties = { ...packet.properties, messageExpiryInterval: expiryIntervalLeft(packet.messageExpiry, now) }
  }
  const phase = host.sinkPhase
  host.sinkPhase = 'sending'
  let authorized: AedesPublishPacket | null | undefined | void
  try {
    authorized = host.ctx.broker.authorizeForward(host.client, packet)
  } finally {
    host.sinkPhase = phase
  }
  if (authorized === null || authorized === undefined) return false
  if (packet.messageExpiry !== undefined && packet.messageExpiry <= Date.now()) return false
  // aedes writes the packet it asked about, corrected in place
  sendOwnPublishes(host, [frameOf(encodePublish(packet as unknown as IPublishPacket, host.version ?? 4))], now)
  return true
}

// QoS 0 encoded once

/**
 * A QoS 0 message for this client, already encoded once for all its
 * subscribers (outbound/encode-once.ts) instead of by aedes for each. It
 * goes out as aedes would have written it: after a setImmediate, behind
 * anything aedes was already about to write to this client (`sealEncoded`),
 * then through the same outbound steps. false: not now (before CONNACK,
 * closing, during a queued message's checks, or while the client is behind,
 * where aedes' own path gives back-pressure); aedes delivers it instead.
 */
export function sendEncoded (host: FastPathHost, frame: Frame): boolean {
  if (!mayTakeEncoded(host)) return false
  takeEncoded(host, frame)
  return true
}

/** The gateway can take an encoded QoS 0 message now (`sendEncoded`'s conditions). */
export function mayTakeEncoded (host: FastPathHost): boolean {
  return host.sinkPhase !== 'sending' && host.isAccepted && !host.isClosed && host.pressure !== 'shedding' && !congested(host) && host.side.writableLength === 0
}

/** An encoded QoS 0 message joins the batch going out at the next setImmediate (`mayTakeEncoded` was true). */
export function takeEncoded (host: FastPathHost, frame: Frame): void {
  qos0Batch(host).append(frame.buf)
}

/** The batch of QoS 0 messages going out at the next setImmediate (`mayTakeEncoded` was true): written into directly. */
export function qos0Batch (host: FastPathHost): QoS0Batch {
  const state = host.encodeOnce ??= new EncodeOnceState()
  let batch = state.batch
  if (batch === undefined) {
    batch = state.batch = new QoS0Batch()
    setImmediate(flushEncoded, host, batch)
  }
  return batch
}

/** aedes is about to write a message to this client: encoded messages after this one wait for it. */
export function sealEncoded (host: FastPathHost): void {
  if (host.encodeOnce !== undefined) host.encodeOnce.batch = undefined
}

function flushEncoded (host: FastPathHost, batch: QoS0Batch): void {
  const state = host.encodeOnce
  if (state !== undefined && state.batch === batch) state.batch = undefined
  if (host.isClosed || host.socket.destroyed) return
  sendOwnQoS0(host, batch, Date.now())
}

/**
 * [MQTT-3.3.4-2] one copy per client of a message that matches several of
 * its subscriptions: aedes offers the copies one after another, all within
 * one emit, so a copy is the message offered last (aedes-internals.ts
 * `hardenClient` says why aedes' own check is off).
 */
export function isRepeat (host: FastPathHost, brokerId: string, brokerCounter: number): boolean {
  const state = host.encodeOnce ??= new EncodeOnceState()
  if (state.lastCounter === brokerCounter && state.lastBroker === brokerId) return true
  state.lastBroker = brokerId
  state.lastCounter = brokerCounter
  return false
}
