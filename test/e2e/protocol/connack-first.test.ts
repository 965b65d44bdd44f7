/**
 * Packets a client sends right behind its CONNECT, before the CONNACK (spec
 * 3.1.4 lets it): the CONNACK is the first packet culex sends, what came
 * after the CONNECT is answered after it, in order, and after a refused
 * CONNECT nothing the client sent is processed at all.
 *
 * Implemented in lib/protocol/inbound/connack-gate.ts, applied by
 * lib/protocol/flows/inbound.ts (processInbound) and lib/protocol/flows/connect.ts
 * (connackWritten, brokerWroteConnack).
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import mqtt from 'mqtt-packet'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { CulexServer } from '../../../lib/server.js'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import { describe, uniqueId, type RawVersion } from '../../helpers/raw5.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { passwd, tempDir, writeFile } from '../../helpers/security.js'
import { CHALLENGE_METHOD, ChallengeAuthenticator } from '../../helpers/challenge-auth.js'
import { startServer } from '../../../lib/server.js'
import { createLogger } from '../../../lib/logging.js'
import { waitFor } from '../../helpers/wait.js'

/** The packets, encoded for `version`, as one buffer: one socket write. */
function oneWrite (version: RawVersion, packets: mqtt.Packet[]): Buffer {
  return Buffer.concat(packets.map(p => mqtt.generate(p, { protocolVersion: version })))
}

function connectPacket (version: RawVersion, more: Partial<mqtt.IConnectPacket> = {}): mqtt.IConnectPacket {
  return { cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: uniqueId('cf'), clean: true, keepalive: 60, ...more } as mqtt.IConnectPacket
}

async function open (t: Test, port: number, version: RawVersion): Promise<RawClient> {
  const c = await RawClient.open(port, version)
  t.teardown(() => c.destroy())
  return c
}

/** Every retained message the broker holds on topics matching `filter`. */
async function retained (server: CulexServer, filter: string): Promise<string[]> {
  const store = (server.broker.aedes as unknown as { persistence: { createRetainedStream: (pattern: string) => Readable } }).persistence
  const topics: string[] = []
  for await (const packet of store.createRetainedStream(filter)) topics.push((packet as { topic: string }).topic)
  return topics
}

t.test('packets sent with the CONNECT wait for its CONNACK', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  // a subscriber, so that a v5 PUBACK says 0x00 rather than 0x10 (no matching subscribers)
  const watcher = await connectClient(t, tcpUrl(server))
  await watcher.subscribeAsync('cf/ok/#', { qos: 1 })

  for (const version of [5, 4] as const) {
    await t.test(`[MQTT-3.2.0-1] v${version}: CONNECT, PUBLISH QoS 1 and SUBSCRIBEs in one write: CONNACK first, then each answer with success or its own refusal`, async (t) => {
      const c = await open(t, port, version)
      const v5 = version === 5
      c.sendRaw(oneWrite(version, [
        connectPacket(version),
        { cmd: 'publish', topic: `cf/ok/${version}`, payload: Buffer.from('with the CONNECT'), qos: 1, retain: false, dup: false, messageId: 11 },
        { cmd: 'subscribe', messageId: 12, subscriptions: [{ topic: `cf/sub/${version}`, qos: 1 }] },
        // a filter the gateway refuses itself (0x8F; 3.1.1: 0x80): its SUBACK was written before the CONNACK
        { cmd: 'subscribe', messageId: 13, subscriptions: [{ topic: 'cf/#/bad', qos: 0 }] },
        // MQTT 5: a topic name the gateway refuses itself (PUBACK 0x90)
        ...(v5 ? [{ cmd: 'publish', topic: 'cf/+/bad', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, messageId: 14 } as mqtt.IPublishPacket] : [])
      ]))
      const first = await c.next()
      t.equal(first.cmd, 'connack', `the first packet is the CONNACK (got ${describe(first)})`)
      const connack = first as mqtt.IConnackPacket
      t.equal(v5 ? connack.reasonCode : connack.returnCode, 0, 'accepted')
      const pubacks = (v5 ? [await c.next('puback'), await c.next('puback')] : [await c.next('puback')]) as mqtt.IPubackPacket[]
      const puback = pubacks.find(p => p.messageId === 11)
      t.ok(puback, 'the PUBLISH is acknowledged')
      if (v5) t.equal(puback?.reasonCode, ReasonCode.Success, 'PUBACK 0x00: the message was published')
      const subacks = [await c.next('suback'), await c.next('suback')] as mqtt.ISubackPacket[]
      t.same(subacks.find(s => s.messageId === 12)?.granted, [1], 'the SUBSCRIBE is granted QoS 1')
      t.same(subacks.find(s => s.messageId === 13)?.granted, [v5 ? ReasonCode.TopicFilterInvalid : 0x80], 'the bad filter is refused, after the CONNACK')
      if (v5) {
        t.equal(pubacks.find(p => p.messageId === 14)?.reasonCode, ReasonCode.TopicNameInvalid, 'the bad topic name gets PUBACK 0x90, after the CONNACK')
      }
      t.notOk(c.closed, 'the connection stays open')
    })
  }

  await t.test('[MQTT-3.2.0-1] many packets behind the CONNECT: CONNACK first, every PUBLISH acknowledged in order [MQTT-4.6.0-2]', async (t) => {
    const c = await open(t, port, 5)
    const count = 50
    const publishes: mqtt.Packet[] = []
    for (let i = 1; i <= count; i++) publishes.push({ cmd: 'publish', topic: 'cf/ok/many', payload: Buffer.from(String(i)), qos: 1, retain: false, dup: false, messageId: i })
    c.sendRaw(oneWrite(5, [connectPacket(5), ...publishes]))
    t.equal((await c.next()).cmd, 'connack', 'the first packet is the CONNACK')
    const ids: number[] = []
    for (let i = 0; i < count; i++) ids.push((await c.next('puback') as mqtt.IPubackPacket).messageId as number)
    t.same(ids, publishes.map(p => (p as mqtt.IPublishPacket).messageId), 'all acknowledged, in order')
  })
})

t.test('after a refused CONNECT nothing the client sent is processed', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'passwords')
  await passwd(['--password', 'secret', file, 'alice'])
  // with an ACL the gateway itself judges PUBLISH and SUBSCRIBE: it answered them before aedes refused the CONNECT
  const aclFile = writeFile(dir, 'acl', 'user alice\ntopic readwrite cf/#\n')
  const server = await startTestServer(t, { passwordFile: file, aclFile, allowAnonymous: false })
  const port = tcpPort(server)
  const watcher = await connectClient(t, tcpUrl(server), { username: 'alice', password: 'secret' })
  const inbox = collect(watcher)
  await watcher.subscribeAsync('cf/secret/#', { qos: 1 })

  const cases = [
    { name: 'anonymous', connect: {}, v5: ReasonCode.NotAuthorized, v4: 5 },
    { name: 'a wrong password', connect: { username: 'alice', password: Buffer.from('wrong') }, v5: ReasonCode.BadUserNameOrPassword, v4: 4 }
  ]
  for (const version of [5, 4] as const) {
    for (const refused of cases) {
      await t.test(`[MQTT-3.1.4-6] [MQTT-3.1.4-5] v${version}, ${refused.name}: CONNACK ${version === 5 ? '0x' + refused.v5.toString(16) : refused.v4} and nothing else; the PUBLISH behind the CONNECT is neither delivered nor retained`, async (t) => {
        const c = await open(t, port, version)
        const topic = `cf/secret/${version}/${refused.name.replaceAll(' ', '-')}`
        c.sendRaw(oneWrite(version, [
          connectPacket(version, refused.connect),
          { cmd: 'publish', topic, payload: Buffer.from('sneaked in'), qos: 1, retain: true, dup: false, messageId: 21 },
          { cmd: 'publish', topic, payload: Buffer.from('sneaked in'), qos: 0, retain: true, dup: false },
          { cmd: 'subscribe', messageId: 22, subscriptions: [{ topic: 'cf/#', qos: 1 }] },
          { cmd: 'pingreq' }
        ]))
        await c.waitClose()
        t.same(c.packets.map(p => p.cmd), ['connack'], `only the CONNACK (got ${c.packets.map(describe).join(', ')})`)
        const connack = c.packets[0] as mqtt.IConnackPacket
        t.equal(version === 5 ? connack.reasonCode : connack.returnCode, version === 5 ? refused.v5 : refused.v4)
        t.same(await retained(server, 'cf/secret/#'), [], 'nothing retained')
        // a message published after the close reaches the watcher; the refused one never came before it
        await watcher.publishAsync('cf/secret/marker', 'after', { qos: 1 })
        await inbox.next(1)
        t.same(inbox.messages.map(m => m.topic), ['cf/secret/marker'], 'the watcher got the marker only')
        inbox.messages.length = 0
      })
    }
  }
})

t.test('a slow login with many packets behind the CONNECT: they wait in the socket, then all are processed', async (t) => {
  const file = join(tempDir(t), 'passwords')
  await passwd(['--password', 'secret', file, 'alice'])
  const server = await startTestServer(t, { passwordFile: file, allowAnonymous: false })
  const watcher = await connectClient(t, tcpUrl(server), { username: 'alice', password: 'secret' })
  const inbox = collect(watcher)
  await watcher.subscribeAsync('cf/many/#', { qos: 0 })
  const c = await open(t, tcpPort(server), 5)
  const count = 2000
  const publishes: mqtt.Packet[] = []
  for (let i = 0; i < count; i++) publishes.push({ cmd: 'publish', topic: 'cf/many/x', payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false })
  // far more than the gateway holds before pausing the socket (MAX_HELD_BEFORE_CONNACK)
  c.sendRaw(oneWrite(5, [connectPacket(5, { username: 'alice', password: Buffer.from('secret') }), ...publishes]))
  const first = await c.next()
  t.equal(first.cmd, 'connack', 'the CONNACK first')
  t.equal((first as mqtt.IConnackPacket).reasonCode, 0)
  await t.resolves(waitFor(() => inbox.messages.length >= count, { timeout: 10000, what: () => `${inbox.messages.length}/${count} published` }), 'every message was published')
  t.same(inbox.messages.map(m => m.payload.toString()), publishes.map(p => (p as mqtt.IPublishPacket).payload.toString()), 'in order')
})

t.test('[MQTT-3.1.2-30] enhanced authentication: a PUBLISH sent with the CONNECT is a Protocol Error and is not published', async (t) => {
  const server = await startServer({ host: '127.0.0.1', port: 'auto', wsPort: 0, tlsPort: 0, wssPort: 0, persistence: 'memory', metrics: false, sysInterval: 0 },
    { logger: createLogger({ level: 'silent', pretty: false }), authenticators: [new ChallengeAuthenticator()] })
  t.teardown(() => server.close())
  const watcher = await connectClient(t, tcpUrl(server))
  const inbox = collect(watcher)
  await watcher.subscribeAsync('cf/eauth/#', { qos: 0 })
  const c = await open(t, tcpPort(server), 5)
  c.sendRaw(oneWrite(5, [
    connectPacket(5, { properties: { authenticationMethod: CHALLENGE_METHOD } }),
    { cmd: 'publish', topic: 'cf/eauth/x', payload: Buffer.from('before CONNACK'), qos: 0, retain: false, dup: false }
  ]))
  await c.waitClose()
  const connack = c.packets.find(p => p.cmd === 'connack') as mqtt.IConnackPacket | undefined
  t.equal(connack?.reasonCode, ReasonCode.ProtocolError, 'CONNACK 0x82')
  await watcher.publishAsync('cf/eauth/marker', 'after', { qos: 1 })
  await inbox.next(1)
  t.same(inbox.messages.map(m => m.topic), ['cf/eauth/marker'], 'the PUBLISH was not published')
})
