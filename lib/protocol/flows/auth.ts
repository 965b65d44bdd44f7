/**
 * Enhanced authentication (spec 4.12): the AUTH exchange at CONNECT, and a
 * re-authentication on a live connection (reason 0x19). The exchange itself
 * is an `Authenticator`'s (protocol/auth.ts); this flow checks the AUTH
 * packets, answers with AUTH, and hands aedes the CONNECT once it succeeded.
 */
import type { IAuthPacket, IConnectPacket, Packet } from 'mqtt-packet'
import type { ConnectionLogger } from '../../logging.js'
import type { AuthExchange, Authenticators, AuthStep } from '../auth.js'
import { decodeFrame, type ProtocolVersion } from '../codec.js'
import type { Frame } from '../frame.js'
import { checkAuth } from '../inbound/disconnect-auth.js'
import { ReasonCode } from '../reason-codes.js'
import { DROP, type Verdict } from './verdict.js'

export interface EnhancedAuthResult {
  method: string
  username: string | undefined
}

type Exchange =
  | { phase: 'connect', exchange: AuthExchange, method: string, connect: IConnectPacket }
  | { phase: 'reauth', exchange: AuthExchange, method: string }

/**
 * One connection's exchange in progress, made when it starts and dropped
 * when it ends (at CONNECT: once its CONNACK took the Authentication Data).
 */
export class AuthState {
  constructor (
    public current: Exchange | undefined,
    /** the Authentication Data of the CONNECT exchange's success, for its CONNACK */
    public connackData: Buffer | undefined = undefined
  ) {}
}

/** What the AUTH flow needs of the connection. */
export interface AuthHost {
  readonly version: ProtocolVersion | undefined
  readonly accepted: boolean
  readonly client: { readonly id: string }
  readonly username: string | undefined
  readonly meta: { readonly remoteAddress: string | undefined }
  readonly ctx: { readonly authenticators: Pick<Authenticators, 'get'> }
  readonly log: ConnectionLogger
  authState: AuthState | undefined
  /** the method and user of the connection's last successful exchange */
  enhancedAuth: EnhancedAuthResult | undefined
  sendPacket (packet: Packet): void
}

/**
 * A CONNECT carrying an Authentication Method:
 * 1. [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C and close;
 * 2. the method's exchange begins with the CONNECT's Authentication Data;
 *    the CONNECT waits for it (and the packets behind it, connack-gate.ts).
 */
export function startConnectAuth (host: AuthHost, connect: IConnectPacket, method: string): Verdict {
  const authenticator = host.ctx.authenticators.get(method)
  if (!authenticator) {
    return { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod, reason: `unknown authentication method ${method}` }
  }
  const exchange = authenticator.begin({
    method,
    clientId: connect.clientId,
    username: connect.username,
    remoteAddress: host.meta.remoteAddress,
    reauthentication: false,
    authenticatedAs: undefined
  })
  host.authState = new AuthState({ phase: 'connect', exchange, method, connect })
  return { kind: 'defer', decision: exchange.step(connect.properties?.authenticationData).then(step => onAuthStep(host, step)) }
}

/**
 * Steps:
 * 1. AUTH is MQTT 5 only, and its properties keep spec 2.2.2.2 (inbound/disconnect-auth.ts);
 * 2. an AUTH must carry the Authentication Method of the exchange [MQTT-4.12.0-5];
 * 3. during an exchange, only reason 0x18 (continue), spec 3.15.2.1;
 * 4. after CONNACK, 0x19 starts a re-authentication with the same method
 *    [MQTT-4.12.1-1];
 * 5. anything else is a Protocol Error.
 */
export function onAuth (host: AuthHost, frame: Frame): Verdict {
  if (host.version !== 5) return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH before MQTT 5 CONNECT' }
  const fault = checkAuth(frame)
  if (fault !== undefined) return { kind: 'close', reasonCode: fault.reasonCode, reason: `invalid AUTH: ${fault.reason}` }
  const packet = decodeFrame(frame, 5)
  if (packet instanceof Error || packet.cmd !== 'auth') {
    return { kind: 'close', reasonCode: ReasonCode.MalformedPacket, reason: 'malformed AUTH' }
  }
  const method = packet.properties?.authenticationMethod
  const data = packet.properties?.authenticationData
  const current = host.authState?.current
  if (current) {
    if (method !== current.method || packet.reasonCode !== ReasonCode.ContinueAuthentication) {
      return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH out of sequence' }
    }
    return { kind: 'defer', decision: current.exchange.step(data).then(step => onAuthStep(host, step)) }
  }
  const done = host.enhancedAuth
  if (packet.reasonCode === ReasonCode.ReAuthenticate && host.accepted && done && method === done.method) {
    const authenticator = host.ctx.authenticators.get(method)
    if (!authenticator) return { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod, reason: 'method no longer available' }
    const exchange = authenticator.begin({
      method,
      clientId: host.client.id,
      username: host.username,
      remoteAddress: host.meta.remoteAddress,
      reauthentication: true,
      authenticatedAs: done.username
    })
    host.authState = new AuthState({ phase: 'reauth', exchange, method })
    return { kind: 'defer', decision: exchange.step(data).then(step => onAuthStep(host, step)) }
  }
  return { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'unexpected AUTH' }
}

/**
 * The authenticator's answer to one step:
 * - continue: AUTH 0x18 with its data, and wait for the client's next AUTH;
 * - failure: CONNACK (at CONNECT) or DISCONNECT with its reason code;
 * - success of a re-authentication: AUTH 0x00 (spec 4.12.1);
 * - success at CONNECT: aedes gets the CONNECT, the CONNACK the method and data (connect.ts).
 */
function onAuthStep (host: AuthHost, step: AuthStep): Verdict {
  const current = host.authState?.current
  if (!current) return DROP
  switch (step.kind) {
    case 'continue':
      host.sendPacket(authPacket(ReasonCode.ContinueAuthentication, current.method, step.data))
      return DROP
    case 'failure':
      host.authState = undefined
      host.log.info({ method: current.method, reason: step.reason }, 'authentication failed')
      return { kind: 'close', reasonCode: step.reasonCode, reason: step.reason ?? 'authentication failed' }
    case 'success': {
      if (current.phase === 'reauth') {
        host.authState = undefined
        host.enhancedAuth = { method: current.method, username: step.username ?? host.enhancedAuth?.username }
        host.sendPacket(authPacket(ReasonCode.Success, current.method, step.data))
        return DROP
      }
      const state = host.authState as AuthState
      state.current = undefined
      state.connackData = step.data
      host.enhancedAuth = { method: current.method, username: step.username ?? current.connect.username }
      // aedes refuses CONNECTs carrying an Authentication Method (0x8C): it
      // gets the CONNECT without it, the CONNACK gets it back (connect.ts)
      const connect: IConnectPacket = { ...current.connect, properties: { ...current.connect.properties } }
      delete connect.properties?.authenticationMethod
      delete connect.properties?.authenticationData
      return { kind: 'replace', packets: [connect] }
    }
  }
}

function authPacket (reasonCode: number, method: string, data: Buffer | undefined): IAuthPacket {
  return {
    cmd: 'auth',
    reasonCode,
    properties: data ? { authenticationMethod: method, authenticationData: data } : { authenticationMethod: method }
  }
}

/** The Authentication Data for the CONNACK of a successful exchange (spec 3.2.2.3.17); the exchange's state ends here. */
export function takeConnackAuthData (host: Pick<AuthHost, 'authState'>): Buffer | undefined {
  const data = host.authState?.connackData
  host.authState = undefined
  return data
}
