/**
 * Error codes raised by the authentication / authorization modules
 * (re-exported by lib/errors.ts, the index of every internal error code).
 */
export const AuthErrorCodes = {
  /** A password file line could not be parsed. */
  PASSWORD_FILE_SYNTAX: 'CULEX_AUTH_PASSWORD_FILE_SYNTAX',
  /** A username that the password file cannot represent (':' or control characters). */
  INVALID_USERNAME: 'CULEX_AUTH_INVALID_USERNAME',
  /** An empty password, or one that cannot be encoded. */
  INVALID_PASSWORD: 'CULEX_AUTH_INVALID_PASSWORD',
  /** Hash parameters outside the accepted bounds. */
  INVALID_HASH_PARAMETERS: 'CULEX_AUTH_INVALID_HASH_PARAMETERS',
  /** An ACL file line could not be parsed. */
  ACL_SYNTAX: 'CULEX_AUTH_ACL_SYNTAX'
} as const

export type AuthErrorCode = typeof AuthErrorCodes[keyof typeof AuthErrorCodes]

export class AuthError extends Error {
  readonly code: AuthErrorCode
  /** 1-based line number in the file being parsed, when the error is about one line. */
  readonly line: number | undefined

  constructor (code: AuthErrorCode, message: string, line?: number) {
    super(message)
    this.name = 'AuthError'
    this.code = code
    this.line = line
  }
}
