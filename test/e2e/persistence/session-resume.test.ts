/**
 * Resuming a session: its queue is delivered even when the resuming CONNECT
 * says the session ends with this connection (Session Expiry 0), and Session
 * Present says a session was there whether or not it holds subscriptions;
 * with mosquitto's clients, Paho and MQTT.js, and across a restart on the
 * LevelDB store.
 */
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CulexServer } from '../../../lib/server.js'
import type { ConfigInput } from '../../../lib/config/schema.js'
import { gone, startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { hasMosquittoClients, mosquittoPub, mosquittoSub, stopChild, subscribedTo } from '../../helpers/mosquitto.js'
import { findPython, pahoWorker } from '../../helpers/paho.js'
import { connectAck, inbox } from '../../helpers/level-broker.js'
import { shareId } from '../../helpers/share.js'
import { connectClient } from '../../helpers/mqtt.js'

async function publishJobs (server: CulexServer, t: Test, topic: string, n: number): Promise<string[]> {
  const publisher = await connectClient(t, tcpUrl(server))
  const sent = Array.from({ length: n }, (_, i) => `m${i + 1}`)
  for (const m of sent) await publisher.publishAsync(topic, m, { qos: 1 })
  await publisher.endAsync()
  return sent
}

t.test('[MQTT-3.1.2-4] a session resumed with Clean Start 0 and Session Expiry 0 gets its queue, then ends at disconnect', async (t) => {
  t.test('mosquitto_sub -V 5 -c -x 99999, killed; then -c -x 0', async (t) => {
    if (!await hasMosquittoClients()) { t.fail('mosquitto-clients is not installed'); return }
    const server = await startTestServer(t)
    const port = String(tcpPort(server))
    const id = shareId('mosq-resume')
    const topic = `resume/${id}`
    const subscribed = subscribedTo(server.broker, topic)
    const first = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', '5', '-c', '-x', '99999', '-i', id, '-t', topic, '-q', '1'])
    await subscribed
    const left = gone(server, id)
    await stopChild(first.child, 0)
    await left
    for (let i = 1; i <= 5; i++) await mosquittoPub(['-h', '127.0.0.1', '-p', port, '-V', '5', '-t', topic, '-m', `m${i}`, '-q', '1'])
    const second = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', '5', '-c', '-x', '0', '-i', id, '-t', topic, '-q', '1', '-C', '5', '-W', '10'])
    t.same(await second.lines$(5, 10000), ['m1', 'm2', 'm3', 'm4', 'm5'], 'the queued messages, in order (as mosquitto does)')
    t.equal(await second.exited(), 0)
    await gone(server, id).catch(() => {})
    const { client, sessionPresent } = await connectAck(t, tcpUrl(server), { clientId: id, clean: false })
    t.equal(sessionPresent, false, 'the session ended with that connection')
    await client.endAsync()
  })

  t.test('Paho (MQTT 5)', async (t) => {
    const python = await findPython()
    if (python === undefined) { t.fail('python3-paho-mqtt is not installed'); return }
    const server = await startTestServer(t)
    const port = tcpPort(server)
    const id = shareId('paho-resume')
    const topic = `resume/${id}`
    const first = pahoWorker(t, python, { port, version: 5, clientId: id, keepalive: 30, seconds: 30, filter: topic, session: 99999 })
    await first.lines$(2, 10000)
    t.same(first.lines.slice(0, 2), ['connack 0 0', 'suback 1'])
    const left = gone(server, id)
    await stopChild(first.child, 0)
    await left
    const sent = await publishJobs(server, t, topic, 5)
    const second = pahoWorker(t, python, { port, version: 5, clientId: id, keepalive: 30, seconds: 2, filter: topic, session: 'resume' })
    const lines = await second.lines$(6, 10000)
    t.equal(lines[0], 'connack 1 0', 'Session Present 1')
    t.same(lines.slice(1), sent.map(m => `message ${m}`), 'and the queue')
  })

  t.test('MQTT.js', async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    const id = shareId('mqttjs-resume')
    const topic = `resume/${id}`
    const first = await connectAck(t, url, { clientId: id, clean: false, properties: { sessionExpiryInterval: 99999 } })
    await first.client.subscribeAsync(topic, { qos: 1 })
    const left = gone(server, id)
    first.client.end(true)
    await left
    const sent = await publishJobs(server, t, topic, 5)
    const second = await connectAck(t, url, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } })
    t.equal(second.sessionPresent, true)
    const got = await inbox(second.client).wait(5)
    t.same(got.map(p => p.payload.toString()), sent, 'the queued messages')
    const ended = gone(server, id)
    await second.client.endAsync()
    await ended
    const third = await connectAck(t, url, { clientId: id, clean: false })
    t.equal(third.sessionPresent, false, 'the session ended at that disconnect')
    await third.client.endAsync()
  })
})

for (const version of [5, 4] as const) {
  const rule = version === 5 ? '[MQTT-3.2.2-3]' : '[MQTT-3.2.2-2]'
  const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false }

  t.test(`${rule} MQTT ${version === 5 ? '5' : '3.1.1'}: Session Present 1 for a resumed session with no subscriptions`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    const id = shareId(`present-v${version}`)
    const first = await connectAck(t, url, { protocolVersion: version, clientId: id, ...persistent })
    t.equal(first.sessionPresent, false, 'no session at first')
    const left = gone(server, id)
    await first.client.endAsync()
    await left
    const second = await connectAck(t, url, { protocolVersion: version, clientId: id, ...persistent })
    t.equal(second.sessionPresent, true, 'the session is there, without subscriptions')
    await second.client.endAsync()
  })

  t.test(`${rule} MQTT ${version === 5 ? '5' : '3.1.1'}: Session Present 1 across a restart on the LevelDB store, with and without subscriptions`, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'culex-present-'))
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
    const config: ConfigInput = { persistence: 'level', dataDir }
    let server = await startTestServer(t, config)
    const bare = shareId(`bare-v${version}`)
    const subscribed = shareId(`subscribed-v${version}`)
    for (const id of [bare, subscribed]) {
      const c = await connectAck(t, tcpUrl(server), { protocolVersion: version, clientId: id, ...persistent })
      if (id === subscribed) await c.client.subscribeAsync(`present/${id}`, { qos: 1 })
      const left = gone(server, id)
      await c.client.endAsync()
      await left
    }
    await server.close()
    server = await startTestServer(t, config)
    for (const id of [bare, subscribed]) {
      const c = await connectAck(t, tcpUrl(server), { protocolVersion: version, clientId: id, ...persistent })
      t.equal(c.sessionPresent, true, `${id === bare ? 'without' : 'with'} a subscription: Session Present 1 after the restart`)
      await c.client.endAsync()
    }
    const fresh = await connectAck(t, tcpUrl(server), { protocolVersion: version, clientId: shareId(`fresh-v${version}`), ...persistent })
    t.equal(fresh.sessionPresent, false, 'and 0 for a client id that never had a session')
    await fresh.client.endAsync()
  })
}
