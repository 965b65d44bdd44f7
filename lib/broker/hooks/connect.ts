/**
 * aedes' hooks on CONNECT: preConnect (redirection) and authenticate (who the
 * client is, then whether it may take the session: claim-session.ts).
 */
import type { Client, ConnectPacket } from 'aedes'
import type { Connection } from '../../protocol/connection.js'
import { ReasonCode } from '../../protocol/reason-codes.js'
import type { SecurityPolicy } from '../../auth/policy.js'
import type { BrokerContext } from '../context.js'
import { claimSession, type AuthenticateDone, type ClaimContext } from './claim-session.js'

/**
 * Spec 4.11: with a redirect configured, every MQTT 5 client is answered
 * CONNACK 0x9C (Use another server) or 0x9D (Server moved) with the Server
 * Reference; aedes writes that CONNACK from the error's fields.
 */
export function preConnect (ctx: Pick<BrokerContext, 'redirect'>, packet: Pick<ConnectPacket, 'protocolVersion'>, callback: (err: Error | null, ok: boolean) => void): void {
  const redirect = ctx.redirect
  if (redirect && packet.protocolVersion === 5) {
    const err = Object.assign(new Error('redirected'), {
      serverReference: redirect.serverReference,
      reasonCode: redirect.moved ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer
    })
    callback(err, false)
    return
  }
  callback(null, true)
}

/** The gateway of the client that authenticates. */
export type AuthenticatingGateway = Pick<Connection, 'enhancedAuth' | 'authenticatedAs' | 'resumesSession' | 'sessionExisted' | 'log' | 'meta'>

export interface AuthenticateContext extends ClaimContext {
  readonly security: Pick<SecurityPolicy, 'login'> | undefined
  gatewayOf (client: { conn: unknown }): AuthenticatingGateway | undefined
}

/**
 * Who the client is, from the first of: enhanced authentication already
 * decided by the gateway (spec 4.12), no security policy (anyone, by the name
 * it gives), the policy's login. A known client then claims its session.
 */
export function authenticate (ctx: AuthenticateContext, client: Client, username: string | undefined, password: Buffer | undefined, callback: AuthenticateDone): void {
  const conn = ctx.gatewayOf(client)
  if (!conn) {
    callback(null, true)
    return
  }
  if (conn.enhancedAuth) {
    conn.authenticatedAs = conn.enhancedAuth.username
    claimSession(ctx, conn, client, callback)
    return
  }
  const security = ctx.security
  if (!security) {
    conn.authenticatedAs = username
    claimSession(ctx, conn, client, callback)
    return
  }
  security.login({ username, password, remoteAddress: conn.meta.remoteAddress, certificateCN: conn.meta.certificateCN }).then((result) => {
    if (result.ok) {
      conn.authenticatedAs = result.username
      claimSession(ctx, conn, client, callback)
      return
    }
    conn.log.info({ username, reason: result.reason }, 'authentication failed')
    // aedes answers 4 / 0x86 (bad user name or password) or 5 / 0x87 (not authorized)
    const returnCode = result.reasonCode === ReasonCode.BadUserNameOrPassword ? 4 : 5
    callback(Object.assign(new Error(result.reason), { returnCode }) as never, false)
  }, (err: unknown) => callback(Object.assign(new Error((err as Error).message), { returnCode: 3 }) as never, false))
}
