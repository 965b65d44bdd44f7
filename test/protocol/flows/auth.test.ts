/**
 * lib/protocol/flows/auth.ts against a stub connection (no sockets): the
 * AUTH exchange at CONNECT and the re-authentication, step by step, with
 * the AUTH packets the client gets.
 */
import t from 'tap'
import mqtt, { type IAuthPacket, type IConnectPacket, type Packet } from 'mqtt-packet'
import type { AuthContext, AuthStep } from '../../../lib/protocol/auth.js'
import { frameOf, type Frame } from '../../../lib/protocol/frame.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { onAuth, startConnectAuth, takeConnackAuthData, type AuthHost } from '../../../lib/protocol/flows/auth.js'
import type { Verdict } from '../../../lib/protocol/flows/verdict.js'
import { connectPacket, silentConnectionLog, testAuthenticators } from '../../helpers/flow-host.js'

interface Stub extends AuthHost {
  accepted: boolean
  version: AuthHost['version']
  sent: Packet[]
  began: AuthContext[]
  received: Array<Buffer | undefined>
}

function stub (steps: AuthStep[]): Stub {
  const host: Stub = {
    version: 5,
    accepted: false,
    client: { id: 'c1' },
    username: 'alice',
    meta: { remoteAddress: '10.0.0.1' },
    ctx: {
      authenticators: testAuthenticators(steps, { begin: (ctx) => { host.began.push(ctx) }, data: (data) => { host.received.push(data) } })
    },
    log: silentConnectionLog(),
    authState: undefined,
    enhancedAuth: undefined,
    sendPacket (packet) { host.sent.push(packet) },
    sent: [],
    began: [],
    received: []
  }
  return host
}

const CONNECT = connectPacket({
  username: 'alice',
  properties: { authenticationMethod: 'TEST', authenticationData: Buffer.from('first'), sessionExpiryInterval: 10 }
})

const auth = (reasonCode: number, method: string | undefined, data?: string): Frame => frameOf(mqtt.generate({
  cmd: 'auth',
  reasonCode,
  properties: { ...(method !== undefined ? { authenticationMethod: method } : {}), ...(data !== undefined ? { authenticationData: Buffer.from(data) } : {}) }
} as IAuthPacket, { protocolVersion: 5 }))

async function decided (verdict: Verdict): Promise<Verdict> {
  if (verdict.kind !== 'defer') throw new Error(`expected a deferred verdict, got ${verdict.kind}`)
  return await verdict.decision
}

t.test('spec 4.12: a CONNECT exchange continues with AUTH 0x18 and ends with the CONNECT handed to aedes', async (t) => {
  const h = stub([{ kind: 'continue', data: Buffer.from('challenge') }, { kind: 'success', data: Buffer.from('final'), username: 'scram-alice' }])
  t.same(await decided(startConnectAuth(h, CONNECT, 'TEST')), { kind: 'drop' })
  t.match(h.began, [{ method: 'TEST', clientId: 'c1', username: 'alice', remoteAddress: '10.0.0.1', reauthentication: false }])
  t.same(h.received, [Buffer.from('first')])
  t.match(h.sent, [{ cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties: { authenticationMethod: 'TEST', authenticationData: Buffer.from('challenge') } }])
  const last = await decided(onAuth(h, auth(ReasonCode.ContinueAuthentication, 'TEST', 'response')))
  t.same(h.received[1], Buffer.from('response'))
  t.equal(last.kind, 'replace')
  const packet = (last.kind === 'replace' ? last.packets[0] : undefined) as IConnectPacket
  t.same(packet.properties, { sessionExpiryInterval: 10 }, 'aedes gets the CONNECT without the Authentication Method and Data')
  t.same(CONNECT.properties?.authenticationMethod, 'TEST', 'the client\'s packet is not changed')
  t.same(h.enhancedAuth, { method: 'TEST', username: 'scram-alice' })
  t.same(takeConnackAuthData(h), Buffer.from('final'), 'the CONNACK carries the last data')
  t.equal(h.authState, undefined, 'and the exchange\'s state ends')
})

t.test('without a user from the authenticator, the CONNECT\'s User Name stands', async (t) => {
  const h = stub([{ kind: 'success' }])
  await decided(startConnectAuth(h, CONNECT, 'TEST'))
  t.same(h.enhancedAuth, { method: 'TEST', username: 'alice' })
  t.equal(takeConnackAuthData(h), undefined)
})

t.test('[MQTT-4.12.0-1] an unsupported method: 0x8C', async (t) => {
  const h = stub([])
  t.match(startConnectAuth(h, CONNECT, 'OTHER'), { kind: 'close', reasonCode: ReasonCode.BadAuthenticationMethod })
  t.equal(h.authState, undefined)
})

t.test('a failed step closes with its reason code and ends the exchange', async (t) => {
  const h = stub([{ kind: 'failure', reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'wrong proof' }])
  t.same(await decided(startConnectAuth(h, CONNECT, 'TEST')), { kind: 'close', reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'wrong proof' })
  t.equal(h.authState, undefined)
  t.equal(h.enhancedAuth, undefined)
})

t.test('[MQTT-4.12.0-5] an AUTH with another method during the exchange is a Protocol Error; spec 3.15.2.1: so is one not 0x18', async (t) => {
  const h = stub([{ kind: 'continue' }])
  await decided(startConnectAuth(h, CONNECT, 'TEST'))
  t.match(onAuth(h, auth(ReasonCode.ContinueAuthentication, 'OTHER')), { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH out of sequence' })
  t.match(onAuth(h, auth(ReasonCode.ReAuthenticate, 'TEST')), { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'AUTH out of sequence' })
  t.match(onAuth(h, auth(ReasonCode.ContinueAuthentication, undefined)), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('AUTH is MQTT 5 only, and a repeated property is a Protocol Error (spec 2.2.2.2)', async (t) => {
  const h = stub([])
  h.version = 4
  t.match(onAuth(h, auth(ReasonCode.ReAuthenticate, 'TEST')), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  const v5 = stub([])
  // Authentication Method twice
  const body = Buffer.from([0x18, 0x0e, 0x15, 0x00, 0x04, ...Buffer.from('TEST'), 0x15, 0x00, 0x04, ...Buffer.from('TEST')])
  t.match(onAuth(v5, frameOf(Buffer.concat([Buffer.from([0xf0, body.length]), body]))), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
})

t.test('[MQTT-4.12.1-1] a re-authentication uses the method of the CONNECT and ends with AUTH 0x00', async (t) => {
  const h = stub([{ kind: 'continue', data: Buffer.from('c') }, { kind: 'success', data: Buffer.from('ok') }])
  h.accepted = true
  h.enhancedAuth = { method: 'TEST', username: 'scram-alice' }
  t.same(await decided(onAuth(h, auth(ReasonCode.ReAuthenticate, 'TEST', 'again'))), { kind: 'drop' })
  t.match(h.began, [{ reauthentication: true, clientId: 'c1', authenticatedAs: 'scram-alice' }])
  t.same(await decided(onAuth(h, auth(ReasonCode.ContinueAuthentication, 'TEST', 'more'))), { kind: 'drop' })
  t.match(h.sent, [
    { cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication },
    { cmd: 'auth', reasonCode: ReasonCode.Success, properties: { authenticationMethod: 'TEST', authenticationData: Buffer.from('ok') } }
  ])
  t.same(h.enhancedAuth, { method: 'TEST', username: 'scram-alice' }, 'the user stays when the authenticator names none')
  t.equal(h.authState, undefined)
})

t.test('a re-authentication is refused before CONNACK, with another method, or without an enhanced authentication', async (t) => {
  const early = stub([])
  early.enhancedAuth = { method: 'TEST', username: undefined }
  t.match(onAuth(early, auth(ReasonCode.ReAuthenticate, 'TEST')), { kind: 'close', reasonCode: ReasonCode.ProtocolError, reason: 'unexpected AUTH' })
  const other = stub([])
  other.accepted = true
  other.enhancedAuth = { method: 'OTHER', username: undefined }
  t.match(onAuth(other, auth(ReasonCode.ReAuthenticate, 'TEST')), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  const plain = stub([])
  plain.accepted = true
  t.match(onAuth(plain, auth(ReasonCode.ReAuthenticate, 'TEST')), { kind: 'close', reasonCode: ReasonCode.ProtocolError })
  t.same(plain.began, [], 'no exchange began')
})

t.test('a step that answers after the exchange ended changes nothing', async (t) => {
  let answer: (step: AuthStep) => void = () => {}
  const h = stub([])
  h.ctx.authenticators.get = () => ({ method: 'TEST', begin: () => ({ step: async () => await new Promise<AuthStep>((resolve) => { answer = resolve }) }) })
  const verdict = startConnectAuth(h, CONNECT, 'TEST')
  h.authState = undefined
  answer({ kind: 'continue' })
  t.same(await decided(verdict), { kind: 'drop' })
  t.same(h.sent, [])
})
