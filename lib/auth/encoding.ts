/**
 * Small, strict text encodings shared by the password file and SCRAM.
 */

// RFC 4648 §4 alphabet with mandatory padding. Node's decoder silently skips
// anything it does not understand, which would let a corrupted file or a
// garbled SCRAM message decode to *some* bytes; this refuses instead.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Decodes canonical, padded base64; returns undefined for anything else. */
export function decodeBase64Strict (text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64')
  // Non-zero trailing bits ("QR==" instead of "QQ==") are not canonical.
  if (bytes.toString('base64') !== text) return undefined
  return bytes
}

/** A positive decimal integer without sign, leading zeros or exponent. */
export function parsePositiveInt (text: string): number | undefined {
  if (!/^[1-9][0-9]{0,14}$/.test(text)) return undefined
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : undefined
}
