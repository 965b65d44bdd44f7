/**
 * lib/logging.ts ConnectionLogger: a connection's pino child (transport,
 * remote address, then clientId) is created by the first message logged at
 * an enabled level, not when the connection opens; what is logged carries
 * the same bindings as an eager child would have given it.
 */
import t from 'tap'
import { pino, type Logger, type LevelWithSilent } from 'pino'
import { ConnectionLogger } from '../lib/logging.js'
import { startServer } from '../lib/server.js'
import { connectClient } from './helpers/mqtt.js'
import { rawClient, rawSubscribe } from './helpers/raw5.js'
import { waitFor } from './helpers/wait.js'

interface Line { level: number, msg?: string, [key: string]: unknown }

/** A pino logger at `level` writing JSON lines into `lines`; `children()` counts its child() calls. */
function captured (level: LevelWithSilent): { parent: Logger, lines: Line[], children: () => number } {
  const lines: Line[] = []
  const parent = pino({ level, base: { name: 'test' } }, { write: (s: string) => { lines.push(JSON.parse(s) as Line) } })
  let count = 0
  const original = parent.child
  // pino children inherit from their parent: count only children of the parent itself
  parent.child = function (this: Logger, ...args: Parameters<Logger['child']>) {
    if (this === parent) count++
    return original.apply(this, args)
  } as Logger['child']
  return { parent, lines, children: () => count }
}

const ORIGIN = { transport: 'tcp', remoteAddress: '10.0.0.7' }

t.test('parent at warn: trace, debug and info write nothing and create no child; the first warn carries every binding', async (t) => {
  const { parent, lines, children } = captured('warn')
  const log = new ConnectionLogger(parent, { ...ORIGIN })
  log.trace({ a: 1 }, 'trace')
  log.debug({ a: 2 }, 'debug')
  log.info({ a: 3 }, 'info')
  log.bind({ clientId: 'dev-1' })
  log.info({ a: 4 })
  t.same(lines, [], 'nothing written below warn')
  t.equal(children(), 0, 'no pino child created for messages below the level')

  log.warn({ reason: 'queue-full', qos: 0 }, 'message to client dropped')
  t.equal(children(), 1, 'the first enabled message creates the child')
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 40, name: 'test', transport: 'tcp', remote: '10.0.0.7', clientId: 'dev-1', reason: 'queue-full', qos: 0, msg: 'message to client dropped' },
    'the line has the connection\'s origin, the clientId bound before the child existed, and the fields')

  log.error({ code: 5 }, 'second')
  log.warn({ code: 6 })
  log.info({ code: 7 }, 'still below')
  t.equal(children(), 1, 'one child for the connection, not one per message')
  t.same(lines.slice(1).map(l => [l.level, l.code, l.msg, l.clientId, l.transport]), [[50, 5, 'second', 'dev-1', 'tcp'], [40, 6, undefined, 'dev-1', 'tcp']],
    'later lines keep the bindings; no msg when none given; info still dropped')
})

t.test('parent at debug: debug lines carry the bindings; bind() once the child exists adds the clientId to later lines only', async (t) => {
  const { parent, lines, children } = captured('debug')
  const log = new ConnectionLogger(parent, { ...ORIGIN })
  t.equal(children(), 0, 'no child before anything is logged')
  log.trace({ step: 0 }, 'below debug')
  t.equal(children(), 0, 'nor for a message below the level')
  log.debug({ step: 1 }, 'CONNECT read')
  t.equal(children(), 1)
  // what learnConnect does for an empty client id, then what it does once aedes assigned one
  log.bind({ clientId: undefined })
  log.info({ step: 2 }, 'before the id')
  log.bind({ clientId: 'assigned-42' })
  log.info({ step: 3 }, 'connected')
  log.debug({ step: 4 })
  t.same(lines.map(l => [l.step, l.level, l.transport, l.remote]), [[1, 20, 'tcp', '10.0.0.7'], [2, 30, 'tcp', '10.0.0.7'], [3, 30, 'tcp', '10.0.0.7'], [4, 20, 'tcp', '10.0.0.7']],
    'every line has transport and remote')
  t.notOk('clientId' in (lines[0] as Line), 'no clientId before it was bound')
  t.notOk('clientId' in (lines[1] as Line), 'an undefined clientId is left out')
  t.same(lines.slice(2).map(l => l.clientId), ['assigned-42', 'assigned-42'], 'the clientId bound later is on every later line')
  t.equal(lines.filter(l => JSON.stringify(l).split('"clientId"').length > 2).length, 0, 'never twice on one line')
})

t.test('the logger getter: one pino child with the bindings, created on first use, at any level', async (t) => {
  const { parent, lines, children } = captured('warn')
  const log = new ConnectionLogger(parent, { ...ORIGIN })
  log.bind({ clientId: 'c' })
  const child = log.logger
  t.equal(children(), 1, 'created on first use')
  t.equal(log.logger, child, 'the same child afterwards')
  t.same(child.bindings(), { name: 'test', transport: 'tcp', remote: '10.0.0.7', clientId: 'c' })
  t.equal(child.level, 'warn', 'at the parent\'s level')
  child.info('dropped')
  child.warn('kept')
  t.same(lines.map(l => [l.msg, l.clientId]), [['kept', 'c']])
  log.bind({ session: 's1' })
  t.same(log.logger.bindings(), { name: 'test', transport: 'tcp', remote: '10.0.0.7', clientId: 'c', session: 's1' }, 'bind() after creation: a child carrying the new binding too')
})

t.test('parent silent: nothing at any level, no child', async (t) => {
  const { parent, lines, children } = captured('silent')
  const log = new ConnectionLogger(parent, { ...ORIGIN })
  for (const level of ['trace', 'debug', 'info', 'warn', 'error'] as const) log[level]({ level }, level)
  t.same(lines, [])
  t.equal(children(), 0)
})

t.test('in the broker: a warning about a connection names its transport, remote address and clientId; quiet connections create no child', async (t) => {
  const { parent, lines, children } = captured('warn')
  const server = await startServer({ host: '127.0.0.1', port: 'auto', wsPort: 0, tlsPort: 0, wssPort: 0, persistence: 'memory', metrics: false, sysInterval: 0 }, { logger: parent })
  t.teardown(() => server.close())
  const port = server.tcp?.address().port as number
  const before = children()
  const quiet = []
  for (let i = 0; i < 5; i++) quiet.push(await connectClient(t, `mqtt://127.0.0.1:${port}`, { clientId: `quiet-${i}` }))
  t.equal(children(), before, 'five connections logging nothing at warn: no pino child for any')

  // a client with a small Maximum Packet Size: the broker drops a message to it and says so at warn
  const small = await rawClient(t, port, 5, { clientId: 'small-one', properties: { maximumPacketSize: 100 } })
  await rawSubscribe(small, [{ topic: 'log/big', qos: 0 }])
  await quiet[0]?.publishAsync('log/big', Buffer.alloc(500, 'x'))
  await waitFor(() => lines.some(l => l.clientId === 'small-one'), { timeout: 3000, what: 'a log line of small-one' })
  const line = lines.find(l => l.clientId === 'small-one')
  t.match(line, { level: 40, transport: 'tcp', remote: '127.0.0.1', clientId: 'small-one', reason: 'packet-too-large' }, 'the warning has the connection\'s bindings')
  t.notOk(lines.some(l => l.level < 40), 'nothing below warn written')
})
