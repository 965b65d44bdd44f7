/**
 * Payload previews for the dashboard: bounded, and always text the browser
 * shows as text. UTF-8 that parses as JSON is pretty-printed, other UTF-8
 * without control characters is shown as it is, anything else as hex.
 */
import type { PayloadPreview } from './source.js'

/** characters of text or JSON shown at most */
export const PREVIEW_CHARS = 2048
/** bytes shown as hex at most */
export const PREVIEW_HEX_BYTES = 512
/** payloads above this are not decoded whole to look for JSON */
const DECODE_LIMIT = 65536

const utf8 = new TextDecoder('utf-8', { fatal: true })

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

function decode (bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

export function previewPayload (payload: Uint8Array | string | undefined | null): PayloadPreview {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : (payload ?? new Uint8Array(0))
  if (bytes.length === 0) return { format: 'empty', preview: '', bytes: 0, truncated: false }
  const head = bytes.length > DECODE_LIMIT ? bytes.subarray(0, DECODE_LIMIT) : bytes
  let text = decode(head)
  // a cut through a multi-byte character: drop the partial one
  for (let back = 1; text === undefined && head !== bytes && back <= 3; back++) text = decode(head.subarray(0, head.length - back))
  if (text !== undefined && !CONTROL.test(text)) {
    let format: 'text' | 'json' = 'text'
    if (head === bytes) {
      try {
        const parsed: unknown = JSON.parse(text)
        if (typeof parsed === 'object' && parsed !== null) {
          text = JSON.stringify(parsed, null, 2)
          format = 'json'
        }
      } catch {}
    }
    const truncated = text.length > PREVIEW_CHARS || head !== bytes
    return { format, preview: text.slice(0, PREVIEW_CHARS), bytes: bytes.length, truncated }
  }
  const shown = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, PREVIEW_HEX_BYTES))
  return { format: 'hex', preview: shown.toString('hex').replace(/(..)(?!$)/g, '$1 '), bytes: bytes.length, truncated: bytes.length > PREVIEW_HEX_BYTES }
}
