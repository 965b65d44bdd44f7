/**
 * PUBLISH from the client (spec 3.3), checked before aedes sees it:
 *
 * 1. [MQTT-3.3.1-4] QoS 3 is a Malformed Packet;
 * 2. header checks (inbound/publish.ts): Maximum QoS, packet identifier,
 *    Retain Available, Topic Name;
 * 3. MQTT 5 properties, checked and decoded only when present
 *    (property-rules.ts, then inbound/publish.ts): repeated or ill-formed
 *    properties, Payload Format Indicator, Subscription Identifier; an
 *    unknown topic alias with an empty topic is a Protocol Error
 *    (spec 3.3.2.3.4);
 * 4. the message rate, then the ACL (`deniedPublish`);
 * 5. spec 4.3.2, 4.3.3: a QoS 1 PUBLISH reusing the id of a QoS 2 flow in
 *    progress, or the reverse, gets 0x91;
 * 6. spec 4.9: a new QoS 1/2 packet id counts against the Receive Maximum
 *    culex advertised; one over it is DISCONNECT 0x93 [MQTT-3.3.4-7], which
 *    also bounds the inbound QoS 2 state a client can pin
 *    (GHSA-5jvp-3p2v-5qgf, GHSA-p8r9-qf8w-p73r);
 * 7. its acknowledgement, written by aedes, takes its place in order
 *    [MQTT-4.6.0-2] [MQTT-4.6.0-3] (flows/acks.ts);
 * 8. a retained PUBLISH and the client's SUBSCRIBEs take effect in its order
 *    (inbound/retained-order.ts).
 *
 * A refused PUBLISH is answered here: MQTT 5 gets PUBACK/PUBREC with the
 * reason code, 3.1.1 (which cannot say why) is closed, or for an ACL refusal
 * gets a plain acknowledgement while the message is dropped.
 */
import type { AliasTable } from '../../aedes-internals.js'
import { decodeFrame } from '../codec.js'
import { publishPacket } from '../decode.js'
import { TopicMemo, readPublishHeader, type Frame, type PublishHeader } from '../frame.js'
import { checkPublishHeader, checkPublishProperties, type PublishPolicy } from '../inbound/publish.js'
import { RetainedOrder } from '../inbound/retained-order.js'
import { checkProperties } from '../property-rules.js'
import { ReasonCode, describeReasonCode } from '../reason-codes.js'
import { ackPacket, expectAck, sendOrderedAck, type AcksHost } from './acks.js'
import { DROP, type Verdict } from './verdict.js'

export interface PublishInHost extends AcksHost {
  readonly settings: AcksHost['settings'] & PublishPolicy & { readonly receiveMaximum: number }
  readonly ctx: AcksHost['ctx'] & {
    readonly observer: AcksHost['ctx']['observer'] & { publishReceived: (qos: number, bytes: number) => void }
  }
  readonly log: AcksHost['log']
  /** shared with aedes (`client._topicAliases`), which validates the aliases */
  readonly inboundAliases: AliasTable
  /** made on the first retained PUBLISH */
  retainedOrder: RetainedOrder | undefined
  /** the last Topic Name, made on the first PUBLISH */
  topicMemo?: TopicMemo | undefined
  /** SUBSCRIBEs handed to aedes and not yet answered */
  awaitingSuback (): boolean
  /** per PUBLISH: false when the client exceeds its message rate */
  takePublish (): boolean
  /** the ACL's write right */
  mayPublish (topic: string): boolean
}

/** Steps 1-7. */
export function onPublish (host: PublishInHost, frame: Frame): Verdict {
  const memo = host.topicMemo ??= new TopicMemo()
  const header = readPublishHeader(frame, memo)
  if (header === null) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'truncated PUBLISH' }
  if (header.qos === 3) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'PUBLISH with QoS 3' }
  host.ctx.observer.publishReceived(header.qos, frame.buf.length)
  const version = host.version ?? 4
  let topic = header.topic
  const checked = checkPublishHeader(header, frame, version, host.settings, memo)
  if (checked.kind !== 'ok') return refusePublish(host, header, checked)
  let packet = publishPacket(frame, header, version)
  if (packet === null) {
    // only a PUBLISH that carries properties pays for their checks
    const raw = checkProperties(frame.buf, header.afterId, frame.buf.length, 'publish')
    if (typeof raw !== 'number') return { kind: 'close', reasonCode: raw.reasonCode, reason: raw.reason }
    const decoded = decodeFrame(frame, 5)
    if (decoded instanceof Error || decoded.cmd !== 'publish') {
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed PUBLISH' }
    }
    packet = decoded
    const props = checkPublishProperties(decoded, host.settings)
    if (props.kind !== 'ok') return refusePublish(host, header, props)
    const alias = decoded.properties?.topicAlias
    if (alias !== undefined) {
      // aedes refuses an alias of 0 or over the maximum (DISCONNECT 0x94);
      // culex follows the mapping
      if (topic.length > 0) host.inboundAliases.set(alias, topic)
      else {
        const known = host.inboundAliases.get(alias)
        if (known === undefined && alias >= 1 && alias <= host.settings.topicAliasMaximum) {
          // spec 3.3.2.3.4: an empty Topic Name with an alias the client never set is a Protocol Error
          return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: `unknown topic alias ${alias}` }
        }
        topic = known ?? ''
      }
    }
  }
  if (!host.takePublish()) {
    return { kind: 'close', reasonCode: ReasonCode.MessageRateTooHigh, reason: 'message rate too high' }
  }
  if (!host.mayPublish(topic)) return deniedPublish(host, header)
  const id = header.packetId
  if (id !== undefined) {
    const flow = host.inflightIn.get(id)
    if (flow !== undefined) {
      if (flow.qos !== header.qos) {
        return refusePublish(host, header, { kind: 'refuse', reasonCode: ReasonCode.PacketIdentifierInUse, reason: `packet id ${id} in use` })
      }
    } else {
      if (host.inflightIn.size >= host.settings.receiveMaximum) {
        return { kind: 'close', reasonCode: ReasonCode.ReceiveMaximumExceeded, reason: `more than ${host.settings.receiveMaximum} QoS 1/2 messages in flight` }
      }
      host.inflightIn.set(id, { qos: header.qos, topic })
    }
    expectAck(host, id)
  }
  if (header.retain) (host.retainedOrder ??= new RetainedOrder()).forwarded(header.qos === 2 ? id : undefined)
  return { kind: 'replace', packets: [packet] }
}

/** Step 8: a retained PUBLISH waits for the SUBSCRIBEs before it to be answered (inbound/retained-order.ts). */
export function onRetainedPublish (host: PublishInHost, frame: Frame): Verdict {
  if (!host.awaitingSuback()) return onPublish(host, frame)
  const order = host.retainedOrder ??= new RetainedOrder()
  return { kind: 'defer', decision: order.whenSubscribed().then(() => onPublish(host, frame)) }
}

/**
 * An ACL refusal: MQTT 5 gets PUBACK/PUBREC 0x87; 3.1.1, which has no way
 * to say it, gets a plain acknowledgement and the message is dropped, as
 * mosquitto does (its PUBREL is answered by aedes).
 */
export function deniedPublish (host: PublishInHost, header: PublishHeader): Verdict {
  host.log.repeated('info', 'publish not authorized', { topic: header.topic }, 'publish not authorized')
  if (host.version === 5) {
    return refusePublish(host, header, { kind: 'refuse', reasonCode: ReasonCode.NotAuthorized, reason: 'not authorized' })
  }
  host.ctx.observer.messageDropped('not-authorized', 1)
  if (header.packetId !== undefined) sendOrderedAck(host, header.packetId, { cmd: header.qos === 1 ? 'puback' : 'pubrec', messageId: header.packetId })
  return DROP
}

/** A refusal: MQTT 5 PUBACK/PUBREC with the reason code, in order; 3.1.1, or a refusal that disconnects, closes. */
export function refusePublish (host: PublishInHost, header: PublishHeader, verdict: { kind: 'refuse' | 'disconnect', reasonCode: number, reason: string }): Verdict {
  if (verdict.kind === 'disconnect' || host.version !== 5) {
    return { kind: 'close', reasonCode: verdict.reasonCode, reason: verdict.reason }
  }
  host.log.repeated('debug', 'publish refused ' + verdict.reasonCode, { topic: header.topic, reasonCode: describeReasonCode(verdict.reasonCode), reason: verdict.reason }, 'publish refused')
  host.ctx.observer.messageDropped('not-authorized', 1)
  if (header.qos === 0 || header.packetId === undefined) return DROP
  sendOrderedAck(host, header.packetId, ackPacket(host, header.qos === 1 ? 'puback' : 'pubrec', header.packetId, verdict.reasonCode, verdict.reason))
  return DROP
}
