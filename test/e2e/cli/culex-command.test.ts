/** The culex command: start, graceful shutdown, usage errors. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import type { IDisconnectPacket } from 'mqtt-packet'
import { startCulex, runCulex, within } from '../../helpers/cli.js'
import { connectClient, waitForPacket } from '../../helpers/mqtt.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

t.test('[MQTT-3.14.4-1] SIGTERM sends DISCONNECT 0x8B to MQTT 5 clients and exits 0', async (t) => {
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--host', '127.0.0.1'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  t.ok(culex.logs.some(l => typeof l.msg === 'string' && l.msg.includes('loopback only')), 'the start-up log says how to listen elsewhere')
  const v5 = await connectClient(t, culex.url, { protocolVersion: 5 })
  const v4 = await connectClient(t, culex.url, { protocolVersion: 4 })
  const v4Closed = new Promise<void>((resolve) => v4.once('close', () => resolve()))
  const disconnect = waitForPacket(v5, 'disconnect')
  const started = Date.now()
  culex.child.kill('SIGTERM')
  const packet = await disconnect as IDisconnectPacket
  t.equal(packet.reasonCode, ReasonCode.ServerShuttingDown, 'DISCONNECT 0x8B')
  await within(v4Closed, 10000, 'the 3.1.1 client closed')
  const { code } = await within(culex.exit, 10000, 'culex exited after SIGTERM')
  t.equal(code, 0, 'exit status 0')
  t.ok(Date.now() - started < 5000, 'within a few seconds')
  t.ok(culex.logs.some(l => l.msg === 'client connected' && typeof l.clientId === 'string'), 'connections logged with their clientId')
})

t.test('a bad flag exits 2 with one line naming the problem', async (t) => {
  const bad = await runCulex(['--port', 'nope'])
  t.equal(bad.code, 2)
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line')
  t.match(bad.stderr, /port \(--port\)/)
  const unknown = await runCulex(['--no-such-flag'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown option '--no-such-flag'/)
  const env = await runCulex([], { CULEX_LOG_LEVEL: 'loud' })
  t.equal(env.code, 2)
  t.match(env.stderr, /logLevel \(CULEX_LOG_LEVEL\)/)
})

t.test('a structured setting that is not JSON exits 2 with one line naming it, not a SyntaxError stack', async (t) => {
  for (const [args, env, source] of [
    [['--shared-strategies', 'notjson'], {}, '--shared-strategies'],
    [[], { CULEX_SHARED_STRATEGIES: 'notjson' }, 'CULEX_SHARED_STRATEGIES']
  ] as Array<[string[], Record<string, string>, string]>) {
    const run = await runCulex(args, env)
    t.equal(run.code, 2, `${source}: exit 2`)
    t.equal(run.stderr.trim().split('\n').length, 1, `${source}: one line`)
    t.match(run.stderr, `sharedStrategies (${source}): not valid JSON`)
    t.notMatch(run.stderr, /SyntaxError|    at /, `${source}: no stack`)
  }
})

t.test('a misspelt flag exits 2 with one line that names the flag meant', async (t) => {
  const run = await runCulex(['--maximum-qo-s', '1'])
  t.equal(run.code, 2)
  t.equal(run.stderr.trim().split('\n').length, 1, 'one line')
  t.match(run.stderr, /unknown option '--maximum-qo-s'.*--maximum-qos/)
})

t.test('--help and --version', async (t) => {
  const help = await runCulex(['--help'])
  t.equal(help.code, 0)
  for (const flag of ['--config', '--port', '--ws-port', '--tls-port', '--wss-port', '--host', '--data-dir', '--log-level']) {
    t.match(help.stdout, flag, `help lists ${flag}`)
  }
  const version = await runCulex(['--version'])
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), pkg.version)
})
