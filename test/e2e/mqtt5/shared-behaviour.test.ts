/**
 * One behaviour suite for MQTT 3.1.1 and 5 (in the manner of MQTT.js's
 * abstract client tests): the same scenarios through MQTT.js clients of each
 * version. Statement ids are MQTT 5.0's; 3.1.1 has the same rules.
 */
import t from 'tap'
import mqtt, { type IClientOptions, type IConnackPacket } from 'mqtt'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { uniqueId } from '../../helpers/raw5.js'
import { sleep, waitFor } from '../../helpers/wait.js'

for (const version of [4, 5] as const) {
  const v = version === 5 ? 'v5' : 'v3.1.1'

  /** Options for a session that outlives the connection, in each version's terms. */
  const persistent = (clientId: string): IClientOptions => version === 5
    ? { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
    : { protocolVersion: 4, clientId, clean: false }

  t.test(`shared behaviour (${v})`, async (t) => {
    const server = await startTestServer(t)
    const url = tcpUrl(server)
    const opts: IClientOptions = { protocolVersion: version }

    await t.test('[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] retained messages: set, replaced, deleted by an empty payload', async (t) => {
      const pub = await connectClient(t, url, opts)
      const topic = `sb/${v}/retained`
      await pub.publishAsync(topic, 'first', { qos: 1, retain: true })
      const a = await connectClient(t, url, opts)
      const gotA = collect(a)
      await a.subscribeAsync(topic, { qos: 1 })
      const [m1] = await gotA.next(1)
      t.equal(m1?.payload.toString(), 'first', 'a new subscriber gets the retained message')
      t.equal(m1?.retain, true, 'flagged RETAIN')

      await pub.publishAsync(topic, 'second', { qos: 1, retain: true })
      const b = await connectClient(t, url, opts)
      const gotB = collect(b)
      await b.subscribeAsync(topic, { qos: 1 })
      const [m2] = await gotB.next(1)
      t.equal(m2?.payload.toString(), 'second', 'a later retained message replaces it')

      await pub.publishAsync(topic, '', { qos: 1, retain: true })
      const [live] = await gotB.next(2).then(ms => ms.slice(1))
      t.equal(live?.payload.length, 0, 'the empty retained message is delivered to existing subscribers')
      const c = await connectClient(t, url, opts)
      const gotC = collect(c)
      await c.subscribeAsync(topic, { qos: 1 })
      await sleep(200)
      t.equal(gotC.messages.length, 0, 'and deletes the retained message')

      await pub.publishAsync(topic, 'not kept', { qos: 1, retain: false })
      const d = await connectClient(t, url, opts)
      const gotD = collect(d)
      await d.subscribeAsync(topic, { qos: 1 })
      await sleep(200)
      t.equal(gotD.messages.length, 0, '[MQTT-3.3.1-8] a message without RETAIN is not retained')
    })

    for (const qos of [1, 2] as const) {
      await t.test(`[MQTT-3.1.2-5] [MQTT-4.5.0-1] QoS ${qos} messages published while a persistent session is offline are delivered when it returns`, async (t) => {
        const clientId = uniqueId(`sb-offline-${v}-${qos}`)
        const topic = `sb/${v}/offline/${qos}`
        const first = await connectClient(t, url, persistent(clientId))
        await first.subscribeAsync(topic, { qos })
        await first.endAsync()
        const pub = await connectClient(t, url, opts)
        for (const m of ['a', 'b', 'c']) await pub.publishAsync(topic, m, { qos })
        // the collector must listen before CONNACK: queued messages follow it at once
        const back = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...persistent(clientId) })
        t.teardown(() => { back.end(true) })
        const got = collect(back)
        const connack = await new Promise<IConnackPacket>((resolve, reject) => {
          back.once('connect', resolve)
          back.once('error', reject)
        })
        t.equal(connack.sessionPresent, true, '[MQTT-3.2.2-3] Session Present')
        const messages = await got.next(3)
        t.same(messages.map(m => m.payload.toString()), ['a', 'b', 'c'], 'all of them, in order')
        t.same(messages.map(m => m.qos), [qos, qos, qos])
        await sleep(150)
        t.equal(got.messages.length, 3, 'each once')
      })
    }

    await t.test('[MQTT-3.10.4-2] UNSUBSCRIBE stops delivery', async (t) => {
      const sub = await connectClient(t, url, opts)
      const got = collect(sub)
      const topic = `sb/${v}/unsub`
      await sub.subscribeAsync(topic, { qos: 1 })
      const pub = await connectClient(t, url, opts)
      await pub.publishAsync(topic, 'before', { qos: 1 })
      await got.next(1)
      await sub.unsubscribeAsync(topic)
      await pub.publishAsync(topic, 'after', { qos: 1 })
      await sleep(200)
      t.same(got.messages.map(m => m.payload.toString()), ['before'])
    })

    await t.test('[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.2-1] wildcards: + one level, # any number including the parent; neither matches a topic starting with $', async (t) => {
      const root = `sb${version}`
      const filters = [`${root}/+/x`, `${root}/#`, `${root}/a/#`, '#', '+/a/x', `$${root}/#`, '+/+/+']
      const subs = new Map<string, string[]>()
      for (const filter of filters) {
        const c = await connectClient(t, url, opts)
        const topics: string[] = []
        c.on('message', (topic) => topics.push(topic))
        await c.subscribeAsync(filter, { qos: 1 })
        subs.set(filter, topics)
      }
      const pub = await connectClient(t, url, opts)
      const published = [`${root}/a/x`, `${root}/b/x`, `${root}/a`, `${root}/a/y/z`, `$${root}/a/x`]
      for (const topic of published) await pub.publishAsync(topic, topic, { qos: 1 })
      const got = (filter: string): string[] => (subs.get(filter) ?? []).filter(tp => published.includes(tp)).sort()
      const expected: Array<[string, string[], string?]> = [
        [`${root}/+/x`, [`${root}/a/x`, `${root}/b/x`]],
        [`${root}/#`, [`${root}/a`, `${root}/a/x`, `${root}/a/y/z`, `${root}/b/x`]],
        [`${root}/a/#`, [`${root}/a`, `${root}/a/x`, `${root}/a/y/z`], 'a/# matches its parent a'],
        ['+/a/x', [`${root}/a/x`]],
        ['+/+/+', [`${root}/a/x`, `${root}/b/x`], '+ matches exactly one level'],
        ['#', published.filter(tp => !tp.startsWith('$')).sort(), '# does not match the $ topic'],
        [`$${root}/#`, [`$${root}/a/x`], 'a filter starting with $ does']
      ]
      // every expected message arrives (bounded), then a wrong match would show up within 300 ms
      await waitFor(() => expected.every(([filter, want]) => got(filter).length >= want.length))
      await sleep(300)
      for (const [filter, want, message] of expected) t.same(got(filter), want, message ?? filter)
    })

    await t.test('[MQTT-3.1.2-8] the Will is published on an abnormal disconnect; [MQTT-3.1.2-10] [MQTT-3.14.4-3] not after DISCONNECT', async (t) => {
      const watcher = await connectClient(t, url, opts)
      const got = collect(watcher)
      const topic = `sb/${v}/will`
      await watcher.subscribeAsync(`${topic}/#`, { qos: 1 })

      const polite = await connectClient(t, url, { ...opts, will: { topic: `${topic}/polite`, payload: Buffer.from('polite'), qos: 1, retain: false } })
      await polite.endAsync()
      const abrupt = await connectClient(t, url, { ...opts, will: { topic: `${topic}/abrupt`, payload: Buffer.from('abrupt'), qos: 1, retain: false } })
      abrupt.stream.destroy()
      const [m] = await got.next(1)
      t.equal(m?.topic, `${topic}/abrupt`)
      t.equal(m?.payload.toString(), 'abrupt')
      await sleep(300)
      t.same(got.messages.map(x => x.topic), [`${topic}/abrupt`], 'the client that sent DISCONNECT left no Will')
    })
  })
}
