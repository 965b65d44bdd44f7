/**
 * CONNECT and its CONNACK (spec 3.1, 3.2): the checks aedes does not make,
 * what the gateway learns of the client, the gate that holds the packets
 * behind a CONNECT until its CONNACK is out (inbound/connack-gate.ts), and
 * the CONNACK as culex sends it: its capabilities, Session Present, the
 * enhanced authentication's method and data, fitted to the client's
 * Maximum Packet Size.
 */
import { isUtf8 } from 'node:buffer'
import type { AedesPublishPacket, Client } from 'aedes'
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet'
import type { ConnectionPolicy, PolicySubject } from '../../auth/admission.js'
import type { BrokerObserver } from '../../observer.js'
import type { SharedSubscriptions } from '../../shared/dispatcher.js'
import { clientSubscriptions } from '../../aedes-internals.js'
import { decodeFrame, encode, type ProtocolVersion } from '../codec.js'
import type { Frame } from '../frame.js'
import { ConnackGate, afterConnack, afterConnect, type ConnackGateState } from '../inbound/connack-gate.js'
import { inspectConnect, UNACCEPTABLE_PROTOCOL_VERSION_CONNACK, UNSUPPORTED_PROTOCOL_VERSION_CONNACK_V5 } from '../inbound/connect.js'
import { willTopicOverLimits, type PublishPolicy } from '../inbound/publish.js'
import { fitConnack } from '../outbound/fit-connack.js'
import { ReasonCode, describeReasonCode, v311ToV5ConnackCode } from '../reason-codes.js'
import type { Transport } from '../transport-kind.js'
import { startConnectAuth, takeConnackAuthData, type AuthHost } from './auth.js'
import { routeDeliveries } from './subscribe.js'
import type { Verdict } from './verdict.js'

/** The broker settings CONNECT is checked against and its CONNACK states. */
export interface ConnectSettings extends Pick<PublishPolicy, 'maximumQoS' | 'retainAvailable' | 'maxTopicLength' | 'maxTopicLevels' | 'validatePayloadFormat'> {
  wildcardSubscriptionAvailable: boolean
  subscriptionIdentifierAvailable: boolean
  sharedSubscriptionAvailable: boolean
}

/** What the CONNECT flow reads and records on the connection. */
export interface ConnectHost extends AuthHost, PolicySubject {
  readonly client: Client
  readonly meta: { readonly transport: Transport, readonly remoteAddress: string | undefined }
  readonly settings: ConnectSettings
  readonly ctx: AuthHost['ctx'] & {
    readonly observer: Pick<BrokerObserver, 'connectRefused' | 'clientAccepted'>
    readonly policy: Pick<ConnectionPolicy, 'admit'>
    readonly shared: Pick<SharedSubscriptions, 'isMember'> | undefined
  }
  version: ProtocolVersion | undefined
  connectSeen: boolean
  connackSent: boolean
  accepted: boolean
  /** the Client Identifier of the CONNECT (aedes may assign one: `client.id`) */
  connectClientId: string | undefined
  username: string | undefined
  cleanStart: boolean
  requestProblemInformation: boolean
  connectSessionExpiry: number
  clientMaximumPacketSize: number
  /** a session for the Client Identifier existed at CONNECT (session-claim.ts) */
  readonly sessionExisted: boolean
  usesSubscriptionIds: boolean
  deliveriesRouted: boolean
  /** a live QoS 0 message the gateway sends itself; false: aedes delivers it (flows/subscribe.ts `routeDeliveries`) */
  takeLiveQoS0 (packet: AedesPublishPacket): boolean
  /** what happens to frames between CONNECT and CONNACK (inbound/connack-gate.ts) */
  gate: ConnackGateState
  /** aedes finished writing the CONNACK ('connackSent') */
  brokerConnacked: boolean
  /** the client's Receive Maximum and Topic Alias Maximum, for what goes out to it */
  clientLimits (receiveMaximum: number, topicAliasMaximum: number): void
  /** the CONNACK resumes a session whose queued messages aedes sends next */
  expectQueuedMessages (): void
  /** a refused CONNECT: the frames held behind it are never checked */
  dropHeldFrames (): void
  /** the frames held behind the CONNECT go on to be checked, in order */
  resumeHeldFrames (): void
  writeToClient (buf: Buffer): void
  close (reason: string): void
}

/**
 * Steps:
 * 1. [MQTT-3.1.0-2] a second CONNECT is a Protocol Error;
 * 2. protocol name and level (inbound/connect.ts) [MQTT-3.1.2-1] [MQTT-3.1.2-2];
 * 3. learn the client's Receive Maximum, Maximum Packet Size, Topic Alias
 *    Maximum and Request Problem Information (`learnConnect`);
 * 4. [MQTT-3.2.0-1] [MQTT-3.1.4-6] the packets after it wait for the
 *    CONNACK (inbound/connack-gate.ts);
 * 5. admission limits (lib/auth/admission.ts);
 * 6. a Will Topic over the topic length or level limits is refused with
 *    CONNACK 0x90, as a PUBLISH Topic Name over them gets 0x90;
 *    [MQTT-3.2.2-12] [MQTT-3.2.2-13] a Will above the Maximum QoS, or
 *    retained when retain is unavailable, is refused with CONNACK 0x9B / 0x9A;
 *    a Will whose Payload Format Indicator says UTF-8 and whose payload is
 *    not, with 0x99;
 * 7. an Authentication Method starts enhanced authentication (spec 4.12, auth.ts).
 */
export function onConnect (host: ConnectHost, frame: Frame): Verdict {
  if (host.connectSeen) {
    return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'second CONNECT on one connection' }
  }
  host.connectSeen = true
  const inspection = inspectConnect(frame)
  switch (inspection.kind) {
    case 'bad-protocol-name':
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'protocol name is not MQTT' }
    case 'bad-version':
      // level 5 is only here with a name other than MQTT: the client reads an MQTT 5 CONNACK
      host.writeToClient(inspection.version === 5 ? UNSUPPORTED_PROTOCOL_VERSION_CONNACK_V5 : UNACCEPTABLE_PROTOCOL_VERSION_CONNACK)
      host.connackSent = true
      host.ctx.observer.connectRefused(ReasonCode.UnsupportedProtocolVersion)
      return { kind: 'close', reasonCode: ReasonCode.UnsupportedProtocolVersion, reason: `unsupported protocol level ${inspection.version}` }
    case 'malformed':
      host.version = inspection.version
      return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: `malformed CONNECT: ${inspection.reason}` }
    case 'invalid':
      host.version = inspection.version
      return { kind: 'close', reasonCode: inspection.reasonCode, reason: `invalid CONNECT: ${inspection.reason}` }
    case 'ok':
      break
  }
  const packet = inspection.packet
  learnConnect(host, packet, inspection.version)
  if (host.version === 3 && packet.clientId === '') {
    // MQTT 3.1 (MQIsdp) has no empty Client Identifiers: return code 2, identifier rejected
    return { kind: 'close', reasonCode: ReasonCode.ClientIdentifierNotValid, reason: 'empty Client Identifier in MQTT 3.1' }
  }
  host.gate = afterConnect(host.version === 5 && packet.properties?.authenticationMethod !== undefined)
  const refused = host.ctx.policy.admit(host, packet)
  if (refused !== undefined) return { kind: 'close', reasonCode: refused, reason: `connection refused: ${describeReasonCode(refused)}` }
  const will = packet.will
  const settings = host.settings
  if (will && willTopicOverLimits(will.topic, settings)) {
    // 0x90 as for a PUBLISH Topic Name over them (inbound/publish.ts); 3.1.1 has no such return code: closed (sendFinal)
    return { kind: 'close', reasonCode: ReasonCode.TopicNameInvalid, reason: 'Will Topic over the topic limits' }
  }
  if (will && (will.qos ?? 0) > settings.maximumQoS) {
    return { kind: 'close', reasonCode: ReasonCode.QoSNotSupported, reason: 'will QoS above the maximum' }
  }
  if (will?.retain === true && !settings.retainAvailable) {
    return { kind: 'close', reasonCode: ReasonCode.RetainNotSupported, reason: 'retained will while retain is unavailable' }
  }
  if (will?.properties?.payloadFormatIndicator === true && settings.validatePayloadFormat && typeof will.payload !== 'string' && !isUtf8(will.payload)) {
    // spec 3.1.3.2.3: the Server MAY validate the Will Payload against its format
    return { kind: 'close', reasonCode: ReasonCode.PayloadFormatInvalid, reason: 'Will Payload is not valid UTF-8' }
  }
  const method = packet.properties?.authenticationMethod
  if (host.version === 5 && method !== undefined) return startConnectAuth(host, packet, method)
  return { kind: 'replace', packets: [packet] }
}

function learnConnect (host: ConnectHost, packet: IConnectPacket, version: ProtocolVersion): void {
  host.version = version
  host.connectClientId = packet.clientId
  host.cleanStart = packet.clean !== false
  // a resumed session's subscriptions are restored during CONNECT
  if (!host.cleanStart) routeDeliveries(host)
  host.username = packet.username
  host.log.bind({ clientId: packet.clientId || undefined })
  if (version === 5) {
    const props = packet.properties
    host.requestProblemInformation = props?.requestProblemInformation !== false
    host.connectSessionExpiry = props?.sessionExpiryInterval ?? 0
    host.clientMaximumPacketSize = props?.maximumPacketSize ?? 0
    // spec 3.1.2.11.3: an absent Receive Maximum means 65,535
    host.clientLimits(props?.receiveMaximum ?? 65535, props?.topicAliasMaximum ?? 0)
  }
}

/**
 * The CONNACK went out (flows/outbound.ts): the frames the
 * client sent after its CONNECT are checked now, in order, if it was
 * accepted, behind the CONNACK; if it was refused they never are.
 */
export function connackWritten (host: ConnectHost, accepted: boolean): void {
  if (!accepted) {
    host.gate = afterConnack(false)
    host.dropHeldFrames()
    return
  }
  // the CONNACK is out, an AUTH exchange over: what comes now waits for aedes
  host.gate = ConnackGate.Waiting
  if (host.brokerConnacked) openGate(host)
}

/**
 * aedes finished writing the CONNACK (its 'connackSent'): the frames held
 * behind the CONNECT go to it from the next tick, once it counts the client
 * as acknowledged and handles packets at once rather than queueing them
 * (its queue holds only a few dozen).
 */
export function brokerWroteConnack (host: ConnectHost): void {
  host.brokerConnacked = true
  if (host.connackSent && host.accepted) openGate(host)
}

/** Both the CONNACK is queued for the socket and aedes counts the client as acknowledged. */
function openGate (host: ConnectHost): void {
  if (host.gate === ConnackGate.Open) return
  host.gate = afterConnack(true)
  host.resumeHeldFrames()
}

/** accepted MQTT 5 CONNACKs as aedes wrote them → as culex sends them, per broker settings */
const connackRewrites = new WeakMap<ConnectSettings, Map<string, Buffer>>()
const CONNACK_CACHE_SIZE = 64

/**
 * The CONNACK aedes wrote, as the client gets it:
 * 1. refused: counted and logged; [MQTT-3.2.2-6] a 3.1.1 return code over 5 becomes 3;
 * 2. [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present for a resumed session
 *    the store or a shared group holds;
 * 3. an accepted MQTT 5 CONNACK states culex's capabilities (spec 3.2.2.3,
 *    `rewriteConnack`).
 */
export function onConnack (host: ConnectHost, frame: Frame): Buffer {
  host.connackSent = true
  const code = frame.buf[frame.headerLength + 1] as number
  host.accepted = code === 0
  if (!host.accepted) {
    host.ctx.observer.connectRefused(host.version === 5 ? code : v311ToV5ConnackCode(code))
    host.log.info({ reasonCode: host.version === 5 ? describeReasonCode(code) : code }, 'connection refused')
    if (host.version !== 5 && code > 5) {
      // 3.1.1 knows return codes 1-5; aedes answers 6 to a keep-alive over its limit
      const buf = Buffer.from(frame.buf)
      buf[frame.headerLength + 1] = 3
      return buf
    }
    return frame.buf
  }
  if (!host.cleanStart && (host.sessionExisted || host.ctx.shared?.isMember(host.client.id) === true)) {
    // a resumed session is present whether or not it holds subscriptions
    // (aedes says 1 only when it restored some), or holds only shared ones
    frame.buf[frame.headerLength] = (frame.buf[frame.headerLength] as number) | 0x01
  }
  if (host.version === 5) {
    // a resumed session's subscriptions are restored before CONNACK
    const subs = clientSubscriptions(host.client)
    for (const filter in subs) if (subs[filter]?.si !== undefined) { host.usesSubscriptionIds = true; break }
  }
  // an empty Client Identifier was assigned one by the broker: log under it
  if (!host.connectClientId) host.log.bind({ clientId: host.client.id })
  // a present session may have messages queued: aedes sends them next
  if (((frame.buf[frame.headerLength] as number) & 0x01) !== 0) host.expectQueuedMessages()
  host.ctx.observer.clientAccepted(host.meta.transport, host.version ?? 4)
  host.log.info({ version: host.version, auth: host.enhancedAuth?.method }, 'client connected')
  if (host.version !== 5) return frame.buf
  if (host.enhancedAuth) return rewriteConnack(host, frame)
  // without enhanced authentication the rewrite depends only on aedes' bytes
  // and the broker's settings, so connections share the result
  let rewritten = connackRewrites.get(host.settings)
  if (!rewritten) connackRewrites.set(host.settings, rewritten = new Map())
  const key = frame.buf.toString('latin1')
  let buf = rewritten.get(key)
  if (!buf) {
    // broker-assigned client ids make every CONNACK different: keep the cache small
    if (rewritten.size >= CONNACK_CACHE_SIZE) rewritten.clear()
    buf = rewriteConnack(host, frame)
    rewritten.set(key, buf)
  }
  return buf
}

/**
 * An accepted MQTT 5 CONNACK states Maximum QoS [MQTT-3.2.2-9], Retain
 * Available, Wildcard, Subscription Identifier and Shared Subscription
 * Available, and the Authentication Method and Data of an enhanced
 * authentication (spec 3.2.2.3.17, 4.12).
 */
function rewriteConnack (host: ConnectHost, frame: Frame): Buffer {
  const packet = decodeFrame(frame, 5) as IConnackPacket | Error
  if (packet instanceof Error) return frame.buf
  const s = host.settings
  const props: NonNullable<IConnackPacket['properties']> = { ...packet.properties }
  if (s.maximumQoS < 2) props.maximumQoS = s.maximumQoS
  if (!s.retainAvailable) props.retainAvailable = false
  if (!s.wildcardSubscriptionAvailable) props.wildcardSubscriptionAvailable = false
  if (!s.subscriptionIdentifierAvailable) props.subscriptionIdentifiersAvailable = false
  props.sharedSubscriptionAvailable = s.sharedSubscriptionAvailable
  if (host.enhancedAuth) {
    props.authenticationMethod = host.enhancedAuth.method
    const data = takeConnackAuthData(host)
    if (data) props.authenticationData = data
  }
  return encode({ ...packet, properties: props }, 5)
}

/**
 * [MQTT-3.1.2-24] a CONNACK too large for the client is made smaller
 * (outbound/fit-connack.ts: Reason String and User Properties first
 * [MQTT-3.2.2-19] [MQTT-3.2.2-20]); one that still does not fit is not
 * sent, and the connection closes.
 */
export function fitConnackToClient (host: ConnectHost, buf: Buffer): Buffer {
  const max = host.clientMaximumPacketSize
  if (max === 0 || buf.length <= max) return buf
  const smaller = fitConnack(buf, max)
  if (smaller !== undefined) return smaller
  host.log.warn({ bytes: buf.length, maximum: max }, 'CONNACK larger than the client accepts: not sent, closing')
  // not from inside aedes' write of the CONNACK
  process.nextTick(() => { host.close('CONNACK larger than the client\'s Maximum Packet Size') })
  return Buffer.alloc(0)
}
