/**
 * The client's MQTT 5 DISCONNECT (spec 3.14) and AUTH (spec 3.15): both are a
 * Reason Code and a property block, checked on their raw bytes before they
 * are decoded, so that a repeated property never reaches aedes as an array.
 */
import type { Frame } from '../frame.js'
import { ReasonCode } from '../reason-codes.js'
import { scanProperties, type PropertyFault } from '../property-rules.js'

/** What a DISCONNECT asks of the session once it is known to be valid. */
export interface DisconnectRequest {
  readonly reasonCode: number
  /** the Session Expiry Interval it sets, when it carries one */
  readonly sessionExpiryInterval: number | undefined
}

/**
 * Steps:
 * 1. the properties keep spec 2.2.2.2 (property-rules.ts): a Session Expiry
 *    Interval, Reason String or Server Reference given twice is a Protocol Error;
 * 2. [MQTT-3.14.2-2] a Session Expiry Interval above 0 after a CONNECT that
 *    set 0 (or none) is a Protocol Error: the session stays non-persistent.
 */
export function checkDisconnect (frame: Frame, connectSessionExpiry: number): DisconnectRequest | PropertyFault {
  const read = reasonAndProperties(frame, 'disconnect')
  if ('reason' in read) return read
  const sessionExpiryInterval = read.sessionExpiryInterval
  if (sessionExpiryInterval !== undefined) {
    if (connectSessionExpiry === 0 && sessionExpiryInterval > 0) {
      return { reasonCode: ReasonCode.ProtocolError, reason: 'Session Expiry Interval set on DISCONNECT after a CONNECT with 0' }
    }
  }
  return { reasonCode: read.reasonCode, sessionExpiryInterval }
}

/** AUTH: its properties keep spec 2.2.2.2; the exchange itself is judged after decoding. */
export function checkAuth (frame: Frame): PropertyFault | undefined {
  const read = reasonAndProperties(frame, 'auth')
  return 'reason' in read ? read : undefined
}

/** Reason Code (0 when omitted, spec 3.14.2.1, 3.15.2.1) and the Session Expiry Interval, if any. */
function reasonAndProperties (frame: Frame, context: 'disconnect' | 'auth'): { reasonCode: number, sessionExpiryInterval: number | undefined } | PropertyFault {
  const { buf, headerLength } = frame
  if (buf.length <= headerLength) return { reasonCode: ReasonCode.Success, sessionExpiryInterval: undefined }
  const reasonCode = buf[headerLength] as number
  if (buf.length === headerLength + 1) return { reasonCode, sessionExpiryInterval: undefined }
  const scan = scanProperties(buf, headerLength + 1, buf.length, context)
  if (scan.kind === 'fault') return scan.fault
  if (scan.end !== buf.length) return { reasonCode: ReasonCode.MalformedPacket, reason: `bytes after the properties of ${context.toUpperCase()}` }
  return { reasonCode, sessionExpiryInterval: scan.numbers.get(0x11) }
}
