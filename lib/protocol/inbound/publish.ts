/**
 * PUBLISH from a client (spec 3.3), the checks aedes does not make or only
 * answers by closing the connection. Each returns what the gateway does.
 */
import { isUtf8 } from 'node:buffer'
import type { IPublishPacket } from 'mqtt-packet'
import { ReasonCode } from '../reason-codes.js'
import type { Frame, PublishHeader, TopicMemo } from '../frame.js'
import { isWellFormedString } from '../utf8.js'
import { topicLevels } from '../topic.js'

export interface PublishPolicy {
  maximumQoS: 0 | 1 | 2
  retainAvailable: boolean
  maxTopicLength: number
  maxTopicLevels: number
  /** answer 0x99 to a Payload Format Indicator of 1 with a payload that is not UTF-8 */
  validatePayloadFormat: boolean
  /** inbound Topic Alias Maximum, advertised in CONNACK (by aedes) */
  topicAliasMaximum: number
}

export type PublishVerdict =
  | { kind: 'ok' }
  /** answer PUBACK/PUBREC with the code (QoS 1/2) or drop (QoS 0); the connection stays */
  | { kind: 'refuse', reasonCode: number, reason: string }
  /** DISCONNECT with the code and close */
  | { kind: 'disconnect', reasonCode: number, reason: string }

const OK: PublishVerdict = { kind: 'ok' }

const MALFORMED_TOPIC: PublishVerdict = { kind: 'disconnect', reasonCode: ReasonCode.MalformedPacket, reason: 'topic name is not a well-formed UTF-8 string' }

/**
 * Steps on the fixed and variable header (no decoding):
 * 1. [MQTT-3.2.2-11] QoS above the Maximum QoS culex advertised: DISCONNECT 0x9B;
 * 2. [MQTT-2.2.1-3] QoS 1/2 with packet identifier 0: Protocol Error;
 * 3. [MQTT-3.2.2-14] RETAIN when Retain Available is 0: DISCONNECT 0x9A;
 * 4. [MQTT-1.5.4-1] [MQTT-1.5.4-2] a Topic Name that is not well-formed
 *    UTF-8 or holds U+0000: Malformed Packet (MQTT 5: DISCONNECT 0x81;
 *    3.1.1: close);
 * 5. [MQTT-3.3.2-2] a Topic Name with a wildcard is refused with 0x90
 *    (3.1.1: the connection is closed);
 * 6. a Topic Name over the length or level limits: 0x90.
 */
export function checkPublishHeader (header: PublishHeader, frame: Frame, version: number, policy: PublishPolicy, memo?: TopicMemo): PublishVerdict {
  if (header.qos > policy.maximumQoS) {
    return { kind: 'disconnect', reasonCode: ReasonCode.QoSNotSupported, reason: `QoS ${header.qos} above the maximum ${policy.maximumQoS}` }
  }
  if (header.packetId === 0) {
    return { kind: 'disconnect', reasonCode: ReasonCode.ProtocolError, reason: 'packet identifier 0' }
  }
  if (header.retain && !policy.retainAvailable) {
    return { kind: 'disconnect', reasonCode: ReasonCode.RetainNotSupported, reason: 'retained messages are not available' }
  }
  const topic = header.topic
  if (topic.length === 0 && version < 5) {
    return { kind: 'disconnect', reasonCode: ReasonCode.ProtocolError, reason: 'empty topic name' } // [MQTT-4.7.3-1]
  }
  // the same bytes as the last topic, which passed steps 4 to 6 (frame.ts TopicMemo)
  if (memo !== undefined && memo.passedVersion === version && memo.passedMaxLength === policy.maxTopicLength && memo.passedMaxLevels === policy.maxTopicLevels) return OK
  // one pass over the decoded topic for steps 4 to 6 (this runs for every PUBLISH)
  let levels = 1
  let wildcard = false
  let high = 0
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i)
    high |= c
    if (c === 0x2f) levels++
    else if (c === 0x23 || c === 0x2b) wildcard = true
    else if (c === 0) return MALFORMED_TOPIC
  }
  // all ASCII decodes only from well-formed bytes (the decoder turns any
  // ill-formed sequence into U+FFFD): the raw bytes need a look otherwise
  if (high > 0x7f) {
    const start = frame.headerLength + 2
    if (!isWellFormedString(frame.buf, start, start + frame.buf.readUInt16BE(frame.headerLength))) return MALFORMED_TOPIC
  }
  if (wildcard) {
    return version === 5
      ? { kind: 'refuse', reasonCode: ReasonCode.TopicNameInvalid, reason: 'wildcard in topic name' }
      : { kind: 'disconnect', reasonCode: ReasonCode.TopicNameInvalid, reason: 'wildcard in topic name' }
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long topic is measured
  if (levels > policy.maxTopicLevels || (topic.length * 3 > policy.maxTopicLength && Buffer.byteLength(topic) > policy.maxTopicLength)) {
    return version === 5
      ? { kind: 'refuse', reasonCode: ReasonCode.TopicNameInvalid, reason: 'topic name over the limits' }
      : { kind: 'disconnect', reasonCode: ReasonCode.TopicNameInvalid, reason: 'topic name over the limits' }
  }
  if (memo !== undefined) {
    memo.passedVersion = version
    memo.passedMaxLength = policy.maxTopicLength
    memo.passedMaxLevels = policy.maxTopicLevels
  }
  return OK
}

/**
 * A Will Topic over the limits a PUBLISH Topic Name has (step 6 of
 * `checkPublishHeader`): the will is published as the client's message.
 */
export function willTopicOverLimits (topic: string, policy: Pick<PublishPolicy, 'maxTopicLength' | 'maxTopicLevels'>): boolean {
  return topicLevels(topic) > policy.maxTopicLevels || Buffer.byteLength(topic) > policy.maxTopicLength
}

/**
 * Steps on the decoded MQTT 5 properties:
 * 1. spec 3.3.2.1 and 3.3.2.3.4: an empty Topic Name needs a Topic Alias
 *    (aedes resolves and validates aliases, answering 0x94);
 * 2. [MQTT-3.3.4-6] a PUBLISH from a client must not carry a Subscription
 *    Identifier: Protocol Error;
 * 3. spec 3.3.2.3.2: Payload Format Indicator 1 with a payload that is not
 *    valid UTF-8: 0x99 (when validation is on).
 */
export function checkPublishProperties (packet: IPublishPacket, policy: PublishPolicy): PublishVerdict {
  const props = packet.properties
  if (packet.topic.length === 0 && props?.topicAlias === undefined) {
    return { kind: 'disconnect', reasonCode: ReasonCode.ProtocolError, reason: 'empty topic name without a topic alias' }
  }
  if (props?.subscriptionIdentifier !== undefined) {
    return { kind: 'disconnect', reasonCode: ReasonCode.ProtocolError, reason: 'subscription identifier in a PUBLISH from a client' }
  }
  if (policy.validatePayloadFormat && props?.payloadFormatIndicator === true) {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    if (!isUtf8(payload)) {
      return { kind: 'refuse', reasonCode: ReasonCode.PayloadFormatInvalid, reason: 'payload is not valid UTF-8' }
    }
  }
  return OK
}
