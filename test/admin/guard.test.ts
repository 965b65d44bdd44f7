import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { hostAllowed, sameOrigin, splitHost, isStateChanging, CSP } from '../../lib/admin/guard.js'

t.test('Host header: IP literals, localhost and the host name, on the listener\'s port', async (t) => {
  t.ok(hostAllowed('127.0.0.1:18083', 18083))
  t.ok(hostAllowed('localhost:18083', 18083))
  t.ok(hostAllowed('LOCALHOST:18083', 18083))
  t.ok(hostAllowed('[::1]:18083', 18083))
  t.ok(hostAllowed('10.1.2.3:18083', 18083))
  t.ok(hostAllowed('broker-1:18083', 18083, ['broker-1']))
  t.notOk(hostAllowed('attacker.example:18083', 18083, ['broker-1']), 'DNS rebinding: another name')
  t.notOk(hostAllowed('127.0.0.1:18084', 18083), 'another port')
  t.notOk(hostAllowed('127.0.0.1', 18083), 'no port: 80')
  t.ok(hostAllowed('127.0.0.1', 80))
  t.notOk(hostAllowed(undefined, 18083))
  t.notOk(hostAllowed('a:b:c', 18083))
  t.notOk(hostAllowed('', 18083))
  t.same(splitHost('[::1]:8'), { name: '[::1]', port: '8' })
})

t.test('same origin for changes', async (t) => {
  const req = (headers: Record<string, string>): IncomingMessage => ({ headers: { host: '127.0.0.1:9', ...headers } }) as unknown as IncomingMessage
  t.ok(sameOrigin(req({ origin: 'http://127.0.0.1:9' }), false))
  t.notOk(sameOrigin(req({ origin: 'http://127.0.0.1:9' }), true), 'scheme counts')
  t.notOk(sameOrigin(req({ origin: 'http://evil.example' }), false))
  t.notOk(sameOrigin(req({ origin: 'null' }), false))
  t.ok(sameOrigin(req({ 'sec-fetch-site': 'same-origin' }), false))
  t.notOk(sameOrigin(req({ 'sec-fetch-site': 'same-site' }), false))
  t.notOk(sameOrigin(req({ 'sec-fetch-site': 'cross-site' }), false))
  t.ok(sameOrigin(req({}), false), 'no browser header: the CSRF token decides')
  t.ok(isStateChanging('POST'))
  t.ok(isStateChanging('DELETE'))
  t.notOk(isStateChanging('GET'))
  t.notOk(isStateChanging(undefined))
  t.notMatch(CSP, /unsafe/)
})
