/**
 * DISCONNECT (spec 3.14): the client's DISCONNECT, checked before aedes
 * applies it, and the server's last word: the DISCONNECT it sends and its
 * reason codes, or the CONNACK that refuses a client still waiting for one
 * (spec 4.13).
 */
import type { Packet } from 'mqtt-packet'
import type { BrokerObserver } from '../../observer.js'
import type { ProtocolVersion } from '../codec.js'
import { decodeOther } from '../decode.js'
import type { Frame } from '../frame.js'
import { checkDisconnect } from '../inbound/disconnect-auth.js'
import { ReasonCode, v5ToV311ConnackCode } from '../reason-codes.js'
import { PASS, type Verdict } from './verdict.js'

/** What the DISCONNECT flow reads and records on the connection. */
export interface DisconnectHost {
  readonly version: ProtocolVersion | undefined
  /** the CONNECT's Session Expiry Interval */
  readonly connectSessionExpiry: number
  /** which side's DISCONNECT ended the connection */
  disconnectBy: 'client' | 'server' | undefined
  disconnectReason: number | undefined
}

/**
 * The client's DISCONNECT:
 * 1. MQTT 5: checked before aedes applies it (inbound/disconnect-auth.ts): a
 *    repeated property, or a Session Expiry Interval set after a CONNECT
 *    with 0 [MQTT-3.14.2-2], is answered with DISCONNECT 0x82 and the
 *    session keeps the expiry the CONNECT gave it;
 * 2. its reason code is recorded for the lifecycle events;
 * 3. [MQTT-3.14.4-3] [MQTT-3.1.2-8] only a DISCONNECT 0x00 discards the Will:
 *    aedes keeps it for 0x04 alone, so any other client reason reaches it as 0x04.
 */
export function onDisconnect (host: DisconnectHost, frame: Frame): Verdict {
  if (host.version === 5) {
    const request = checkDisconnect(frame, host.connectSessionExpiry)
    if ('reason' in request) return { kind: 'close', reasonCode: request.reasonCode, reason: `invalid DISCONNECT: ${request.reason}` }
  }
  host.disconnectBy = 'client'
  const reason = host.disconnectReason = frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
  if (host.version === 5 && reason !== ReasonCode.Success && reason !== ReasonCode.DisconnectWithWill) {
    const packet = decodeOther(frame, host.version)
    if (packet instanceof Error) return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: packet.message }
    return { kind: 'replace', packets: [{ ...packet, reasonCode: ReasonCode.DisconnectWithWill } as Packet] }
  }
  return PASS
}

/** What the server's last word reads and records on the connection. */
export interface ServerDisconnectHost extends DisconnectHost {
  readonly connectSeen: boolean
  connackSent: boolean
  readonly accepted: boolean
  /** a DISCONNECT went to the client */
  disconnectSent: boolean
  readonly ctx: { readonly observer: Pick<BrokerObserver, 'connectRefused'> }
  /** a packet the gateway built itself */
  sendPacket (packet: Packet): void
}

/** aedes wrote a DISCONNECT to the client: recorded for the lifecycle events, unless the client's ended the connection. */
export function disconnectWritten (host: ServerDisconnectHost, frame: Frame): void {
  host.disconnectSent = true
  host.disconnectBy ??= 'server'
  host.disconnectReason ??= frame.buf.length > frame.headerLength ? frame.buf[frame.headerLength] as number : 0
}

/**
 * The server ends the connection with `reasonCode` [MQTT-4.13.1-1]: a v5
 * client that has its CONNACK gets DISCONNECT; one still waiting for CONNACK
 * gets a CONNACK carrying it (spec 4.13.2); 3.1.1 after CONNACK is closed.
 * `reason`: the gateway's own words, sent as a CONNACK's Reason String
 * (never an error from aedes or the store).
 */
export function sendFinal (host: ServerDisconnectHost, reasonCode: number, reason?: string): void {
  if (host.version === 5 && host.accepted && !host.disconnectSent) {
    // [MQTT-3.14.2-1] only DISCONNECT reason codes: CONNACK-only ones are mapped
    const code = disconnectReasonCode(reasonCode)
    host.disconnectSent = true
    host.disconnectBy = 'server'
    host.disconnectReason = code
    host.sendPacket({ cmd: 'disconnect', reasonCode: code })
  } else if (host.version !== undefined && host.connectSeen && !host.connackSent) {
    host.connackSent = true
    host.ctx.observer.connectRefused(reasonCode)
    if (host.version === 5) {
      // the reason goes out as Reason String, left out when the CONNACK would not fit (fitBuf) [MQTT-3.2.2-19]
      host.sendPacket(reason === undefined
        ? { cmd: 'connack', sessionPresent: false, reasonCode }
        : { cmd: 'connack', sessionPresent: false, reasonCode, properties: { reasonString: reason } })
    } else if (reasonCode !== ReasonCode.MalformedPacket && reasonCode !== ReasonCode.ProtocolError && reasonCode !== ReasonCode.TopicNameInvalid) {
      // 3.1.1 [MQTT-3.1.4-1]: a CONNECT that does not conform is closed without CONNACK; so is a
      // Will Topic culex refuses, as 3.1.1 closes for a PUBLISH Topic Name it refuses
      host.sendPacket({ cmd: 'connack', sessionPresent: false, returnCode: v5ToV311ConnackCode(reasonCode) })
    }
  }
}

/** [MQTT-3.14.2-1] CONNACK-only reason codes have no place in a DISCONNECT (spec 3.14.2.1). */
export function disconnectReasonCode (code: number): number {
  switch (code) {
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
    case ReasonCode.Banned:
      return ReasonCode.NotAuthorized
    case ReasonCode.UnsupportedProtocolVersion:
    case ReasonCode.ClientIdentifierNotValid:
    case ReasonCode.ServerUnavailable:
    case ReasonCode.PacketIdentifierInUse:
    case ReasonCode.PacketIdentifierNotFound:
      return ReasonCode.UnspecifiedError
    default:
      return code
  }
}

/** Maps the error aedes closed a connection with to the reason code the client is told. */
export function classifyBrokerError (err: Error): number {
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
