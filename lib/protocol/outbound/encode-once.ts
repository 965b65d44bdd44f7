/**
 * A live message is encoded once for all its QoS 0 subscribers.
 *
 * aedes copies a message for every subscriber and encodes each copy into the
 * client's stream piece by piece (fixed header, topic, properties, payload:
 * several small stream writes), which the gateway then joins and splits into
 * frames again. For QoS 0 deliveries (no packet id, so the bytes are the
 * same for every subscriber of one protocol version that gets the same
 * retain flag and properties) culex encodes the message once and hands the
 * finished frame to each subscriber's gateway (lib/broker/hooks/forward.ts
 * `sendEncodedOnce`; flows/fast-paths.ts `sendEncoded`).
 *
 * aedes delivers a message to all its subscribers in one go, so remembering
 * the last encoding is enough to share it across them.
 */
import type { AedesPublishPacket } from 'aedes'
import { frameOf, type Frame } from '../frame.js'
import type { ProtocolVersion } from '../codec.js'
import { encodePublish, generated, plainPublishSize, writePlainPublish, type OutboundPublish } from './encode-publish.js'
import type { QoS0Batch } from './qos0-batch.js'

/** A QoS 0 PUBLISH (spec 3.3), as encode-publish.ts writes it. */
export function encodeQoS0 (packet: AedesPublishPacket, retain: boolean, version: ProtocolVersion): Buffer {
  return encodePublish(qos0(packet, retain), version)
}

function qos0 (packet: AedesPublishPacket, retain: boolean): OutboundPublish {
  return { topic: packet.topic, payload: packet.payload, qos: 0, retain, dup: false, properties: packet.properties }
}

export class EncodeOnce {
  // the message encoded last, updated in place (no object per message)
  private has = false
  private brokerId = ''
  private brokerCounter = 0
  private version: ProtocolVersion = 4
  private retain = false
  private topic = ''
  private payload: unknown = undefined
  private properties: unknown = undefined
  /** its bytes: `bytes[start, start + length)`, a frame's own buffer or a batch's */
  private bytes: Buffer | undefined = undefined
  private start = 0
  private length = 0
  /** its frame, made when one is asked for */
  private lastFrame: Frame | undefined = undefined

  private isLast (packet: AedesPublishPacket, retain: boolean, version: ProtocolVersion): boolean {
    return this.has &&
      this.brokerCounter === packet.brokerCounter &&
      this.brokerId === packet.brokerId &&
      this.version === version &&
      this.retain === retain &&
      this.topic === packet.topic &&
      this.payload === packet.payload &&
      this.properties === packet.properties
  }

  private remember (packet: AedesPublishPacket, retain: boolean, version: ProtocolVersion, bytes: Buffer, start: number, length: number, frame: Frame | undefined): void {
    this.has = true
    this.brokerId = packet.brokerId
    this.brokerCounter = packet.brokerCounter
    this.version = version
    this.retain = retain
    this.topic = packet.topic
    this.payload = packet.payload
    this.properties = packet.properties
    this.bytes = bytes
    this.start = start
    this.length = length
    this.lastFrame = frame
  }

  /**
   * The frame of `packet` delivered at QoS 0 to a client speaking `version`.
   * DUP is 0 for QoS 0 [MQTT-3.3.1-2]. The packet must carry the broker id
   * and counter aedes gives every live message (they identify the message).
   */
  frame (packet: AedesPublishPacket, version: ProtocolVersion): Frame {
    const retain = packet.retain === true
    if (this.isLast(packet, retain, version)) {
      return (this.lastFrame ??= frameOf((this.bytes as Buffer).subarray(this.start, this.start + this.length)))
    }
    const frame = frameOf(encodeQoS0(packet, retain, version))
    this.remember(packet, retain, version, frame.buf, 0, frame.buf.length, frame)
    return frame
  }

  /**
   * `frame`'s bytes, written into a client's batch of the turn: the first
   * client a message goes to gets it encoded in place, the next ones copy
   * those bytes.
   */
  append (packet: AedesPublishPacket, version: ProtocolVersion, batch: QoS0Batch): void {
    const retain = packet.retain === true
    if (this.isLast(packet, retain, version)) {
      batch.append(this.bytes as Buffer, this.start, this.length)
      return
    }
    const wire = qos0(packet, retain)
    const size = plainPublishSize(wire, version)
    if (size < 0) {
      const buf = generated(wire, version)
      batch.append(buf)
      this.remember(packet, retain, version, buf, 0, buf.length, undefined)
      return
    }
    const at = batch.reserve(size)
    writePlainPublish(wire, version, batch.buf, at)
    this.remember(packet, retain, version, batch.buf, at, size, undefined)
  }
}
