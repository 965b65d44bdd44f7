/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) over the MQTT 5 AUTH exchange (spec
 * 4.12), end to end with a raw mqtt-packet client and the RFC-based client of
 * test/helpers/scram-client.ts:
 *
 *   CONNECT (Authentication Method SCRAM-SHA-256, Data client-first)
 *   AUTH 0x18 <- server-first
 *   AUTH 0x18 -> client-final
 *   CONNACK 0x00 <- server-final (proves the server knows the ServerKey)
 */
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
import mqtt, { type IAuthPacket, type IConnackPacket, type IDisconnectPacket, type IPubackPacket, type Packet } from 'mqtt-packet'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import { clientFinal, clientFirst, parseServerFirst, verifyServerFinal, type ClientFinal } from '../../helpers/scram-client.js'
import { passwd, tempDir, uniqueId, writeFile } from '../../helpers/security.js'
import { waitFor } from '../../helpers/wait.js'

const METHOD = 'SCRAM-SHA-256'
const PASSWORD = 'correct horse battery staple'

/** A raw v5 client that keeps every byte it sends. */
class RecordingClient {
  readonly sent: Buffer[] = []
  private constructor (readonly raw: RawClient) {}

  static async open (t: Test, port: number): Promise<RecordingClient> {
    const raw = await RawClient.open(port, 5)
    t.teardown(() => raw.destroy())
    return new RecordingClient(raw)
  }

  send (packet: Packet): void {
    const bytes = mqtt.generate(packet, { protocolVersion: 5 })
    this.sent.push(bytes)
    this.raw.sendRaw(bytes)
  }

  get bytesSent (): Buffer { return Buffer.concat(this.sent) }
}

function auth (reasonCode: number, data: Buffer): IAuthPacket {
  return { cmd: 'auth', reasonCode, properties: { authenticationMethod: METHOD, authenticationData: data } }
}

interface Exchange { c: RecordingClient, final: ClientFinal | undefined, connack: IConnackPacket | undefined, serverFirst: Buffer | undefined }

/**
 * A SCRAM login: CONNECT with client-first, client-final after the server's
 * AUTH; returns what the server answered. Stops at whatever the server sends
 * instead of the next step.
 */
async function scramLogin (t: Test, port: number, user: string, password: string, clientId = uniqueId('scram')): Promise<Exchange> {
  const c = await RecordingClient.open(t, port)
  const first = clientFirst(user)
  c.send({
    cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId, clean: true, keepalive: 60,
    properties: { authenticationMethod: METHOD, authenticationData: first.message }
  })
  const answer = await c.raw.next(undefined, 5000)
  if (answer.cmd === 'connack') return { c, final: undefined, connack: answer, serverFirst: undefined }
  if (answer.cmd !== 'auth') throw new Error(`unexpected ${answer.cmd}`)
  t.equal(answer.reasonCode, ReasonCode.ContinueAuthentication, 'server-first comes in AUTH 0x18 [spec 3.15.2.1]')
  t.equal(answer.properties?.authenticationMethod, METHOD, '[MQTT-4.12.0-5] the AUTH carries the Authentication Method')
  const serverFirst = answer.properties?.authenticationData as Buffer
  const final = clientFinal(first, serverFirst, password)
  c.send(auth(ReasonCode.ContinueAuthentication, final.message))
  const connack = await c.raw.next('connack', 5000) as IConnackPacket
  return { c, final, connack, serverFirst }
}

async function setup (t: Test): Promise<{ port: number }> {
  const dir = tempDir(t)
  const file = join(dir, 'passwords')
  await passwd(['--password', PASSWORD, file, 'alice'])
  await passwd(['--password', 'bobs password', file, 'bob'])
  const aclFile = writeFile(dir, 'acl', 'user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n')
  const server = await startTestServer(t, { passwordFile: file, aclFile, allowAnonymous: false })
  return { port: tcpPort(server) }
}

/** A QoS 1 PUBLISH and its PUBACK code, 0 for success (0x10 No matching subscribers is a success too). */
async function publishCode (c: RecordingClient, topic: string, messageId: number): Promise<number> {
  c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId, retain: false, dup: false })
  const ack = await c.raw.next('puback') as IPubackPacket
  const code = ack.reasonCode ?? 0
  return code === ReasonCode.NoMatchingSubscribers ? 0 : code
}

/** [MQTT-3.14.2-1] the reason codes a DISCONNECT may carry (spec 3.14.2.1). */
const DISCONNECT_CODES = new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2])

/** The reason code of the DISCONNECT the server sent, read from the raw bytes (mqtt-packet refuses invalid codes). */
function watchDisconnect (c: RecordingClient): () => number | undefined {
  let received = Buffer.alloc(0)
  c.raw.socket.on('data', (d: Buffer) => { received = Buffer.concat([received, d]) })
  return () => {
    // the last packet before the close; a DISCONNECT is 0xE0, remaining length, reason code
    const at = received.lastIndexOf(0xe0)
    return at >= 0 && at + 2 < received.length ? received[at + 2] : undefined
  }
}

t.test('SCRAM-SHA-256 over AUTH', async (t) => {
  const { port } = await setup(t)

  await t.test('[MQTT-4.12.0-1] success: CONNACK 0x00 with the method and a server-final the client verifies', async (t) => {
    const { c, final, connack } = await scramLogin(t, port, 'alice', PASSWORD)
    t.equal(connack?.reasonCode, ReasonCode.Success, 'CONNACK 0x00')
    t.equal(connack?.properties?.authenticationMethod, METHOD, '[spec 3.2.2.3.17] CONNACK carries the Authentication Method')
    const serverFinal = connack?.properties?.authenticationData
    t.ok(Buffer.isBuffer(serverFinal), 'and Authentication Data (server-final-message)')
    t.ok(final !== undefined && serverFinal !== undefined && verifyServerFinal(final, serverFinal), 'the server proved it knows the ServerKey (RFC 5802 §3)')
    const sent = c.bytesSent
    t.notOk(sent.includes(Buffer.from(PASSWORD)), 'the password never crossed the wire')
    t.notOk(sent.includes(Buffer.from(Buffer.from(PASSWORD).toString('base64').replace(/=+$/, ''))), 'not even base64-encoded')
    t.notOk(sent.includes(Buffer.from('horse')), 'nor a piece of it')
    t.equal(await publishCode(c, 'alice/x', 1), 0, 'the session works: alice may publish to alice/#')
    t.equal(await publishCode(c, 'bob/x', 2), ReasonCode.NotAuthorized, 'and the ACL sees the SCRAM identity: not bob/#')
  })

  await t.test('the SCRAM user name wins over a User Name in the CONNECT', async (t) => {
    const c = await RecordingClient.open(t, port)
    const first = clientFirst('alice')
    c.send({
      cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('scram'), clean: true, keepalive: 60, username: 'bob',
      properties: { authenticationMethod: METHOD, authenticationData: first.message }
    })
    const serverFirst = (await c.raw.next('auth') as IAuthPacket).properties?.authenticationData as Buffer
    c.send(auth(ReasonCode.ContinueAuthentication, clientFinal(first, serverFirst, PASSWORD).message))
    t.equal((await c.raw.next('connack') as IConnackPacket).reasonCode, 0)
    t.equal(await publishCode(c, 'bob/x', 1), ReasonCode.NotAuthorized, 'the CONNECT User Name "bob" grants nothing')
    t.equal(await publishCode(c, 'alice/x', 2), 0, 'the authenticated identity is alice')
  })

  await t.test('[MQTT-3.2.2-7] a wrong password: CONNACK 0x86 and close, without server-final', async (t) => {
    const { c, connack } = await scramLogin(t, port, 'alice', 'correct horse battery stapler')
    t.equal(connack?.reasonCode, ReasonCode.BadUserNameOrPassword, 'CONNACK 0x86')
    t.equal(connack?.properties?.authenticationData, undefined, 'no server-final on failure')
    await c.raw.waitClose()
    t.equal((await scramLogin(t, port, 'alice', PASSWORD)).connack?.reasonCode, 0, 'the right password still works')
  })

  await t.test('an unknown user fails only at the proof step, with the same code', async (t) => {
    const { c, connack, serverFirst } = await scramLogin(t, port, 'mallory', PASSWORD)
    t.ok(serverFirst !== undefined, 'the server answers client-first with a server-first as for a real user')
    t.equal(connack?.reasonCode, ReasonCode.BadUserNameOrPassword, 'CONNACK 0x86 after the proof')
    await c.raw.waitClose()
    const known = await scramLogin(t, port, 'alice', PASSWORD)
    const again = await scramLogin(t, port, 'mallory', PASSWORD)
    const [fake, fake2, real] = [serverFirst, again.serverFirst, known.serverFirst].map(b => parseServerFirst(b as Buffer))
    t.equal(fake?.iterations, real?.iterations, 'the iteration count does not give the unknown user away')
    t.equal(fake?.salt.length, real?.salt.length, 'nor the salt length')
    t.same(fake?.salt, fake2?.salt, 'the salt of an unknown user is stable across attempts, as a real one is')
  })

  await t.test('[MQTT-4.12.1-1] re-authentication (AUTH 0x19) on a live connection', async (t) => {
    const { c, connack } = await scramLogin(t, port, 'alice', PASSWORD)
    t.equal(connack?.reasonCode, 0)
    const first = clientFirst('alice')
    c.send(auth(ReasonCode.ReAuthenticate, first.message))
    const step = await c.raw.next('auth') as IAuthPacket
    t.equal(step.reasonCode, ReasonCode.ContinueAuthentication, 'server-first in AUTH 0x18')
    const final = clientFinal(first, step.properties?.authenticationData as Buffer, PASSWORD)
    c.send(auth(ReasonCode.ContinueAuthentication, final.message))
    const done = await c.raw.next('auth') as IAuthPacket
    t.equal(done.reasonCode, ReasonCode.Success, 'AUTH 0x00 ends a successful re-authentication')
    t.ok(verifyServerFinal(final, done.properties?.authenticationData as Buffer), 'carrying a server-final the client verifies')
    t.notOk(c.bytesSent.includes(Buffer.from(PASSWORD)), 'the password never crossed the wire')
    t.equal(await publishCode(c, 'alice/after-reauth', 7), 0, 'the connection goes on')
  })

  await t.test('[MQTT-4.12.1-2] [MQTT-3.14.2-1] re-authentication with a wrong password: a valid DISCONNECT (0x87) and close', async (t) => {
    const { c } = await scramLogin(t, port, 'alice', PASSWORD)
    const disconnectCode = watchDisconnect(c)
    const first = clientFirst('alice')
    c.send(auth(ReasonCode.ReAuthenticate, first.message))
    const step = await c.raw.next('auth') as IAuthPacket
    c.send(auth(ReasonCode.ContinueAuthentication, clientFinal(first, step.properties?.authenticationData as Buffer, 'nope').message))
    await c.raw.waitClose()
    const code = disconnectCode()
    t.not(code, undefined, 'a DISCONNECT is sent before the close')
    // 0x86 (Bad User Name or Password) is a CONNACK code only: clients
    // (mqtt-packet, hence MQTT.js) reject such a DISCONNECT as malformed
    t.ok(code !== undefined && DISCONNECT_CODES.has(code), `its reason code is one a DISCONNECT may carry (got 0x${code?.toString(16)})`)
    t.equal(code, ReasonCode.NotAuthorized, 'Not authorized')
    t.ok(c.raw.packets.some(p => p.cmd === 'disconnect'), 'and a client library can parse it')
  })

  await t.test('re-authentication as another user is refused (0x87)', async (t) => {
    const { c } = await scramLogin(t, port, 'alice', PASSWORD)
    const first = clientFirst('bob')
    c.send(auth(ReasonCode.ReAuthenticate, first.message))
    const step = await c.raw.next('auth') as IAuthPacket
    c.send(auth(ReasonCode.ContinueAuthentication, clientFinal(first, step.properties?.authenticationData as Buffer, 'bobs password').message))
    const disconnect = await c.raw.next('disconnect') as IDisconnectPacket
    t.equal(disconnect.reasonCode, ReasonCode.NotAuthorized, 'DISCONNECT 0x87')
    await c.raw.waitClose()
    t.equal((await scramLogin(t, port, 'alice', PASSWORD)).connack?.reasonCode, 0)
  })

  await t.test('a replayed client-final from an earlier exchange is refused', async (t) => {
    const earlier = await scramLogin(t, port, 'alice', PASSWORD)
    t.equal(earlier.connack?.reasonCode, 0)
    const c = await RecordingClient.open(t, port)
    c.send({
      cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('replay'), clean: true, keepalive: 60,
      properties: { authenticationMethod: METHOD, authenticationData: clientFirst('alice').message }
    })
    await c.raw.next('auth')
    c.send(auth(ReasonCode.ContinueAuthentication, (earlier.final as ClientFinal).message))
    t.equal((await c.raw.next('connack') as IConnackPacket).reasonCode, ReasonCode.BadUserNameOrPassword, 'the nonce of another exchange does not verify')
    await c.raw.waitClose()
    t.equal((await scramLogin(t, port, 'alice', PASSWORD)).connack?.reasonCode, 0)
  })

  await t.test('[MQTT-4.12.0-1] an unknown Authentication Method: CONNACK 0x8C', async (t) => {
    const c = await RecordingClient.open(t, port)
    c.send({
      cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('m'), clean: true, keepalive: 60,
      properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: clientFirst('alice').message }
    })
    t.equal((await c.raw.next('connack') as IConnackPacket).reasonCode, ReasonCode.BadAuthenticationMethod)
    await c.raw.waitClose()
  })

  await t.test('a PUBLISH in the middle of the exchange is a Protocol Error (CONNACK 0x82)', async (t) => {
    const c = await RecordingClient.open(t, port)
    c.send({
      cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('m'), clean: true, keepalive: 60,
      properties: { authenticationMethod: METHOD, authenticationData: clientFirst('alice').message }
    })
    await c.raw.next('auth')
    c.send({ cmd: 'publish', topic: 'alice/x', payload: Buffer.from('sneaky'), qos: 0, retain: false, dup: false })
    t.equal((await c.raw.next('connack') as IConnackPacket).reasonCode, ReasonCode.ProtocolError)
    await c.raw.waitClose()
  })

  await t.test('malformed client-first data: CONNACK 0x86, and the broker goes on', async (t) => {
    for (const data of [Buffer.from('garbage'), Buffer.from('p=tls-unique,,n=alice,r=abc'), Buffer.alloc(5000, 0x61), Buffer.from([0xff, 0xfe])]) {
      const c = await RecordingClient.open(t, port)
      c.send({
        cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('m'), clean: true, keepalive: 60,
        properties: { authenticationMethod: METHOD, authenticationData: data }
      })
      t.equal((await c.raw.next('connack') as IConnackPacket).reasonCode, ReasonCode.BadUserNameOrPassword, `refused: ${data.subarray(0, 20).toString('latin1')}`)
      await c.raw.waitClose()
    }
    t.equal((await scramLogin(t, port, 'alice', PASSWORD)).connack?.reasonCode, 0)
  })
})

t.test('a SCRAM exchange left unfinished is closed by connectTimeout', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'passwords')
  await passwd(['--password', PASSWORD, file, 'alice'])
  const server = await startTestServer(t, { passwordFile: file, allowAnonymous: false, connectTimeout: 1 })
  const c = await RecordingClient.open(t, tcpPort(server))
  const started = Date.now()
  c.send({
    cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('stall'), clean: true, keepalive: 60,
    properties: { authenticationMethod: METHOD, authenticationData: clientFirst('alice').message }
  })
  t.equal((await c.raw.next('auth') as IAuthPacket).reasonCode, ReasonCode.ContinueAuthentication, 'server-first received')
  // no client-final: the connection must not stay half-authenticated forever
  await c.raw.waitClose(3000)
  const elapsed = Date.now() - started
  t.ok(elapsed >= 900 && elapsed <= 2000, `closed after about connectTimeout (${elapsed} ms)`)
  t.notOk(c.raw.packets.some(p => p.cmd === 'connack' && (p as IConnackPacket).reasonCode === 0), 'never accepted')
  await t.resolves(waitFor(() => server.broker.connections.size === 0, { timeout: 1000 }), 'and its state is gone')
})
