/**
 * What culex says about where credentials cross and how connections end:
 * - a warning at start whenever credentials are accepted on a plain-text
 *   listener (TCP, WebSocket) bound to a non-loopback address
 *   (lib/server.ts plainTextCredentialListeners); none on loopback or with
 *   TLS listeners only. The brokers here bind 0.0.0.0 but nothing ever
 *   connects to anything but 127.0.0.1;
 * - the log line of a client's own DISCONNECT names it and its reason code
 *   (lib/protocol/connection.ts close).
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { startCulex } from '../../helpers/cli.js'
import { connectClient } from '../../helpers/mqtt.js'
import { makeSelfSignedCert } from '../../helpers/tls.js'
import { passwd, startLoggedServer, tempDir, uniqueId } from '../../helpers/security.js'
import { tcpUrl } from '../../helpers/server.js'
import { waitFor } from '../../helpers/wait.js'

const WARNING = /credentials are accepted in clear text/

async function passwordFile (t: Test): Promise<string> {
  const file = join(tempDir(t), 'passwords')
  await passwd(['--password', 'secret', file, 'alice'])
  return file
}

function tls (t: Test): { tlsKey: string, tlsCert: string } {
  const cert = makeSelfSignedCert()
  t.teardown(cert.cleanup)
  return { tlsKey: cert.keyFile, tlsCert: cert.certFile }
}

t.test('culex --host 0.0.0.0 with a password file and TLS, plain listeners still on: a warning naming them', async (t) => {
  const file = await passwordFile(t)
  const { tlsKey, tlsCert } = tls(t)
  const culex = await startCulex(['--host', '0.0.0.0', '--port', 'auto', '--ws-port', 'auto', '--tls-port', 'auto', '--wss-port', '0',
    '--tls-key', tlsKey, '--tls-cert', tlsCert, '--password-file', file, '--persistence', 'memory', '--metrics', 'false', '--sys-interval', '0'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const warning = culex.logs.find(l => typeof l.msg === 'string' && WARNING.test(l.msg))
  t.ok(warning, 'the start-up log warns')
  t.equal(warning?.level, 40, 'at warn')
  const urls = (warning?.listeners ?? []) as string[]
  t.equal(urls.length, 2, `it names the TCP and WebSocket listeners (${urls.join(', ')})`)
  t.ok(urls.some(u => u.startsWith('mqtt://')) && urls.some(u => u.startsWith('ws://')), 'TCP and WebSocket')
  t.notOk(urls.some(u => u.startsWith('mqtts://') || u.startsWith('wss://')), 'not the TLS listener')
})

t.test('no warning where credentials cannot be read on the way', async (t) => {
  const file = await passwordFile(t)
  const base = { metrics: false, sysInterval: 0 }
  const cases: Array<[string, Record<string, unknown>]> = [
    ['a password file on loopback', { host: '127.0.0.1', passwordFile: file }],
    ['0.0.0.0 with TLS listeners only (port 0, wsPort 0)', { host: '0.0.0.0', port: 0, wsPort: 0, tlsPort: 'auto', wssPort: 'auto', ...tls(t), passwordFile: file }],
    ['0.0.0.0 without credentials (anonymous clients refused)', { host: '0.0.0.0' }]
  ]
  for (const [name, overrides] of cases) {
    const { server, logs } = await startLoggedServer(t, { ...base, ...overrides })
    t.ok(logs.some(l => typeof l.msg === 'string' && l.msg.startsWith('anonymous clients are')), `${name}: the start-up log was written`)
    t.notOk(logs.some(l => typeof l.msg === 'string' && WARNING.test(l.msg)), `${name}: no warning`)
    await server.close()
  }
  const { server, logs } = await startLoggedServer(t, { ...base, host: '0.0.0.0', passwordFile: file })
  t.ok(logs.some(l => typeof l.msg === 'string' && WARNING.test(l.msg)), 'and the same in-process broker on 0.0.0.0 with plain listeners warns')
  await server.close()
})

t.test('the log line of a client\'s own DISCONNECT names it and its reason code', async (t) => {
  const { server, logs } = await startLoggedServer(t, { metrics: false, sysInterval: 0 })
  const ended = (clientId: string): Record<string, unknown> | undefined => logs.find(l => l.msg === 'client disconnected' && l.clientId === clientId)
  for (const [version, reasonCode, expected] of [[5, 0, '0x00 Normal disconnection'], [5, 0x04, '0x04 DisconnectWithWill'], [4, undefined, '0x00 Normal disconnection']] as const) {
    const clientId = uniqueId('bye')
    const client: MqttClient = await connectClient(t, tcpUrl(server), { protocolVersion: version, clientId })
    await client.endAsync(false, reasonCode === undefined ? {} : { reasonCode })
    await t.resolves(waitFor(() => ended(clientId) !== undefined), `v${version}: the disconnection is logged`)
    const line = ended(clientId)
    t.equal(line?.by, 'client', `v${version}: by the client`)
    t.equal(line?.reason, `DISCONNECT from the client: ${expected}`, `v${version}: the reason names the DISCONNECT and its reason code`)
  }
  // a connection the broker ends says so
  const clientId = uniqueId('kicked')
  await connectClient(t, tcpUrl(server), { clientId })
  await server.close()
  t.match(ended(clientId), { by: 'server', reasonCode: '0x8b ServerShuttingDown' }, 'a shutdown is the server\'s')
})
