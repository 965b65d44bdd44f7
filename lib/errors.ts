/**
 * Internal error codes: every error culex raises itself carries a stable
 * code, so logs and tests can match on it instead of a message. This table
 * holds the broker's own; the store's and the password/ACL files' are
 * re-exported below, so every code is reachable from this module.
 */
export const ErrorCodes = {
  CULEX_CONFIG_INVALID: 'invalid configuration',
  CULEX_CONFIG_FILE: 'cannot read the configuration file',
  CULEX_LISTEN_FAILED: 'a listener could not be opened',
  CULEX_TLS_CONFIG: 'TLS needs both a key and a certificate'
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class CulexError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${ErrorCodes[code]}: ${detail}` : ErrorCodes[code], options)
    this.code = code
    this.name = 'CulexError'
  }
}

export function isCulexError (err: unknown, code?: ErrorCode): err is CulexError {
  return err instanceof CulexError && (code === undefined || err.code === code)
}

export { PersistenceErrors, type PersistenceErrorCode } from './persistence/errors.js'
export { AuthErrorCodes, type AuthErrorCode } from './auth/errors.js'
