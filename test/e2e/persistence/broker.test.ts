// The level store behind a real aedes 2.0.0-beta.1 broker, driven by MQTT.js
// v5 clients over loopback TCP.
import t from 'tap'
import { connect, endAndWait, inbox, persistentV5, start } from '../../helpers/level-broker.js'
import { tempDir } from '../../helpers/store.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const props = {
  userProperties: { origin: 'sensor-7', tags: ['a', 'b'] },
  contentType: 'application/json',
  correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
  responseTopic: 'reply/7',
  payloadFormatIndicator: true,
  messageExpiryInterval: 100
}

t.test('[MQTT-3.3.2-5] queued while offline: overlapping subscriptions, properties and expiry, across a restart', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir)
  t.teardown(() => running.stop())

  const sub = await connect(t, running.url, persistentV5('sub-overlap'))
  await sub.subscribeAsync({ 'a/#': { qos: 1 }, 'a/+/x': { qos: 2 }, 'a/b/x': { qos: 1 } })
  await endAndWait(running, sub)

  const pub = await connect(t, running.url, { clientId: 'pub-1' })
  await pub.publishAsync('a/b/x', '{"n":1}', { qos: 1, properties: props })
  await pub.publishAsync('a/q', 'only a/#', { qos: 1 })
  await pub.publishAsync('a/c/x', 'qos2 via a/+/x', { qos: 2 })
  await pub.publishAsync('a/exp', 'expires', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.endAsync()
  t.equal(running.store.stats().queued, 4, 'four messages queued for the offline session, once each')

  // the 1 s message expires while the broker restarts on the same data directory
  await sleep(2100)
  await running.stop()
  running = await start(dir)

  const back = await connect(t, running.url, persistentV5('sub-overlap'))
  const box = inbox(back)
  const got = await box.wait(3)
  await sleep(300)
  t.strictSame(box.messages.map((m) => m.topic).sort(), ['a/b/x', 'a/c/x', 'a/q'], 'each message once; the expired one is not delivered')

  const first = box.messages.find((m) => m.topic === 'a/b/x')
  t.equal(first?.qos, 1)
  t.strictSame({ ...first?.properties?.userProperties }, props.userProperties, 'user properties intact')
  t.equal(first?.properties?.contentType, props.contentType)
  t.strictSame(first?.properties?.correlationData, props.correlationData, 'correlation data intact')
  t.equal(first?.properties?.responseTopic, props.responseTopic)
  t.equal(first?.properties?.payloadFormatIndicator, true)
  const remaining = first?.properties?.messageExpiryInterval ?? 0
  t.ok(remaining < 100 && remaining >= 90, `[MQTT-3.3.2-6] the remaining expiry is sent (${remaining})`)
  t.equal(got.find((m) => m.topic === 'a/c/x')?.qos, 2, '[MQTT-3.3.4-2] QoS of the best matching subscription')

  // subscriptions survived the restart too: a live message still arrives once
  const pub2 = await connect(t, running.url, { clientId: 'pub-2' })
  await pub2.publishAsync('a/b/x', 'live', { qos: 1 })
  await box.wait(4)
  await sleep(200)
  t.equal(box.messages.filter((m) => m.payload.toString() === 'live').length, 1, 'live delivery after restart, once')
  t.ok(back.connected, 'no disconnect (aedes #543 symptom)')
  // the last PUBACK leaves MQTT.js right after the message is emitted; the store drops it once the broker has read it
  await waitFor(() => running.store.stats().queued === 0, { timeout: 3000 })
  t.equal(running.store.stats().queued, 0, 'acknowledged messages leave the queue')
  await back.endAsync()
})

t.test('overlapping subscriptions of a connected persistent client: delivered once, no "no such packet"', async (t) => {
  const dir = tempDir(t)
  const running = await start(dir)
  t.teardown(() => running.stop())
  const errors: string[] = []
  running.broker.on('clientError', (_c, err) => errors.push(err.message))
  const sub = await connect(t, running.url, persistentV5('sub-live'))
  await sub.subscribeAsync({ 'a/#': { qos: 1 }, 'a/+/x': { qos: 2 }, 'a/b/x': { qos: 1 } })
  const box = inbox(sub)
  const pub = await connect(t, running.url, { clientId: 'pub-live' })
  for (let i = 0; i < 20; i++) await pub.publishAsync(i % 2 === 0 ? 'a/b/x' : 'a/q', String(i), { qos: 1 })
  await box.wait(20)
  await sleep(200)
  t.equal(box.messages.length, 20)
  t.strictSame(errors, [])
  t.ok(sub.connected)
  await waitFor(() => running.store.stats().queued === 0, { timeout: 3000 })
  t.equal(running.store.stats().queued, 0)
})

t.test('a retained message published through a Topic Alias does not poison its topic', async (t) => {
  const dir = tempDir(t)
  let running = await start(dir, { topicAliasMaximum: 10 })
  t.teardown(() => running.stop())
  const pub = await connect(t, running.url, { clientId: 'alias-pub' })
  await pub.publishAsync('alias/topic', 'first', { qos: 1, retain: true, properties: { topicAlias: 1 } })
  await pub.publishAsync('', 'second', { qos: 1, retain: true, properties: { topicAlias: 1, contentType: 'text/plain' } })
  await pub.endAsync()
  const [stored] = await new Promise<unknown[]>((resolve) => {
    const out: unknown[] = []
    running.store.createRetainedStream('alias/#').on('data', (d) => out.push(d)).on('end', () => resolve(out))
  }) as Array<{ properties?: Record<string, unknown> }>
  t.notOk(stored?.properties !== undefined && Object.hasOwn(stored.properties, 'topicAlias'), 'no topicAlias stored, not even undefined/null')

  await running.stop()
  running = await start(dir, { topicAliasMaximum: 10 })
  const errors: string[] = []
  running.broker.on('clientError', (_c, err) => errors.push(err.message))
  const sub = await connect(t, running.url, { clientId: 'alias-sub' })
  const box = inbox(sub)
  await sub.subscribeAsync('alias/#', { qos: 1 })
  const [msg] = await box.wait(1)
  t.equal(msg?.payload.toString(), 'second')
  t.equal(msg?.retain, true)
  t.equal(msg?.properties?.contentType, 'text/plain')
  t.equal(msg?.properties?.topicAlias, undefined)
  await sleep(100)
  t.ok(sub.connected, 'subscriber not disconnected')
  t.strictSame(errors, [])
})
