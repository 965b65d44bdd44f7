/**
 * Who may connect and what they may do: the password file, SCRAM-SHA-256
 * enhanced authentication, TLS client certificates, anonymous access and the
 * ACL, combined into the one policy the broker asks. `reload()` re-reads the
 * files (SIGHUP) without dropping connections.
 */
import type { Logger } from 'pino'
import { loadPasswordFile, checkPassword, type PasswordDb, type Credentials } from './password-file.js'
import { loadAclFile, type Acl, type AclClient } from './acl.js'
import { createScramServer, SCRAM_SHA_256, type ScramServer } from './scram.js'
import { FailureDelay } from './rate-limit.js'
import type { Authenticator, AuthContext, AuthExchange, AuthStep } from '../protocol/auth.js'
import { ReasonCode } from '../protocol/reason-codes.js'

export interface SecurityOptions {
  /** clients without credentials may connect */
  allowAnonymous: boolean
  passwordFile?: string | undefined
  aclFile?: string | undefined
  /** a verified TLS client certificate's CN becomes the username */
  certificateUsername: boolean
  /** slow down repeated failed logins from one address */
  failureDelay?: FailureDelay
}

export interface LoginInfo {
  username: string | undefined
  password: Buffer | undefined
  remoteAddress: string | undefined
  /** CN of a verified client certificate */
  certificateCN: string | undefined
}

export type LoginResult =
  | { ok: true, username: string | undefined }
  /** 0x86 bad user name or password, 0x87 not authorized */
  | { ok: false, reasonCode: number, reason: string }

export class SecurityPolicy {
  private passwords: PasswordDb | undefined
  private acl: Acl | undefined
  private readonly failures: FailureDelay
  private readonly pendingLogins = new Map<string, number>()
  /** bumped on every reload, so cached ACL decisions can be dropped */
  generation = 0

  private constructor (private readonly opts: SecurityOptions, private readonly log: Logger) {
    this.failures = opts.failureDelay ?? new FailureDelay()
  }

  static async load (opts: SecurityOptions, log: Logger): Promise<SecurityPolicy> {
    const policy = new SecurityPolicy(opts, log)
    await policy.reload()
    return policy
  }

  get hasAcl (): boolean { return this.acl !== undefined }
  get hasPasswords (): boolean { return this.passwords !== undefined }
  get allowAnonymous (): boolean { return this.opts.allowAnonymous }

  /** Re-reads the password and ACL files; on an error the old ones stay in force. */
  async reload (): Promise<void> {
    const [passwords, acl] = await Promise.all([
      this.opts.passwordFile ? loadPasswordFile(this.opts.passwordFile) : undefined,
      this.opts.aclFile ? loadAclFile(this.opts.aclFile) : undefined
    ])
    this.passwords = passwords
    this.acl = acl
    this.generation++
    this.log.info({ users: passwords?.size, aclRules: acl?.rules.length, allowAnonymous: this.opts.allowAnonymous }, 'security configuration loaded')
  }

  /**
   * A CONNECT's credentials:
   * 1. a verified certificate's CN is the username when so configured;
   * 2. a username with a password file: the password must match (scrypt);
   * 3. no credentials: allowed only when anonymous access is;
   * 4. failures from one address are answered ever more slowly.
   */
  async login (info: LoginInfo): Promise<LoginResult> {
    const addr = info.remoteAddress ?? 'unknown'
    // password attempts still being checked count, so parallel guesses get no head start
    const guessing = info.username !== undefined && this.passwords !== undefined
    const pending = guessing ? (this.pendingLogins.get(addr) ?? 0) : 0
    if (guessing) this.pendingLogins.set(addr, pending + 1)
    try {
      const delay = this.failures.delayFor(addr, Date.now(), pending)
      if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
      const result = await this.check(info)
      if (result.ok) this.failures.recordSuccess(addr)
      else this.failures.recordFailure(addr)
      return result
    } finally {
      if (guessing) {
        const left = (this.pendingLogins.get(addr) ?? 1) - 1
        if (left <= 0) this.pendingLogins.delete(addr)
        else this.pendingLogins.set(addr, left)
      }
    }
  }

  private async check (info: LoginInfo): Promise<LoginResult> {
    if (this.opts.certificateUsername && info.certificateCN !== undefined) {
      return { ok: true, username: info.certificateCN }
    }
    if (info.username === undefined) {
      return this.opts.allowAnonymous
        ? { ok: true, username: undefined }
        : { ok: false, reasonCode: ReasonCode.NotAuthorized, reason: 'anonymous access is not allowed' }
    }
    if (!this.passwords) {
      // no password file: a username is only a name (mosquitto does the same)
      return this.opts.allowAnonymous
        ? { ok: true, username: info.username }
        : { ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'no password file' }
    }
    const ok = await checkPassword(this.passwords, info.username, info.password ?? Buffer.alloc(0))
    if (!ok) return { ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'bad user name or password' }
    return { ok: true, username: info.username }
  }

  /** SCRAM-SHA-256 (RFC 7677) over the MQTT 5 AUTH exchange, against the password file. */
  scramAuthenticator (): Authenticator {
    const lookup = (username: string): Credentials['scram'] => this.passwords?.get(username)?.scram
    return {
      method: SCRAM_SHA_256,
      begin: (ctx: AuthContext): AuthExchange => new ScramExchange(createScramServer(lookup), ctx, this.failures)
    }
  }

  /** PUBLISH to `topic`: ACL write. */
  mayPublish (client: AclClient, topic: string): boolean {
    return this.acl === undefined || this.acl.check(client, topic, 'write')
  }

  /** SUBSCRIBE to `filter` (shared included): ACL subscribe. */
  maySubscribe (client: AclClient, filter: string): boolean {
    return this.acl === undefined || this.acl.check(client, filter, 'subscribe')
  }

  /** Receive a message on `topic`: ACL read, checked on every delivery. */
  mayReceive (client: AclClient, topic: string): boolean {
    return this.acl === undefined || this.acl.check(client, topic, 'read')
  }
}

/** One SCRAM exchange: client-first in CONNECT, client-final in AUTH, server-final in CONNACK. */
class ScramExchange implements AuthExchange {
  private stage: 'first' | 'final' | 'done' = 'first'

  constructor (private readonly server: ScramServer, private readonly ctx: AuthContext, private readonly failures: FailureDelay) {}

  async step (data: Buffer | undefined): Promise<AuthStep> {
    const addr = this.ctx.remoteAddress ?? 'unknown'
    if (!data) return { kind: 'failure', reasonCode: ReasonCode.BadAuthenticationMethod, reason: 'SCRAM needs authentication data' }
    if (this.stage === 'first') {
      const delay = this.failures.delayFor(addr)
      if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
      const started = this.server.start(data)
      if ('error' in started) {
        this.failures.recordFailure(addr)
        return { kind: 'failure', reasonCode: ReasonCode.BadUserNameOrPassword, reason: `SCRAM: ${started.error}` }
      }
      this.stage = 'final'
      return { kind: 'continue', data: started.serverFirst }
    }
    if (this.stage === 'final') {
      this.stage = 'done'
      const finished = this.server.finish(data)
      if (!finished.ok) {
        this.failures.recordFailure(addr)
        return { kind: 'failure', reasonCode: ReasonCode.BadUserNameOrPassword, reason: `SCRAM: ${finished.error}` }
      }
      if (this.ctx.reauthentication && this.ctx.authenticatedAs !== undefined && finished.username !== this.ctx.authenticatedAs) {
        return { kind: 'failure', reasonCode: ReasonCode.NotAuthorized, reason: 're-authentication as another user' }
      }
      this.failures.recordSuccess(addr)
      return { kind: 'success', data: finished.serverFinal, username: finished.username }
    }
    return { kind: 'failure', reasonCode: ReasonCode.ProtocolError, reason: 'SCRAM exchange already finished' }
  }
}
