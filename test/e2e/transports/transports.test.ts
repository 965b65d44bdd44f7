/**
 * MQTT.js clients, 3.1.1 and 5, connect, subscribe and publish at QoS 0, 1
 * and 2 over TCP, WebSocket, TLS and secure WebSocket.
 */
import t from 'tap'
import { startTestServer } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { makeSelfSignedCert } from '../../helpers/tls.js'

const cert = makeSelfSignedCert()
t.teardown(cert.cleanup)

t.test('every transport carries QoS 0, 1 and 2 for MQTT 3.1.1 and 5', async (t) => {
  const server = await startTestServer(t, { tlsPort: 'auto', wssPort: 'auto', tlsKey: cert.keyFile, tlsCert: cert.certFile })
  const urls = {
    tcp: `mqtt://127.0.0.1:${server.tcp?.address().port}`,
    ws: `ws://127.0.0.1:${server.ws?.address().port}/mqtt`,
    tls: `mqtts://127.0.0.1:${server.tls?.address().port}`,
    wss: `wss://127.0.0.1:${server.wss?.address().port}/mqtt`
  }
  for (const [name, url] of Object.entries(urls)) {
    for (const protocolVersion of [4, 5] as const) {
      await t.test(`${name} v${protocolVersion === 5 ? 5 : '3.1.1'}`, async (t) => {
        const tlsOpts = { ca: cert.cert, rejectUnauthorized: true }
        const sub = await connectClient(t, url, { protocolVersion, ...tlsOpts })
        const pub = await connectClient(t, url, { protocolVersion, ...tlsOpts })
        const got = collect(sub)
        const granted = await sub.subscribeAsync(`${name}/+/x`, { qos: 2 })
        t.equal(granted[0]?.qos, 2, 'granted QoS 2')
        for (const qos of [0, 1, 2] as const) await pub.publishAsync(`${name}/q${qos}/x`, `payload ${qos}`, { qos })
        const messages = await got.next(3)
        const byTopic = new Map(messages.map(m => [m.topic, m]))
        for (const qos of [0, 1, 2] as const) {
          const m = byTopic.get(`${name}/q${qos}/x`)
          t.equal(m?.qos, qos, `QoS ${qos} delivered at QoS ${qos}`)
          t.equal(m?.payload.toString(), `payload ${qos}`)
        }
      })
    }
  }
})

t.test('the WebSocket listener accepts the mqtt subprotocol on /mqtt only', async (t) => {
  const server = await startTestServer(t)
  const port = server.ws?.address().port
  const { WebSocket } = await import('ws')
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  t.equal(ws.protocol, 'mqtt', '[MQTT-6.0.0-4] server selects the mqtt subprotocol')
  ws.close()
  const wrong = new WebSocket(`ws://127.0.0.1:${port}/other`, ['mqtt'])
  const err = await new Promise<Error>((resolve) => wrong.once('error', resolve))
  t.match(err.message, /404/, 'another path is not a WebSocket endpoint')
})

t.test('an optional listener with port 0 is off', async (t) => {
  const server = await startTestServer(t, { wsPort: 0 })
  t.equal(server.ws, undefined)
  t.equal(server.listeners.length, 1)
  t.equal(server.listeners[0]?.name, 'tcp')
})
