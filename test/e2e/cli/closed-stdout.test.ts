/**
 * culex with its stdout a pipe whose reader has gone (`culex | head -5`):
 * SIGTERM must still end it, promptly and with exit 0. With pino's
 * asynchronous destination the exit flushed synchronously, retried the
 * EPIPE forever, and the process ignored every later SIGTERM.
 */
import t from 'tap'
import { once } from 'node:events'
import { startCulex, within } from '../../helpers/cli.js'

t.test('SIGTERM ends culex within a few seconds, exit 0, when its stdout is a closed pipe', async (t) => {
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--host', '127.0.0.1'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const stdout = culex.child.stdout
  if (stdout === null) throw new Error('no stdout pipe')
  // the reader goes away, as `head` does after its lines
  stdout.destroy()
  await once(stdout, 'close')
  const started = Date.now()
  culex.child.kill('SIGTERM')
  const exit = await within(culex.exit, 8000, 'culex exited after SIGTERM with its stdout closed').catch((err: Error) => err)
  if (exit instanceof Error) {
    t.fail(exit.message)
    return
  }
  t.equal(exit.code, 0, 'exit status 0')
  t.equal(exit.signal, null, 'ended by itself, not by a signal')
  t.ok(Date.now() - started < 5000, `within a few seconds (${Date.now() - started} ms)`)
})
