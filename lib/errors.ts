/**
 * Internal error codes: every error culex raises itself carries one of these,
 * so logs and tests can match on a stable code instead of a message.
 */
export const ErrorCodes = {
  CULEX_CONFIG_INVALID: 'invalid configuration',
  CULEX_CONFIG_FILE: 'cannot read the configuration file',
  CULEX_LISTEN_FAILED: 'a listener could not be opened',
  CULEX_TLS_CONFIG: 'TLS needs both a key and a certificate',
  CULEX_STORE_LOCKED: 'the data directory is in use by another process',
  CULEX_STORE_FORMAT: 'the data directory has an unsupported format',
  CULEX_STORE_DECODE: 'a stored value could not be decoded',
  CULEX_PROTOCOL_VIOLATION: 'the client violated the MQTT protocol',
  CULEX_MALFORMED_PACKET: 'the client sent a malformed packet',
  CULEX_PACKET_TOO_LARGE: 'the client sent a packet larger than the maximum',
  CULEX_RECEIVE_MAXIMUM: 'the client exceeded the receive maximum',
  CULEX_CONNECT_TIMEOUT: 'the client did not send CONNECT in time',
  CULEX_KEEPALIVE_TIMEOUT: 'the client exceeded its keep alive',
  CULEX_AUTH_FAILED: 'authentication failed',
  CULEX_SHUTDOWN: 'the broker is shutting down'
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
