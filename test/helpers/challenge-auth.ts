/**
 * A challenge-response Authenticator for tests of enhanced authentication
 * (spec 4.12): the server sends a random challenge in AUTH 0x18 and the client
 * must answer with the challenge's bytes reversed. A CONNECT whose
 * Authentication Data is `deny` is refused at once with 0x87.
 */
import { randomBytes } from 'node:crypto'
import type { Authenticator, AuthContext, AuthExchange, AuthStep } from '../../lib/protocol/auth.js'
import { ReasonCode } from '../../lib/protocol/reason-codes.js'

export const CHALLENGE_METHOD = 'culex-test-challenge'

export function reversed (challenge: Buffer): Buffer {
  return Buffer.from(challenge).reverse()
}

export class ChallengeAuthenticator implements Authenticator {
  readonly method = CHALLENGE_METHOD
  /** every exchange begun, for assertions */
  readonly contexts: AuthContext[] = []

  begin (ctx: AuthContext): AuthExchange {
    this.contexts.push(ctx)
    let challenge: Buffer | undefined
    return {
      async step (data: Buffer | undefined): Promise<AuthStep> {
        if (challenge === undefined) {
          if (data?.toString() === 'deny') return { kind: 'failure', reasonCode: ReasonCode.NotAuthorized, reason: 'denied' }
          challenge = randomBytes(16)
          return { kind: 'continue', data: challenge }
        }
        if (data !== undefined && data.equals(reversed(challenge))) {
          return { kind: 'success', data: Buffer.from('welcome'), username: `challenged:${ctx.clientId}` }
        }
        return { kind: 'failure', reasonCode: ReasonCode.NotAuthorized, reason: 'wrong answer to the challenge' }
      }
    }
  }
}
