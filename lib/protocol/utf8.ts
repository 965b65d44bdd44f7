/**
 * UTF-8 Encoded Strings as spec 1.5.4 defines them, checked on the raw bytes:
 * a decoder replaces ill-formed sequences with U+FFFD, after which a broken
 * string can no longer be told from one that really holds U+FFFD.
 */
import { isUtf8 } from 'node:buffer'

/**
 * [MQTT-1.5.4-1] well-formed UTF-8, no surrogate code points (U+D800..U+DFFF)
 * and no overlong forms; [MQTT-1.5.4-2] no U+0000. Either breach makes the
 * packet malformed.
 */
export function isWellFormedString (buf: Uint8Array, start = 0, end = buf.length): boolean {
  if (start >= end) return true
  const bytes = buf.subarray(start, end)
  return bytes.indexOf(0) === -1 && isUtf8(bytes)
}
