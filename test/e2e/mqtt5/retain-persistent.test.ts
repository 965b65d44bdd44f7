/**
 * The RETAIN flag of messages to persistent sessions, live and queued, on
 * the memory and LevelDB stores: a retained message forwarded to a
 * subscription keeps RETAIN 1 only under Retain As Published
 * [MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13], whether it is sent at once
 * or queued while the session is offline; and one sent with RETAIN 1 is
 * acknowledged like any other [MQTT-4.3.2-4] [MQTT-4.3.3-10] (aedes skips
 * recording its packet id: lib/aedes-internals.ts `keepRetainAsPublished`).
 */
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IClientOptions, IPublishPacket } from 'mqtt'
import type mqtt from 'mqtt-packet'
import type { ConfigInput } from '../../../lib/config/schema.js'
import type { CulexServer } from '../../../lib/server.js'
import { gone, startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { rawClient, rawSubscribe } from '../../helpers/raw5.js'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { connectAck, inbox } from '../../helpers/level-broker.js'
import { shareId } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

type Store = 'memory' | 'level'

async function startOn (t: Test, store: Store): Promise<CulexServer> {
  const config: ConfigInput = { persistence: store }
  if (store === 'level') {
    const dataDir = mkdtempSync(join(tmpdir(), 'culex-retain-'))
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
    config.dataDir = dataDir
  }
  return await startTestServer(t, config)
}

const shown = (p: IPublishPacket): string => `${p.payload.toString()} qos${p.qos} r${p.retain ? 1 : 0}`

/**
 * Resumes the session, then publishes a marker: what the session's queue
 * held arrives before it (the queue is sent right after the CONNACK).
 * Returns what arrived, marker included, and leaves the session.
 */
async function resume (t: Test, server: CulexServer, opts: IClientOptions, topic: string): Promise<string[]> {
  const id = opts.clientId as string
  const { client, sessionPresent } = await connectAck(t, tcpUrl(server), { reconnectPeriod: 0, ...opts })
  t.equal(sessionPresent, true, 'the session is resumed')
  const got = inbox(client)
  const pub = await connectClient(t, tcpUrl(server))
  await pub.publishAsync(topic, 'marker', { qos: 1 })
  await pub.endAsync()
  await waitFor(() => got.messages.some((p) => p.payload.toString() === 'marker'), { timeout: 5000, what: () => `no marker; got ${got.messages.map(shown).join(', ')}` })
  const left = gone(server, id)
  await client.endAsync()
  await left
  return got.messages.map(shown)
}

for (const store of ['memory', 'level'] as const) {
  t.test(`[MQTT-4.3.2-4] [MQTT-4.3.3-10] [MQTT-3.3.1-13] ${store}: retained QoS 1 and 2 messages delivered live with RETAIN 1 (Retain As Published) and acknowledged are not sent again when the session resumes`, async (t) => {
    const server = await startOn(t, store)
    const id = shareId('rap-live')
    const topic = `rap/${id}`
    const opts: IClientOptions = { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }
    const { client } = await connectAck(t, tcpUrl(server), { reconnectPeriod: 0, ...opts })
    const live = collect(client)
    await client.subscribeAsync(topic, { qos: 2, rap: true })
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync(topic, 'one', { qos: 1, retain: true })
    await pub.publishAsync(topic, 'two', { qos: 2, retain: true })
    await pub.publishAsync(topic, 'three', { qos: 1, retain: false })
    t.same((await live.next(3)).map(shown), ['one qos1 r1', 'two qos2 r1', 'three qos1 r0'], 'delivered live, RETAIN as published')
    // the PUBACK, and the QoS 2 flow's PUBREC and PUBCOMP, reach the broker before the DISCONNECT
    await sleep(300)
    const left = gone(server, id)
    await client.endAsync()
    await left
    t.same(await resume(t, server, opts, topic), ['marker qos1 r0'], 'nothing acknowledged is sent again')
  })

  t.test(`[MQTT-4.4.0-1] [MQTT-3.3.1-13] ${store}: a retained QoS 1 message delivered live with RETAIN 1 (Retain As Published) and not acknowledged is sent again at resume with RETAIN 1 and DUP 1, then no more`, async (t) => {
    const server = await startOn(t, store)
    const id = shareId('rap-unacked')
    const topic = `rap/${id}`
    const raw = await rawClient(t, tcpPort(server), 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } })
    t.same(await rawSubscribe(raw, [{ topic, qos: 1, rap: true }]), [1])
    const pub = await connectClient(t, tcpUrl(server))
    await pub.publishAsync(topic, 'unacked', { qos: 1, retain: true })
    const live = await raw.next('publish') as mqtt.IPublishPacket
    t.equal(`${live.payload.toString()} qos${live.qos} r${live.retain ? 1 : 0}`, 'unacked qos1 r1', 'delivered live, RETAIN as published')
    const left = gone(server, id)
    raw.destroy()
    await left
    const opts: IClientOptions = { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }
    const { client, sessionPresent } = await connectAck(t, tcpUrl(server), { reconnectPeriod: 0, ...opts })
    t.equal(sessionPresent, true)
    const [again] = await inbox(client).wait(1)
    t.equal(again === undefined ? '' : `${shown(again)} dup${again.dup ? 1 : 0}`, 'unacked qos1 r1 dup1', 'sent again with RETAIN 1 and DUP 1')
    await sleep(200)
    const gone2 = gone(server, id)
    await client.endAsync()
    await gone2
    t.same(await resume(t, server, opts, topic), ['marker qos1 r0'], 'acknowledged then: not sent again')
  })

  const offline: Array<{ name: string, rule: string, opts: (id: string) => IClientOptions, rap: boolean, retain: 0 | 1 }> = [
    { name: 'MQTT 3.1.1', rule: '[MQTT-3.3.1-9]', opts: (id) => ({ protocolVersion: 4, clientId: id, clean: false }), rap: false, retain: 0 },
    { name: 'MQTT 5, Retain As Published 0', rule: '[MQTT-3.3.1-12]', opts: (id) => ({ protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }), rap: false, retain: 0 },
    { name: 'MQTT 5, Retain As Published 1', rule: '[MQTT-3.3.1-13]', opts: (id) => ({ protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }), rap: true, retain: 1 }
  ]
  for (const c of offline) {
    t.test(`${c.rule} ${store}, ${c.name}: a retained QoS 1 message queued while the session was offline arrives with RETAIN ${c.retain}, once`, async (t) => {
      const server = await startOn(t, store)
      const id = shareId('rap-queued')
      const topic = `rap/${id}`
      const opts = c.opts(id)
      const { client } = await connectAck(t, tcpUrl(server), { reconnectPeriod: 0, ...opts })
      await client.subscribeAsync(topic, { qos: 1, ...(c.rap ? { rap: true } : {}) })
      const left = gone(server, id)
      await client.endAsync()
      await left
      const pub = await connectClient(t, tcpUrl(server))
      await pub.publishAsync(topic, 'queued', { qos: 1, retain: true })
      await pub.endAsync()
      t.same(await resume(t, server, opts, topic), [`queued qos1 r${c.retain}`, 'marker qos1 r0'], `RETAIN ${c.retain} on resume`)
      t.same(await resume(t, server, opts, topic), ['marker qos1 r0'], 'and not sent again at the next resume')
    })
  }
}
