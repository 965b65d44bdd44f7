/**
 * TLS client certificates: with `requireCertificate` and `tlsCa`, a client
 * without a certificate signed by the CA is refused at the TLS handshake (on
 * TLS and WSS); with `certificateUsername` the certificate's CN is the user
 * name, which the ACL then sees (mosquitto's use_identity_as_username).
 */
import t from 'tap'
import type { Test } from 'tap'
import tls from 'node:tls'
import mqttPacket, { type IConnackPacket, type IPubackPacket, type Packet } from 'mqtt-packet'
import type { CulexServer } from '../../../lib/server.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { makePki, type KeyPair, type Pki } from '../../helpers/pki.js'
import { rawConnect, tempDir, uniqueId, writeFile } from '../../helpers/security.js'

let pki: Pki
t.before(() => { pki = makePki() })
t.teardown(() => pki.cleanup())

function tlsPort (server: CulexServer): number {
  if (!server.tls) throw new Error('no TLS listener')
  return server.tls.address().port
}

function wssPort (server: CulexServer): number {
  if (!server.wss) throw new Error('no WSS listener')
  return server.wss.address().port
}

async function startTlsServer (t: Test, extra: Record<string, unknown> = {}): Promise<CulexServer> {
  return await startTestServer(t, {
    tlsKey: pki.server.keyFile,
    tlsCert: pki.server.certFile,
    tlsCa: pki.ca.certFile,
    tlsPort: 'auto',
    wssPort: 'auto',
    requireCertificate: true,
    ...extra
  })
}

interface TlsOutcome { secure: boolean, closed: boolean, error: string | undefined, packets: Packet[] }

/**
 * A raw TLS connection that sends an MQTT 5 CONNECT as soon as it can and
 * reports what happened until the socket closed (or 3 s passed).
 */
function tryTls (port: number, client?: KeyPair, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<TlsOutcome & { socket: tls.TLSSocket }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.ca.cert, servername: 'localhost', ...(client ? { key: client.key, cert: client.cert } : {}) })
    const outcome: TlsOutcome = { secure: false, closed: false, error: undefined, packets: [] }
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: Packet) => {
      outcome.packets.push(p)
      if (p.cmd === 'connack') { clearTimeout(timer); resolve({ ...outcome, socket }) }
    })
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.on('secureConnect', () => {
      outcome.secure = true
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: uniqueId('tls'), clean: true, keepalive: 30, ...connect }, { protocolVersion: 5 }))
    })
    socket.on('error', (err: Error) => { outcome.error ??= err.message })
    socket.on('close', () => { outcome.closed = true; clearTimeout(timer); resolve({ ...outcome, socket }) })
    const timer = setTimeout(() => { socket.destroy(); resolve({ ...outcome, socket }) }, 3000)
  })
}

t.test('requireCertificate: the TLS handshake refuses clients without a certificate from the CA', async (t) => {
  const server = await startTlsServer(t)
  const port = tlsPort(server)
  const before = server.broker.connections.size

  await t.test('no client certificate: refused, no CONNACK, nothing reaches MQTT', async (t) => {
    const outcome = await tryTls(port)
    t.equal(outcome.packets.length, 0, 'no MQTT packet came back')
    t.ok(outcome.closed, 'the server closed the connection')
    t.match(outcome.error ?? '', /certificate|alert|handshake|socket hang up|ECONNRESET/i, `the TLS layer reports the refusal (${outcome.error})`)
    t.equal(server.broker.connections.size, before, 'the broker never saw the connection')
  })

  await t.test('a certificate from another CA: refused', async (t) => {
    const outcome = await tryTls(port, pki.untrustedClient('intruder'))
    t.equal(outcome.packets.length, 0, 'no MQTT packet came back')
    t.ok(outcome.closed, 'the server closed the connection')
    t.comment(`TLS error seen by the client: ${outcome.error ?? '(none, the socket was closed)'}`)
    t.equal(server.broker.connections.size, before, 'the broker never saw the connection')
  })

  await t.test('a certificate signed by the CA: connected (raw and MQTT.js, v5 and 3.1.1)', async (t) => {
    const cert = pki.client('sensor-1')
    const outcome = await tryTls(port, cert)
    t.ok(outcome.secure, 'handshake completed')
    const connack = outcome.packets.find(p => p.cmd === 'connack') as IConnackPacket | undefined
    t.equal(connack?.reasonCode, 0, 'CONNACK 0x00')
    outcome.socket.destroy()
    for (const protocolVersion of [5, 4] as const) {
      const client = await connectClient(t, `mqtts://127.0.0.1:${port}`, { protocolVersion, ca: pki.ca.cert, key: cert.key, cert: cert.cert, servername: 'localhost' })
      const inbox = collect(client)
      await client.subscribeAsync('tls/echo', { qos: 1 })
      await client.publishAsync('tls/echo', 'over tls', { qos: 1 })
      t.equal((await inbox.next(1))[0]?.payload.toString(), 'over tls', `v${protocolVersion}: a round trip over TLS`)
    }
  })

  await t.test('MQTT.js without a certificate fails to connect', async (t) => {
    await t.rejects(connectClient(t, `mqtts://127.0.0.1:${port}`, { protocolVersion: 5, ca: pki.ca.cert, servername: 'localhost' }))
  })

  await t.test('WSS asks for the certificate as well', async (t) => {
    const url = `wss://127.0.0.1:${wssPort(server)}/mqtt`
    await t.rejects(connectClient(t, url, { protocolVersion: 5, ca: pki.ca.cert, servername: 'localhost' }), 'no certificate: refused')
    const cert = pki.client('dashboard')
    const client = await connectClient(t, url, { protocolVersion: 5, ca: pki.ca.cert, key: cert.key, cert: cert.cert, servername: 'localhost' })
    t.ok(client.connected, 'a CA-signed certificate connects over WSS')
  })
})

t.test('certificateUsername: the certificate CN is the user name the ACL sees', async (t) => {
  const dir = tempDir(t)
  const aclFile = writeFile(dir, 'acl', 'user device-42\ntopic readwrite devices/42/#\nuser device-43\ntopic readwrite devices/43/#\n')
  const server = await startTlsServer(t, { certificateUsername: true, aclFile, allowAnonymous: false })
  const port = tlsPort(server)
  const d42 = pki.client('device-42')
  const d43 = pki.client('device-43')

  /** CONNECT over TLS with `cert`, then one QoS 1 PUBLISH; returns the PUBACK code. */
  async function publishAs (cert: KeyPair, topic: string, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<{ connack: number | undefined, puback: number | undefined }> {
    const outcome = await tryTls(port, cert, connect)
    const connack = (outcome.packets.find(p => p.cmd === 'connack') as IConnackPacket | undefined)?.reasonCode
    if (connack !== 0) { outcome.socket.destroy(); return { connack, puback: undefined } }
    const socket = outcome.socket
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    const puback = new Promise<number | undefined>((resolve) => {
      parser.on('packet', (p: Packet) => { if (p.cmd === 'puback') resolve((p as IPubackPacket).reasonCode ?? 0) })
      socket.on('close', () => resolve(undefined))
    })
    socket.removeAllListeners('data')
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false }, { protocolVersion: 5 }))
    const code = await puback
    socket.destroy()
    return { connack, puback: code === ReasonCode.NoMatchingSubscribers ? 0 : code }
  }

  t.same(await publishAs(d42, 'devices/42/temp'), { connack: 0, puback: 0 },
    'CN device-42 connects without user name or password (anonymous access is off) and may publish to devices/42/#')
  t.same(await publishAs(d42, 'devices/43/temp'), { connack: 0, puback: ReasonCode.NotAuthorized }, 'but not to devices/43/#')
  t.same(await publishAs(d43, 'devices/43/temp'), { connack: 0, puback: 0 }, 'CN device-43 may publish to its own topics')
  t.same(await publishAs(d43, 'devices/42/temp', { username: 'device-42' }), { connack: 0, puback: ReasonCode.NotAuthorized },
    'a User Name in the CONNECT does not override the certificate: device-43 cannot pose as device-42')

  await t.test('MQTT.js: subscribe rights follow the CN too', async (t) => {
    const client = await connectClient(t, `mqtts://127.0.0.1:${port}`, { protocolVersion: 5, ca: pki.ca.cert, key: d42.key, cert: d42.cert, servername: 'localhost' })
    const granted = await client.subscribeAsync('devices/42/#', { qos: 1 })
    t.same(granted.map(g => g.qos), [1], 'devices/42/# granted')
    await t.rejects(client.subscribeAsync('devices/43/#', { qos: 1 }), /Not authorized/, 'devices/43/# refused with 0x87')
  })

  await t.test('the plain TCP listener gives no certificate identity', async (t) => {
    if (!server.tcp) throw new Error('no TCP listener')
    const { code } = await rawConnect(t, server.tcp.address().port, 5, { username: 'device-42' })
    t.equal(code, ReasonCode.BadUserNameOrPassword, 'claiming the CN as a user name over TCP is refused (no password file, anonymous off)')
  })
})
