/**
 * Enhanced authentication (spec 4.12, 3.15): the AUTH exchange at CONNECT and
 * re-authentication, with a challenge-response test Authenticator
 * (test/helpers/challenge-auth.ts).
 *
 * Implemented in lib/protocol/flows/auth.ts (startConnectAuth, onAuth,
 * onAuthStep) and flows/connect.ts (onConnect, onConnack) behind the
 * Authenticator interface of
 * lib/protocol/auth.ts.
 */
import t, { type Test } from 'tap'
import type mqtt from 'mqtt-packet'
import type { CulexServer } from '../../../lib/server.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { expectServerClose, rawConnect, rawPublish, rawSubscribe, text, uniqueId } from '../../helpers/raw5.js'
import { CHALLENGE_METHOD, ChallengeAuthenticator, reversed } from '../../helpers/challenge-auth.js'
import { packet, prop, properties } from '../../helpers/packet-bytes.js'
import { sleep } from '../../helpers/wait.js'

/** The broker of test/helpers/server.ts, with the test authenticator. */
async function startAuthServer (t: Test): Promise<{ server: CulexServer, auth: ChallengeAuthenticator }> {
  const auth = new ChallengeAuthenticator()
  const server = await startTestServer(t, {}, { authenticators: [auth] })
  return { server, auth }
}

async function openWithMethod (t: Test, port: number, method: string, clientId = uniqueId('eauth'), data?: Buffer): Promise<RawClient> {
  const c = await RawClient.open(port, 5)
  t.teardown(() => c.destroy())
  const properties: mqtt.IConnectPacket['properties'] = { authenticationMethod: method }
  if (data) properties.authenticationData = data
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 60, properties })
  return c
}

/** Runs the whole exchange; returns the client and its CONNACK. */
async function authenticate (t: Test, port: number, answer: (challenge: Buffer) => Buffer, clientId?: string): Promise<{ c: RawClient, challengeAuth: mqtt.IAuthPacket, connack: mqtt.IConnackPacket }> {
  const c = await openWithMethod(t, port, CHALLENGE_METHOD, clientId)
  const challengeAuth = await c.next() as mqtt.IAuthPacket
  if (challengeAuth.cmd !== 'auth') throw new Error(`expected AUTH, got ${challengeAuth.cmd}`)
  const challenge = challengeAuth.properties?.authenticationData as Buffer
  c.send({ cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties: { authenticationMethod: CHALLENGE_METHOD, authenticationData: answer(challenge) } })
  const connack = await c.next('connack') as mqtt.IConnackPacket
  return { c, challengeAuth, connack }
}

async function reauthenticate (c: RawClient, answer: (challenge: Buffer) => Buffer): Promise<mqtt.IAuthPacket> {
  c.send({ cmd: 'auth', reasonCode: ReasonCode.ReAuthenticate, properties: { authenticationMethod: CHALLENGE_METHOD } })
  const challengeAuth = await c.next('auth') as mqtt.IAuthPacket
  if (challengeAuth.reasonCode !== ReasonCode.ContinueAuthentication) throw new Error(`expected AUTH 0x18, got ${challengeAuth.reasonCode}`)
  c.send({ cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties: { authenticationMethod: CHALLENGE_METHOD, authenticationData: answer(challengeAuth.properties?.authenticationData as Buffer) } })
  return challengeAuth
}

t.test('enhanced authentication', async (t) => {
  const { server, auth } = await startAuthServer(t)
  const port = tcpPort(server)
  const url = tcpUrl(server)

  await t.test('[MQTT-4.12.0-2] [MQTT-4.12.0-3] [MQTT-4.12.0-5] CONNECT with a method -> AUTH 0x18 -> AUTH 0x18 -> CONNACK 0x00 with the Authentication Method', async (t) => {
    const clientId = uniqueId('eauth-ok')
    const { c, challengeAuth, connack } = await authenticate(t, port, reversed, clientId)
    t.equal(challengeAuth.reasonCode, ReasonCode.ContinueAuthentication, 'the server continues with AUTH 0x18')
    t.equal(challengeAuth.properties?.authenticationMethod, CHALLENGE_METHOD, 'the AUTH names the method')
    t.equal((challengeAuth.properties?.authenticationData as Buffer).length, 16, 'and carries the challenge')
    t.equal(connack.reasonCode, ReasonCode.Success, 'CONNACK 0x00')
    t.equal(connack.properties?.authenticationMethod, CHALLENGE_METHOD, 'the CONNACK carries the same Authentication Method')
    t.equal(connack.properties?.authenticationData?.toString(), 'welcome', 'and the final Authentication Data')
    const ctx = auth.contexts.find(x => x.clientId === clientId)
    t.equal(ctx?.reauthentication, false)
    // the connection works
    await rawSubscribe(c, [{ topic: 'ea/ok', qos: 1 }])
    rawPublish(c, 'ea/ok', 'round trip', { qos: 1 })
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'round trip')
  })

  await t.test('[MQTT-4.12.0-4] a wrong answer gets CONNACK 0x87 and the connection is closed', async (t) => {
    const { c, connack } = await authenticate(t, port, (challenge) => challenge)
    t.equal(connack.reasonCode, ReasonCode.NotAuthorized, 'CONNACK 0x87')
    t.equal(connack.sessionPresent, false)
    await c.waitClose()
  })

  await t.test('[MQTT-4.12.0-4] an authenticator may refuse at the first step: CONNACK 0x87 without any AUTH', async (t) => {
    const c = await openWithMethod(t, port, CHALLENGE_METHOD, undefined, Buffer.from('deny'))
    const first = await c.next() as mqtt.Packet
    t.equal(first.cmd, 'connack')
    t.equal((first as mqtt.IConnackPacket).reasonCode, ReasonCode.NotAuthorized)
    await c.waitClose()
  })

  await t.test('[MQTT-4.12.0-1] an unknown Authentication Method gets CONNACK 0x8C and the connection is closed', async (t) => {
    const c = await openWithMethod(t, port, 'no-such-method')
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, ReasonCode.BadAuthenticationMethod, 'CONNACK 0x8C')
    await c.waitClose()
    t.same(c.packets.filter(p => p.cmd === 'auth'), [], 'no AUTH was sent')
  })

  await t.test('[MQTT-3.1.2-30] a PUBLISH during the exchange closes the connection and is not published', async (t) => {
    const watcher = await connectClient(t, url)
    const got = collect(watcher)
    await watcher.subscribeAsync('ea/sneak')
    const c = await openWithMethod(t, port, CHALLENGE_METHOD)
    await c.next('auth')
    rawPublish(c, 'ea/sneak', 'before CONNACK', { qos: 0 })
    await c.waitClose()
    const connack = c.packets.find(p => p.cmd === 'connack') as mqtt.IConnackPacket | undefined
    if (connack) t.ok(connack.reasonCode !== undefined && connack.reasonCode >= 0x80, `a refusing CONNACK (${connack.reasonCode}) if any`)
    await sleep(100)
    t.equal(got.messages.length, 0, 'nothing published')
  })

  await t.test('[MQTT-4.12.1-1] re-authentication: AUTH 0x19 -> AUTH 0x18 -> AUTH 0x18 -> AUTH 0x00; the connection carries on', async (t) => {
    const clientId = uniqueId('eauth-re')
    const { c, connack } = await authenticate(t, port, reversed, clientId)
    t.equal(connack.reasonCode, 0)
    await rawSubscribe(c, [{ topic: 'ea/re', qos: 1 }])
    const challengeAuth = await reauthenticate(c, reversed)
    t.equal(challengeAuth.properties?.authenticationMethod, CHALLENGE_METHOD)
    const done = await c.next('auth') as mqtt.IAuthPacket
    t.equal(done.reasonCode, ReasonCode.Success, 'AUTH 0x00')
    t.equal(done.properties?.authenticationMethod, CHALLENGE_METHOD, '[MQTT-4.12.0-5] with the method')
    const ctx = auth.contexts.filter(x => x.clientId === clientId).at(-1)
    t.equal(ctx?.reauthentication, true, 'the authenticator was told it is a re-authentication')
    t.equal(ctx?.authenticatedAs, `challenged:${clientId}`, 'of whom')
    rawPublish(c, 'ea/re', 'after', { qos: 1 })
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'after')
    t.notOk(c.closed)
  })

  await t.test('spec 4.12.1: other packets keep flowing while a re-authentication is in progress', async (t) => {
    const { c } = await authenticate(t, port, reversed)
    await rawSubscribe(c, [{ topic: 'ea/during', qos: 1 }])
    c.send({ cmd: 'auth', reasonCode: ReasonCode.ReAuthenticate, properties: { authenticationMethod: CHALLENGE_METHOD } })
    const challengeAuth = await c.next('auth') as mqtt.IAuthPacket
    rawPublish(c, 'ea/during', 'mid-exchange', { qos: 1 })
    await c.next('puback')
    const p = await c.next('publish') as mqtt.IPublishPacket
    t.equal(text(p), 'mid-exchange')
    c.send({ cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties: { authenticationMethod: CHALLENGE_METHOD, authenticationData: reversed(challengeAuth.properties?.authenticationData as Buffer) } })
    t.equal((await c.next('auth') as mqtt.IAuthPacket).reasonCode, ReasonCode.Success)
  })

  await t.test('[MQTT-4.12.1-2] a failed re-authentication gets DISCONNECT with the reason, and the connection is closed', async (t) => {
    const { c } = await authenticate(t, port, reversed)
    await reauthenticate(c, (challenge) => challenge)
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.NotAuthorized, 'DISCONNECT 0x87')
    await c.waitClose()
  })

  await t.test('[MQTT-4.12.1-1] a re-authentication with another method is a Protocol Error', async (t) => {
    const { c } = await authenticate(t, port, reversed)
    c.send({ cmd: 'auth', reasonCode: ReasonCode.ReAuthenticate, properties: { authenticationMethod: 'other-method' } })
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.ProtocolError, 'DISCONNECT 0x82')
    await c.waitClose()
  })

  await t.test('[MQTT-4.12.0-6] [MQTT-4.12.0-7] without enhanced authentication: no method in CONNACK, and AUTH 0x19 gets DISCONNECT 0x82', async (t) => {
    const { client: c, connack } = await rawConnect(t, port, 5)
    t.equal(connack.reasonCode, 0)
    t.equal(connack.properties?.authenticationMethod, undefined, 'no Authentication Method in CONNACK')
    c.send({ cmd: 'auth', reasonCode: ReasonCode.ReAuthenticate, properties: { authenticationMethod: CHALLENGE_METHOD } })
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, ReasonCode.ProtocolError, 'DISCONNECT 0x82')
    await c.waitClose()
    t.same(c.packets.filter(p => p.cmd === 'auth'), [], '[MQTT-4.12.0-6] no AUTH sent to it')
  })
  /** A new client completes the whole exchange: the broker is alive and serving. */
  async function served (t: Test): Promise<void> {
    const { connack } = await authenticate(t, port, reversed)
    t.equal(connack.reasonCode, ReasonCode.Success, 'another client is served afterwards')
  }

  await t.test('spec 2.2.2.2: Authentication Data twice in an AUTH during CONNECT -> CONNACK 0x82', async (t) => {
    const c = await openWithMethod(t, port, CHALLENGE_METHOD)
    t.equal((await c.next('auth') as mqtt.IAuthPacket).reasonCode, ReasonCode.ContinueAuthentication)
    c.sendRaw(packet(0xf0, Buffer.from([ReasonCode.ContinueAuthentication]), properties(
      prop.string(0x15, CHALLENGE_METHOD), prop.string(0x16, 'one'), prop.string(0x16, 'two'))))
    const connack = await c.next('connack') as mqtt.IConnackPacket
    t.equal(connack.reasonCode, ReasonCode.ProtocolError, 'CONNACK 0x82')
    await c.waitClose()
    await served(t)
  })

  await t.test('spec 2.2.2.2: Authentication Data twice in a re-authentication -> DISCONNECT 0x82', async (t) => {
    const { c } = await authenticate(t, port, reversed)
    c.sendRaw(packet(0xf0, Buffer.from([ReasonCode.ReAuthenticate]), properties(
      prop.string(0x15, CHALLENGE_METHOD), prop.string(0x16, 'one'), prop.string(0x16, 'two'))))
    await expectServerClose(t, c, 5, ReasonCode.ProtocolError)
    t.same(c.packets.filter(p => p.cmd === 'auth'), [], 'no challenge was sent for it')
    await served(t)
  })

  await t.test('[MQTT-1.5.4-2] U+0000 in the Reason String of an AUTH -> DISCONNECT 0x81', async (t) => {
    const { c } = await authenticate(t, port, reversed)
    c.sendRaw(packet(0xf0, Buffer.from([ReasonCode.ReAuthenticate]), properties(
      prop.string(0x15, CHALLENGE_METHOD), prop.string(0x1f, Buffer.from([0x61, 0x00])))))
    await expectServerClose(t, c, 5, ReasonCode.MalformedPacket)
    await served(t)
  })
})
