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
import { encodePublish } from './encode-publish.js'

interface Encoded {
  brokerId: string
  brokerCounter: number
  version: ProtocolVersion
  retain: boolean
  topic: string
  payload: unknown
  properties: unknown
  frame: Frame
}

/** A QoS 0 PUBLISH (spec 3.3), as encode-publish.ts writes it. */
export function encodeQoS0 (packet: AedesPublishPacket, retain: boolean, version: ProtocolVersion): Buffer {
  return encodePublish({ topic: packet.topic, payload: packet.payload, qos: 0, retain, dup: false, properties: packet.properties }, version)
}

export class EncodeOnce {
  private last: Encoded | undefined

  /**
   * The frame of `packet` delivered at QoS 0 to a client speaking `version`.
   * DUP is 0 for QoS 0 [MQTT-3.3.1-2]. The packet must carry the broker id
   * and counter aedes gives every live message (they identify the message).
   */
  frame (packet: AedesPublishPacket, version: ProtocolVersion): Frame {
    const last = this.last
    const retain = packet.retain === true
    if (last !== undefined &&
      last.brokerCounter === packet.brokerCounter &&
      last.brokerId === packet.brokerId &&
      last.version === version &&
      last.retain === retain &&
      last.topic === packet.topic &&
      last.payload === packet.payload &&
      last.properties === packet.properties) {
      return last.frame
    }
    const frame = frameOf(encodeQoS0(packet, retain, version))
    this.last = {
      brokerId: packet.brokerId,
      brokerCounter: packet.brokerCounter,
      version,
      retain,
      topic: packet.topic,
      payload: packet.payload,
      properties: packet.properties,
      frame
    }
    return frame
  }
}
