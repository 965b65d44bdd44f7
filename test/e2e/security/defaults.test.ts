/**
 * Secure by default (issue "Security and protection"): with `allowAnonymous`
 * unset, anonymous clients are let in only while culex is bound to loopback,
 * as mosquitto 2.0 does; bound to every address they are refused unless
 * `allowAnonymous: true` says otherwise. The start-up log says which mode
 * is in force.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { CulexServer } from '../../../lib/server.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { connectClient } from '../../helpers/mqtt.js'
import { startCulex } from '../../helpers/cli.js'
import { rawConnect, startLoggedServer, type Version } from '../../helpers/security.js'

function port (server: CulexServer): number {
  if (!server.tcp) throw new Error('no TCP listener')
  return server.tcp.address().port
}

function anonymousLog (logs: Array<Record<string, unknown>>): Record<string, unknown> | undefined {
  return logs.find(l => typeof l.msg === 'string' && l.msg.startsWith('anonymous clients are'))
}

/** [MQTT-3.1.4-2] [MQTT-3.2.2-7] (5.0) / [MQTT-3.2.2-5] (3.1.1): a refused CONNECT gets its code, then the connection is closed. */
async function expectRefused (t: Test, server: CulexServer, version: Version, expected: number, connect = {}): Promise<void> {
  const { client, connack, code } = await rawConnect(t, port(server), version, connect)
  t.equal(code, expected, `v${version} CONNACK code 0x${expected.toString(16)}`)
  t.equal(connack.sessionPresent, false, 'no session present on a refusal')
  await client.waitClose()
}

async function expectAccepted (t: Test, server: CulexServer, version: Version): Promise<void> {
  const { client, code } = await rawConnect(t, port(server), version)
  t.equal(code, 0, `v${version} anonymous CONNECT accepted`)
  client.destroy()
}

t.test('allowAnonymous unset, bound to 127.0.0.1: anonymous clients connect, and the log says why', async (t) => {
  const { server, logs } = await startLoggedServer(t, { host: '127.0.0.1' })
  t.equal(server.config.allowAnonymous, undefined, 'allowAnonymous was not set')
  t.equal(server.security.allowAnonymous, true, 'anonymous access is on')
  const line = anonymousLog(logs)
  t.ok(line, 'the start-up log states the anonymous mode')
  t.equal(line?.allowAnonymous, true)
  t.match(String(line?.msg), /allowed.*loopback only/, 'and that it is allowed because of loopback')
  for (const version of [5, 4] as const) await expectAccepted(t, server, version)
  // a real client library too
  const mqttjs = await connectClient(t, `mqtt://127.0.0.1:${port(server)}`, { protocolVersion: 5 })
  t.ok(mqttjs.connected, 'MQTT.js connects without credentials')
})

t.test('allowAnonymous unset, bound to 0.0.0.0: anonymous clients are refused (0x87 / 5)', async (t) => {
  const { server, logs } = await startLoggedServer(t, { host: '0.0.0.0' })
  t.equal(server.security.allowAnonymous, false, 'anonymous access is off')
  const line = anonymousLog(logs)
  t.equal(line?.allowAnonymous, false)
  t.match(String(line?.msg), /refused/, 'the start-up log says anonymous clients are refused')
  await expectRefused(t, server, 5, ReasonCode.NotAuthorized)
  await expectRefused(t, server, 4, 5)
  await t.test('MQTT.js sees the refusal too', async (t) => {
    await t.rejects(connectClient(t, `mqtt://127.0.0.1:${port(server)}`, { protocolVersion: 5 }), /Not authorized/i)
  })
})

t.test('allowAnonymous unset, bound to 0.0.0.0: a user name without a password file is no credential (0x86 / 4)', async (t) => {
  const { server } = await startLoggedServer(t, { host: '0.0.0.0' })
  await expectRefused(t, server, 5, ReasonCode.BadUserNameOrPassword, { username: 'alice', password: Buffer.from('x') })
  await expectRefused(t, server, 4, 4, { username: 'alice', password: Buffer.from('x') })
})

t.test('allowAnonymous: true, bound to 0.0.0.0: anonymous clients connect', async (t) => {
  const { server, logs } = await startLoggedServer(t, { host: '0.0.0.0', allowAnonymous: true })
  t.equal(server.security.allowAnonymous, true)
  const line = anonymousLog(logs)
  t.equal(line?.allowAnonymous, true)
  t.notMatch(String(line?.msg), /loopback only/, 'an explicit choice is not described as the loopback default')
  for (const version of [5, 4] as const) await expectAccepted(t, server, version)
})

t.test('allowAnonymous: false, bound to 127.0.0.1: the explicit setting wins over the loopback default', async (t) => {
  const { server } = await startLoggedServer(t, { host: '127.0.0.1', allowAnonymous: false })
  t.equal(server.security.allowAnonymous, false)
  await expectRefused(t, server, 5, ReasonCode.NotAuthorized)
  await expectRefused(t, server, 4, 5)
})

t.test('the culex command binds to loopback and allows anonymous clients by default, saying so', async (t) => {
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const line = culex.logs.find(l => typeof l.msg === 'string' && l.msg.startsWith('anonymous clients are'))
  t.equal(line?.allowAnonymous, true)
  t.match(culex.url, /^mqtt:\/\/127\.0\.0\.1:/, 'listening on loopback')
  const client = await connectClient(t, culex.url, { protocolVersion: 4 })
  t.ok(client.connected)
})
