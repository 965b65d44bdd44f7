/**
 * Enhanced authentication (spec 4.12): the AUTH packet exchange behind a
 * small interface. An `Authenticator` handles one Authentication Method; each
 * exchange (at CONNECT, or a re-authentication with reason 0x19) gets its own
 * `AuthExchange`, fed the client's Authentication Data step by step.
 */

export interface AuthContext {
  method: string
  clientId: string
  /** the CONNECT's User Name, if any */
  username: string | undefined
  remoteAddress: string | undefined
  /** true for a re-authentication on a live connection [MQTT-4.12.1-1] */
  reauthentication: boolean
  /** for a re-authentication: who the connection authenticated as */
  authenticatedAs: string | undefined
}

export type AuthStep =
  /** send AUTH 0x18 with `data`, wait for the client's next AUTH */
  | { kind: 'continue', data?: Buffer }
  /** CONNACK 0x00 / AUTH 0x00, carrying `data` when given */
  | { kind: 'success', data?: Buffer, username?: string }
  /** CONNACK / DISCONNECT with `reasonCode` (e.g. 0x86, 0x87) */
  | { kind: 'failure', reasonCode: number, reason?: string }

export interface AuthExchange {
  step (data: Buffer | undefined): Promise<AuthStep>
}

export interface Authenticator {
  readonly method: string
  begin (ctx: AuthContext): AuthExchange
}

export class Authenticators {
  private readonly byMethod = new Map<string, Authenticator>()

  constructor (list: readonly Authenticator[] = []) {
    for (const a of list) this.add(a)
  }

  add (authenticator: Authenticator): void {
    this.byMethod.set(authenticator.method, authenticator)
  }

  get (method: string): Authenticator | undefined {
    return this.byMethod.get(method)
  }

  get methods (): string[] { return [...this.byMethod.keys()] }
}
