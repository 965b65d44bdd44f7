/**
 * The rules of a CONNECT's bytes (spec 3.1.2, 3.1.3) that a decoder does not
 * check: mqtt-packet reads what the flags announce and ignores the rest,
 * replaces ill-formed UTF-8, and keeps repeated properties as arrays. Walked
 * once over the raw packet before it is decoded, so nothing that breaks
 * these rules reaches aedes.
 */
import { ReasonCode } from '../reason-codes.js'
import { scanProperties, type PropertyFault } from '../property-rules.js'
import { isWellFormedString } from '../utf8.js'

const WILL = 0x04
const WILL_QOS = 0x18
const WILL_RETAIN = 0x20
const PASSWORD = 0x40
const USERNAME = 0x80

export type ConnectFault = PropertyFault

const malformed = (reason: string): ConnectFault => ({ reasonCode: ReasonCode.MalformedPacket, reason })
const protocolError = (reason: string): ConnectFault => ({ reasonCode: ReasonCode.ProtocolError, reason })

/**
 * `levelAt` is the offset of the Protocol Level byte. Steps:
 * 1. Connect Flags: the reserved bit is 0 [MQTT-3.1.2-3]; without a Will,
 *    Will QoS and Will Retain are 0 [MQTT-3.1.2-11] [MQTT-3.1.2-13]; with
 *    one, Will QoS 3 is malformed [MQTT-3.1.2-12]; 3.1.1 forbids a password
 *    without a user name (3.1.1 [MQTT-3.1.2-22]);
 * 2. MQTT 5 properties: types, repeats and values (property-rules.ts);
 * 3. the Client Identifier is a well-formed UTF-8 string [MQTT-3.1.3-4];
 * 4. the Will: its properties, a well-formed and non-empty topic
 *    [MQTT-4.7.3-1] without wildcards (it is the Topic Name of a PUBLISH,
 *    [MQTT-3.3.2-2]; so is its Response Topic, [MQTT-3.3.2-14]), and its payload;
 * 5. User Name and Password are present exactly when their flags say so
 *    [MQTT-3.1.2-16] [MQTT-3.1.2-17] [MQTT-3.1.2-18] [MQTT-3.1.2-19], the
 *    User Name well-formed;
 * 6. nothing follows the last field the flags announce.
 * Returns the first fault, or undefined when the CONNECT keeps these rules.
 */
export function checkConnect (buf: Buffer, levelAt: number, version: 3 | 4 | 5): ConnectFault | undefined {
  const end = buf.length
  let pos = levelAt + 1
  if (pos + 3 > end) return malformed('truncated CONNECT')
  const flags = buf[pos] as number
  pos += 3
  if ((flags & 0x01) !== 0) return malformed('reserved Connect Flag set')
  const will = (flags & WILL) !== 0
  const willQoS = (flags & WILL_QOS) >> 3
  if (!will && (willQoS !== 0 || (flags & WILL_RETAIN) !== 0)) return malformed('Will QoS or Will Retain without a Will')
  if (willQoS === 3) return malformed('Will QoS 3')
  if (version !== 5 && (flags & PASSWORD) !== 0 && (flags & USERNAME) === 0) return protocolError('password without a user name')
  if (version === 5) {
    const scan = scanProperties(buf, pos, end, 'connect')
    if (scan.kind === 'fault') return scan.fault
    // spec 3.1.2.11.10: Authentication Data without an Authentication Method
    if (scan.seen.has(0x16) && !scan.seen.has(0x15)) return protocolError('Authentication Data without an Authentication Method')
    pos = scan.end
  }
  const clientId = field(buf, pos, end, 'Client Identifier', true)
  if (typeof clientId !== 'number') return clientId
  pos = clientId
  if (will) {
    if (version === 5) {
      const scan = scanProperties(buf, pos, end, 'will')
      if (scan.kind === 'fault') return scan.fault
      const responseTopic = scan.spans.get(0x08)
      if (responseTopic !== undefined && hasWildcardBytes(buf, responseTopic[0], responseTopic[1])) {
        return protocolError('wildcard in the Will Response Topic')
      }
      pos = scan.end
    }
    if (pos + 2 <= end && buf.readUInt16BE(pos) === 0) return protocolError('empty Will Topic')
    const topic = field(buf, pos, end, 'Will Topic', true)
    if (typeof topic !== 'number') return topic
    if (hasWildcardBytes(buf, pos + 2, topic)) return protocolError('wildcard in the Will Topic')
    const payload = field(buf, topic, end, 'Will Payload', false)
    if (typeof payload !== 'number') return payload
    pos = payload
  }
  if ((flags & USERNAME) !== 0) {
    const username = field(buf, pos, end, 'User Name', true)
    if (typeof username !== 'number') return username
    pos = username
  }
  if ((flags & PASSWORD) !== 0) {
    const password = field(buf, pos, end, 'Password', false)
    if (typeof password !== 'number') return password
    pos = password
  }
  if (pos !== end) return malformed(`${end - pos} bytes after the last field the Connect Flags announce`)
  return undefined
}

/** A length-prefixed field at `pos`: the offset after it, or the fault. */
function field (buf: Buffer, pos: number, end: number, name: string, utf8: boolean): number | ConnectFault {
  if (pos + 2 > end) return malformed(`missing ${name}`)
  const next = pos + 2 + buf.readUInt16BE(pos)
  if (next > end) return malformed(`truncated ${name}`)
  if (utf8 && !isWellFormedString(buf, pos + 2, next)) return malformed(`${name} is not a well-formed UTF-8 string`)
  return next
}

/** `+` or `#` among the bytes (both ASCII: never part of a multi-byte UTF-8 sequence). */
function hasWildcardBytes (buf: Buffer, start: number, end: number): boolean {
  const bytes = buf.subarray(start, end)
  return bytes.includes(0x2b) || bytes.includes(0x23)
}
