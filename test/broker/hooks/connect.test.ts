/**
 * preConnect and authenticate (lib/broker/hooks/connect.ts) against stubs of
 * the gateway, the security policy and the store.
 */
import t from 'tap'
import type { Client } from 'aedes'
import { authenticate, preConnect, type AuthenticateContext, type AuthenticatingGateway } from '../../../lib/broker/hooks/connect.js'
import type { LoginInfo, LoginResult } from '../../../lib/auth/policy.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { silentLogger } from '../../../lib/logging.js'

t.test('preConnect: spec 4.11, a redirect answers every MQTT 5 client with the Server Reference', async (t) => {
  const answer = (redirect: { serverReference: string, moved: boolean } | undefined, protocolVersion: 4 | 5): [Error | null, boolean] => {
    let result: [Error | null, boolean] | undefined
    preConnect({ redirect }, { protocolVersion }, (err, ok) => { result = [err, ok] })
    if (result === undefined) throw new Error('no answer')
    return result
  }
  t.same(answer(undefined, 5), [null, true], 'no redirect')
  const [used, usedOk] = answer({ serverReference: 'other:1883', moved: false }, 5)
  t.equal(usedOk, false)
  t.match(used, { serverReference: 'other:1883', reasonCode: ReasonCode.UseAnotherServer }, '0x9C Use another server')
  t.match(answer({ serverReference: 'other:1883', moved: true }, 5)[0], { reasonCode: ReasonCode.ServerMoved }, '0x9D Server moved')
  t.same(answer({ serverReference: 'other:1883', moved: false }, 4), [null, true], 'MQTT 3.1.1 has no redirection')
})

function gateway (over: Partial<AuthenticatingGateway> = {}): AuthenticatingGateway {
  return {
    enhancedAuth: undefined,
    authenticatedAs: undefined,
    resumesSession: false,
    sessionExisted: false,
    log: silentLogger(),
    meta: { remoteAddress: '10.0.0.1', certificateCN: 'cn-1' },
    ...over
  } as AuthenticatingGateway
}

function setup (conn: AuthenticatingGateway | undefined, login?: (info: LoginInfo) => Promise<LoginResult>): AuthenticateContext {
  return {
    security: login === undefined ? undefined : { login },
    sessionOwnership: 'username',
    store: () => undefined,
    clientById: () => undefined,
    gatewayOf: () => conn
  }
}

const client = { id: 'c1', conn: {}, clean: true, version: 5 } as unknown as Client

function run (ctx: AuthenticateContext, username?: string, password?: Buffer): Promise<[unknown, unknown]> {
  return new Promise((resolve) => authenticate(ctx, client, username, password, (err, ok) => resolve([err, ok])))
}

t.test('a client without a gateway is let in', async (t) => {
  t.same(await run(setup(undefined)), [null, true])
})

t.test('without a security policy, the client is who it says, then claims its session', async (t) => {
  const conn = gateway()
  t.same(await run(setup(conn), 'bob'), [null, true])
  t.equal(conn.authenticatedAs, 'bob')
})

t.test('spec 4.12: enhanced authentication already decided who the client is', async (t) => {
  const conn = gateway({ enhancedAuth: { method: 'SCRAM-SHA-256', username: 'carol' } })
  const asked: unknown[] = []
  t.same(await run(setup(conn, async (info) => { asked.push(info); return { ok: true, username: 'x' } }), 'ignored'), [null, true])
  t.equal(conn.authenticatedAs, 'carol')
  t.same(asked, [], 'the password login is not asked')
})

t.test('the security policy\'s login decides, with the client\'s address and certificate', async (t) => {
  const conn = gateway()
  const asked: LoginInfo[] = []
  const ok = setup(conn, async (info) => { asked.push(info); return { ok: true, username: 'dave' } })
  t.same(await run(ok, 'dave', Buffer.from('pw')), [null, true])
  t.equal(conn.authenticatedAs, 'dave')
  t.same(asked, [{ username: 'dave', password: Buffer.from('pw'), remoteAddress: '10.0.0.1', certificateCN: 'cn-1' }])
})

t.test('a refused login: aedes answers CONNACK 4 / 0x86 or 5 / 0x87; a failing one 3', async (t) => {
  const bad = await run(setup(gateway(), async () => ({ ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'bad password' })), 'eve')
  t.match(bad, [{ message: 'bad password', returnCode: 4 }, false], 'bad user name or password')
  const denied = await run(setup(gateway(), async () => ({ ok: false, reasonCode: ReasonCode.NotAuthorized, reason: 'anonymous not allowed' })))
  t.match(denied, [{ returnCode: 5 }, false], 'not authorized')
  const broken = await run(setup(gateway(), async () => { throw new Error('password file unreadable') }), 'eve')
  t.match(broken, [{ message: 'password file unreadable', returnCode: 3 }, false], 'server unavailable')
})
