/**
 * MQTT 5 properties between mosquitto's command-line clients (-V 5) and
 * culex: what mosquitto_pub sends arrives unaltered, what culex sends
 * (subscription identifiers, topic aliases, expiry, within the client's
 * Receive Maximum and Maximum Packet Size) is understood by libmosquitto.
 * mosquitto_sub prints properties with -F (%E expiry, %S subscription
 * identifier, %A topic alias, %P user properties, %C content type, %R response
 * topic, %D correlation data, %F payload format indicator).
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn } from 'node:child_process'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoPub, mosquittoSub, subscribedTo } from '../../helpers/mosquitto.js'

/** A TCP relay to culex that decodes what the client sends (MQTT 5). */
async function recordingProxy (t: Test, upstreamPort: number): Promise<{ port: number, fromClient: Packet[] }> {
  const fromClient: Packet[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: Packet) => fromClient.push(p))
    parser.on('error', () => {})
    const upstream = net.connect(upstreamPort, '127.0.0.1')
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    }
    client.on('data', (d: Buffer) => { parser.parse(d); upstream.write(d) })
    upstream.on('data', (d: Buffer) => client.write(d))
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.on('error', () => {})
    upstream.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.close()
    for (const socket of sockets) socket.destroy()
  })
  return { port: (server.address() as net.AddressInfo).port, fromClient }
}

/** mosquitto_pub reading messages from stdin, one per line (-l). */
async function mosquittoPubLines (args: string[], lines: string[]): Promise<number | null> {
  const child = spawn('mosquitto_pub', [...args, '-l'], { stdio: ['pipe', 'ignore', 'pipe'] })
  const limit = setTimeout(() => { child.kill('SIGKILL') }, 10000)
  let err = ''
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  child.stdin?.end(lines.map(l => l + '\n').join(''))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(limit)
  if (code !== 0) throw new Error(`mosquitto_pub exited ${code}: ${err}`)
  return code
}

t.test('mosquitto clients -V 5', async (t) => {
  if (!await hasMosquittoClients()) {
    t.fail('mosquitto-clients is not installed (.ci/run installs it)')
    return
  }
  const server = await startTestServer(t)
  const port = String(tcpPort(server))
  const url = tcpUrl(server)
  const base = ['-h', '127.0.0.1', '-p', port, '-V', '5']

  await t.test('[MQTT-3.3.2-6] -D publish message-expiry-interval 100 reaches mosquitto_sub and MQTT.js with the interval', async (t) => {
    const topic = 'interop5/expiry'
    const js = await connectClient(t, url)
    const got = collect(js)
    await js.subscribeAsync(topic, { qos: 1 })
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-q', '1', '-t', topic, '-C', '1', '-F', '%t %E %p'])
    await subscribed
    await mosquittoPub([...base, '-q', '1', '-t', topic, '-m', 'perishable', '-D', 'publish', 'message-expiry-interval', '100'])
    const [line] = await sub.lines$(1)
    const match = /^interop5\/expiry (\d+) perishable$/.exec(line ?? '')
    t.ok(match, `mosquitto_sub printed "${line}"`)
    const interval = Number(match?.[1])
    t.ok(interval <= 100 && interval >= 99, `mosquitto_sub sees the interval (${interval})`)
    const [m] = await got.next(1)
    t.ok((m?.properties?.messageExpiryInterval ?? 0) >= 99 && (m?.properties?.messageExpiryInterval ?? 0) <= 100, 'so does MQTT.js')
  })

  await t.test('[MQTT-3.3.4-3] -D subscribe subscription-identifier 7: mosquitto_sub sees identifier 7 on messages from MQTT.js', async (t) => {
    const topic = 'interop5/si'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-q', '1', '-t', topic, '-C', '2', '-F', '%S %t %p', '-D', 'subscribe', 'subscription-identifier', '7'])
    await subscribed
    const pub = await connectClient(t, url)
    await pub.publishAsync(topic, 'one', { qos: 1 })
    await pub.publishAsync(topic, 'two', { qos: 0 })
    t.same(await sub.lines$(2), ['7 interop5/si one', '7 interop5/si two'])
    t.equal(await sub.exited(), 0)
  })

  await t.test('[MQTT-3.3.2-12] -D publish topic-alias 1: mosquitto_pub sets the alias once, then publishes by alias alone; subscribers get the real topic', async (t) => {
    const topic = 'interop5/alias/long/topic/name'
    const js = await connectClient(t, url)
    const got = collect(js)
    await js.subscribeAsync(topic, { qos: 1 })
    const proxy = await recordingProxy(t, tcpPort(server))
    await mosquittoPubLines(['-h', '127.0.0.1', '-p', String(proxy.port), '-V', '5', '-q', '1', '-t', topic, '-D', 'publish', 'topic-alias', '1'], ['one', 'two', 'three'])
    const messages = await got.next(3)
    t.same(messages.map(m => [m.topic, m.payload.toString()]), [[topic, 'one'], [topic, 'two'], [topic, 'three']], 'the real topic every time')
    const sent = proxy.fromClient.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish')
    t.equal(sent.length, 3)
    t.same(sent.map(p => p.properties?.topicAlias), [1, 1, 1], 'every PUBLISH carried alias 1')
    t.equal(sent[0]?.topic, topic, 'the first one set it with the topic')
    const aliasOnly = sent.slice(1).filter(p => p.topic === '').length
    t.comment(`mosquitto_pub sent ${aliasOnly} of 2 later messages by alias alone`)
  })

  // libmosquitto 2.0.x cannot resolve a Topic Alias it receives (client-side
  // aliases arrived in 2.1) even when told to advertise a Topic Alias Maximum
  // with -D connect topic-alias-maximum; by default it advertises none, and
  // then it must get none.
  await t.test('[MQTT-3.1.2-27] mosquitto_sub, which sends no Topic Alias Maximum, gets repeated topics without aliases', async (t) => {
    const topic = 'interop5/no-alias'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-t', topic, '-C', '3', '-F', '%t|%A|%p'])
    await subscribed
    const pub = await connectClient(t, url)
    for (const m of ['m0', 'm1', 'm2']) await pub.publishAsync(topic, m)
    t.same(await sub.lines$(3), [`${topic}||m0`, `${topic}||m1`, `${topic}||m2`], 'the topic every time, no alias')
    t.equal(await sub.exited(), 0)
  })

  await t.test('[MQTT-3.1.2-24] -D connect maximum-packet-size 200: mosquitto_sub gets the small messages, never the big one, and is not disconnected', async (t) => {
    const topic = 'interop5/size'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-q', '1', '-t', topic, '-C', '2', '-F', '%p', '-D', 'connect', 'maximum-packet-size', '200'])
    await subscribed
    const pub = await connectClient(t, url)
    await pub.publishAsync(topic, 'small-1', { qos: 1 })
    await pub.publishAsync(topic, Buffer.alloc(1000, 'B'), { qos: 1 })
    await pub.publishAsync(topic, 'small-2', { qos: 1 })
    t.same(await sub.lines$(2), ['small-1', 'small-2'])
    t.equal(await sub.exited(), 0, 'mosquitto_sub exits normally (it would fail on a packet over its maximum)')
  })

  await t.test('[MQTT-3.3.4-9] -D connect receive-maximum 1: 20 QoS 1 messages reach mosquitto_sub in order', async (t) => {
    const topic = 'interop5/rm'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-q', '1', '-t', topic, '-C', '20', '-F', '%p', '-D', 'connect', 'receive-maximum', '1'])
    await subscribed
    const pub = await connectClient(t, url)
    const messages = Array.from({ length: 20 }, (_, i) => `r${i}`)
    await Promise.all(messages.map(m => pub.publishAsync(topic, m, { qos: 1 })))
    t.same(await sub.lines$(20), messages)
    t.equal(await sub.exited(), 0)
  })

  await t.test('[MQTT-3.3.2-17] [MQTT-3.3.2-20] [MQTT-3.3.2-15] properties from mosquitto_pub reach MQTT.js unaltered', async (t) => {
    const topic = 'interop5/props-in'
    const js = await connectClient(t, url)
    const got = collect(js)
    await js.subscribeAsync(topic, { qos: 1 })
    await mosquittoPub([...base, '-q', '1', '-t', topic, '-m', '{"a":1}',
      '-D', 'publish', 'user-property', 'k1', 'v1',
      '-D', 'publish', 'user-property', 'k2', 'v2',
      '-D', 'publish', 'content-type', 'application/json',
      '-D', 'publish', 'response-topic', 'interop5/reply',
      '-D', 'publish', 'correlation-data', 'corr-42',
      '-D', 'publish', 'payload-format-indicator', '1'])
    const [m] = await got.next(1)
    t.same(m?.properties?.userProperties, { k1: 'v1', k2: 'v2' })
    t.equal(m?.properties?.contentType, 'application/json')
    t.equal(m?.properties?.responseTopic, 'interop5/reply')
    t.equal(m?.properties?.correlationData?.toString(), 'corr-42')
    t.equal(m?.properties?.payloadFormatIndicator, true)
  })

  await t.test('[MQTT-3.3.2-17] [MQTT-3.3.2-18] properties from MQTT.js reach mosquitto_sub unaltered, user properties in order', async (t) => {
    const topic = 'interop5/props-out'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, [...base, '-t', topic, '-C', '1', '-F', '%P|%C|%R|%D|%F|%p'])
    await subscribed
    const pub = await connectClient(t, url)
    await pub.publishAsync(topic, 'body', {
      qos: 1,
      properties: {
        userProperties: { first: '1', second: '2' },
        contentType: 'text/plain',
        responseTopic: 'interop5/back',
        correlationData: Buffer.from('xyz'),
        payloadFormatIndicator: true
      }
    })
    const [line] = await sub.lines$(1)
    t.equal(line, 'first:1 second:2|text/plain|interop5/back|xyz|1|body')
  })
})
