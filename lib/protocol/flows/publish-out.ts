/**
 * PUBLISH to the client (spec 3.3, 4.9), from aedes or encoded by culex
 * itself (flows/fast-paths.ts), through the same steps:
 *
 * 1. spec 4.9: QoS 1/2 beyond the client's Receive Maximum waits, in order
 *    (outbound/flow-control.ts); a client that stalled has the oldest
 *    waiting messages dropped past `maxQueuedOutbound`;
 * 2. [MQTT-3.3.2-5] a message that waited past its Message Expiry is not
 *    sent; otherwise the interval is reduced by the wait [MQTT-3.3.2-6];
 * 3. [MQTT-3.1.2-24] a PUBLISH larger than the client's Maximum Packet Size
 *    is not sent; culex acts as if it had been delivered (spec 3.1.2.11.4);
 * 4. [MQTT-3.3.2-8] [MQTT-3.3.2-11] [MQTT-3.1.2-26] an outbound topic alias
 *    replaces the topic;
 * 5. written (flows/client-writer.ts).
 *
 * A dropped QoS 1/2 message completes its flow with aedes (and its shared
 * group) as if the client had acknowledged it.
 */
import type { Client } from 'aedes'
import type { Packet } from 'mqtt-packet'
import type { ConnectionLogger } from '../../logging.js'
import type { DropReason } from '../../observer.js'
import type { SharedSubscriptions } from '../../shared/dispatcher.js'
import { decodeBuffer, decodeFrame, encode, type ProtocolVersion } from '../codec.js'
import { ackPacketId, frameOf, readPublishHeader, readPublishId, type Frame, type PublishHeader } from '../frame.js'
import type { HeldPublish, OutboundWindow } from '../outbound/flow-control.js'
import type { OutboundAliases } from '../outbound/topic-alias.js'
import type { QoS0Batch } from '../outbound/qos0-batch.js'
import { progress, write, type ClientSocket, type WriterHost } from './client-writer.js'

export interface PublishOutHost extends WriterHost {
  readonly client: Client
  readonly version: ProtocolVersion | undefined
  readonly socket: ClientSocket & { readonly writableLength: number }
  readonly settings: WriterHost['settings'] & { readonly maxOutboundBuffer: number }
  readonly ctx: {
    readonly observer: { publishSent: (qos: number, bytes: number) => void, messageDropped: (reason: DropReason, count: number) => void }
    readonly shared: Pick<SharedSubscriptions, 'onAck'> | undefined
  }
  readonly log: Pick<ConnectionLogger, 'repeated'>
  readonly window: OutboundWindow
  readonly aliases: OutboundAliases | undefined
  /** the client's Maximum Packet Size; 0: none */
  readonly clientMaximumPacketSize: number
  /** when aedes wrote the chunks being processed */
  writtenAt: number
  /** packet ids of shared QoS 1 deliveries the gateway sent itself (flows/fast-paths.ts): aedes never saw them */
  direct: Set<number> | undefined
  /** QoS 2 messages culex dropped and completes with aedes on the client's behalf (its PUBREL is not sent) */
  droppedQoS2: Set<number> | undefined
  /** a packet to aedes as if the client had sent it, after the current step */
  toBroker (packet: Packet): void
}

/** A PUBLISH frame for the client: step 1 (the window), then `sendPublish`; `fresh`: written just now (sendOwnPublishes). */
export function onOutboundPublish (host: PublishOutHost, frame: Frame, out: Buffer[], fresh = false): void {
  const ids = readPublishId(frame)
  if (ids === null) return
  // the time aedes wrote it: a message may have waited for the client before it got here
  const held: HeldPublish = { frame, qos: ids.qos, packetId: ids.packetId, heldAt: host.writtenAt }
  if (host.window.admit(held)) {
    sendPublish(host, held, out, fresh)
    return
  }
  // a client that keeps up only waits here; one that stalled has its oldest dropped
  for (const dropped of host.window.hold(held, host.pressure === 'shedding')) dropPublish(host, dropped, 'queue-full')
}

/** Steps 2-4 for a message the window admitted; `fresh`: it has not waited (step 2 has nothing to do). */
export function sendPublish (host: PublishOutHost, p: HeldPublish, out: Buffer[], fresh = false): void {
  if (!fresh && p.heldAt !== undefined && host.version === 5 && !ageHeld(p)) {
    dropPublish(host, p, 'expired')
    return
  }
  const max = host.clientMaximumPacketSize
  if (max > 0 && p.frame.buf.length > max) {
    dropPublish(host, p, 'packet-too-large')
    return
  }
  if (p.qos === 0 && host.pressure === 'shedding' && host.socket.writableLength > host.settings.maxOutboundBuffer) {
    dropPublish(host, p, 'queue-full')
    return
  }
  let buf = p.frame.buf
  const aliases = host.aliases
  if (aliases) {
    const h = readPublishHeader(p.frame)
    if (h) {
      const aliased = alias(p.frame, h, aliases)
      // [MQTT-3.1.2-24] the alias property must not push it over the client's maximum
      if (max > 0 && aliased.length > max) aliases.forget(h.topic)
      else buf = aliased
    }
  }
  host.ctx.observer.publishSent(p.qos, buf.length)
  out.push(buf)
}

/**
 * PUBLISH frames culex encoded itself (flows/fast-paths.ts), through the
 * steps of every PUBLISH. `writtenAt` is now: one the window admits at once
 * has not waited, and only one it holds is aged when released (step 2).
 */
export function sendOwnPublishes (host: PublishOutHost, frames: Frame[], writtenAt: number): void {
  const out: Buffer[] = []
  host.writtenAt = writtenAt
  for (const frame of frames) onOutboundPublish(host, frame, out, true)
  write(host, out)
}

/**
 * Fresh QoS 0 PUBLISHes culex encoded itself, in one buffer
 * (flows/fast-paths.ts' batch of a turn). When no step can change, hold or
 * drop one (no outbound topic aliases, nothing waiting in the window, not
 * shedding, none larger than the client's Maximum Packet Size
 * [MQTT-3.1.2-24]), the buffer goes to the socket as it is: no object per
 * message, and no concatenation. Steps 1-2 have nothing to do for them.
 * Otherwise each goes through the steps (`sendOwnPublishes`).
 */
export function sendOwnQoS0 (host: PublishOutHost, batch: QoS0Batch, writtenAt: number): void {
  if (batch.used === 0) return
  const max = host.clientMaximumPacketSize
  let plain = host.aliases === undefined && host.window.queued === 0 && host.pressure !== 'shedding'
  if (plain && max > 0) for (const n of batch.lengths) if (n > max) plain = false
  if (!plain) {
    sendOwnPublishes(host, batch.frames(), writtenAt)
    return
  }
  host.writtenAt = writtenAt
  for (const n of batch.lengths) host.ctx.observer.publishSent(0, n)
  write(host, [batch.bytes()])
}

/** [MQTT-3.3.2-8] the topic replaced by an alias, set or reused (outbound/topic-alias.ts). */
export function alias (frame: Frame, header: PublishHeader, aliases: OutboundAliases): Buffer {
  const use = aliases.use(header.topic)
  if (use.kind === 'none') return frame.buf
  const packet = decodeFrame(frame, 5)
  if (packet instanceof Error || packet.cmd !== 'publish') return frame.buf
  const aliased = { ...packet, properties: { ...packet.properties, topicAlias: use.alias } }
  if (use.kind === 'reuse') aliased.topic = ''
  return encode(aliased, 5)
}

/** [MQTT-3.3.2-6] reduces the Message Expiry Interval of a held message by its wait; false when it expired [MQTT-3.3.2-5]. */
export function ageHeld (p: HeldPublish, now: number = Date.now()): boolean {
  const waitedSeconds = Math.floor((now - (p.heldAt as number)) / 1000)
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
export function dropPublish (host: PublishOutHost, p: HeldPublish, reason: 'queue-full' | 'packet-too-large' | 'expired'): void {
  host.ctx.observer.messageDropped(reason, 1)
  host.log.repeated('warn', 'dropped ' + reason, { reason, qos: p.qos, bytes: p.frame.buf.length }, 'message to client dropped')
  const id = p.packetId
  if (p.qos === 0 || id === undefined) return
  host.window.complete(id)
  // a shared delivery: its group counts it as delivered (spec 3.1.2.11.4), after the current step
  if (host.ctx.shared !== undefined) queueMicrotask(() => host.ctx.shared?.onAck(host.client, id, 0))
  // a shared delivery culex sent itself: aedes has no flow to complete
  if (host.direct?.delete(id) === true) return
  if (p.qos === 1) {
    host.toBroker({ cmd: 'puback', messageId: id })
  } else {
    (host.droppedQoS2 ??= new Set()).add(id)
    host.toBroker({ cmd: 'pubrec', messageId: id })
  }
}

/** The window made room: the messages waiting for it go, in order. */
export function releaseHeld (host: PublishOutHost): void {
  const out: Buffer[] = []
  // a released message may be dropped (expired, too large), freeing its place again
  for (let released = host.window.release(); released.length > 0; released = host.window.release()) {
    for (const p of released) sendPublish(host, p, out)
  }
  write(host, out)
  progress(host)
}

/** The client stalled (flows/client-writer.ts `shed`): the queue limits apply to what waits. */
export function shedHeld (host: PublishOutHost): void {
  host.log.repeated('warn', 'stalled', { queued: host.window.queued, buffered: host.socket.writableLength }, 'client is not keeping up: queue limits apply')
  for (const dropped of host.window.trim()) dropPublish(host, dropped, 'queue-full')
}

/**
 * [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size goes
 * out: Reason String and User Properties are left out first
 * [MQTT-3.1.2-25]; a packet that still does not fit is not sent.
 */
export function fitBuf (host: Pick<PublishOutHost, 'clientMaximumPacketSize' | 'version' | 'ctx' | 'log'>, buf: Buffer): Buffer {
  const max = host.clientMaximumPacketSize
  if (max === 0 || buf.length <= max) return buf
  const decoded = decodeBuffer(buf, host.version)
  if (!(decoded instanceof Error) && 'properties' in decoded && decoded.properties) {
    const props = { ...decoded.properties } as Record<string, unknown>
    delete props.reasonString
    delete props.userProperties
    const smaller = encode({ ...decoded, properties: props } as Packet, host.version)
    if (smaller.length <= max) return smaller
  }
  host.ctx.observer.messageDropped('packet-too-large', 1)
  host.log.repeated('warn', 'packet too large', { bytes: buf.length, maximum: max }, 'packet larger than the client accepts: not sent')
  return Buffer.alloc(0)
}

/**
 * aedes wrote a PUBREL for a QoS 2 message to the client (spec 4.3.3): the
 * message is released from the window; one culex dropped is completed with
 * aedes itself, its PUBREL never sent.
 */
export function onOutboundPubrel (host: PublishOutHost, frame: Frame, out: Buffer[]): void {
  const id = ackPacketId(frame)
  if (host.droppedQoS2?.delete(id) === true) {
    host.toBroker({ cmd: 'pubcomp', messageId: id })
    return
  }
  host.window.released(id)
  out.push(fitBuf(host, frame.buf))
}
