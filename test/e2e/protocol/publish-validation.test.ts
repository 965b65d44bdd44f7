/**
 * A PUBLISH from a client is checked on its raw bytes before anything of it
 * reaches aedes: the Topic Name's UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2], the
 * packet identifier [MQTT-2.2.1-3], and MQTT 5 properties that repeat, do
 * not belong in a PUBLISH, hold ill-formed UTF-8 or values out of range
 * (spec 2.2.2.2, 3.3.2.3). Each bad PUBLISH is sent retained at QoS 1, so a
 * message that got through would be acknowledged, delivered and stored: the
 * test checks it was none of these, and that another client is served.
 *
 * Implemented in lib/protocol/inbound/publish.ts (checkPublishHeader),
 * lib/protocol/property-rules.ts and lib/protocol/flows/publish-in.ts
 * (onPublish).
 */
import t from 'tap'
import type { Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { expectServerClose } from '../../helpers/raw5.js'
import { packet, str } from '../../helpers/packet-bytes.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { CulexServer } from '../../../lib/server.js'

const PUBLISH_QOS1_RETAIN = 0x33

/** A QoS 1 retained PUBLISH with packet id 1: `topic` as raw bytes, then `props` (MQTT 5 only; undefined for 3.1.1). */
function publish (topic: number[] | string, props: number[] | undefined, first = PUBLISH_QOS1_RETAIN, packetId = 1): Buffer {
  const id = [packetId >> 8, packetId & 0xff]
  const properties = props === undefined ? [] : [props.length, ...props]
  return packet(first, str(topic), id, properties, Buffer.from('payload'))
}

/** A property holding a length-prefixed UTF-8 string of exactly `bytes`. */
function stringProp (id: number, bytes: number[] | string): number[] {
  return [id, ...str(bytes)]
}

async function retainedTopics (server: CulexServer): Promise<string[]> {
  // the store aedes was given: what a later subscriber would be sent as retained
  const store = (server.broker.aedes as unknown as { persistence: { createRetainedStream (pattern: string): AsyncIterable<{ topic: string }> } }).persistence
  const stream = store.createRetainedStream('#')
  const topics: string[] = []
  for await (const p of stream) topics.push(p.topic)
  return topics
}

t.test('PUBLISH validation', async (t) => {
  const server = await startTestServer(t, { topicAliasMaximum: 10 })
  const port = tcpPort(server)
  const good = await connectClient(t, tcpUrl(server), { clientId: 'pv-good' })
  const seen = collect(good)
  await good.subscribeAsync('#', { qos: 1 })
  let cursor = 0
  let markers = 0

  /**
   * The broker still serves another client: its marker message arrives, and
   * nothing the bad client sent arrived before it or was retained.
   */
  async function nothingGotThrough (t: Test): Promise<void> {
    const marker = `marker-${++markers}`
    await good.publishAsync('pv/marker', marker, { qos: 1 })
    for (let n = cursor + 1; ; n++) {
      const got = await seen.next(n)
      if (got[n - 1]?.payload.toString() === marker) break
    }
    const fresh = seen.messages.slice(cursor)
    cursor = seen.messages.length
    t.same(fresh.map(m => [m.topic, m.payload.toString()]), [['pv/marker', marker]], 'nothing of the bad PUBLISH was delivered; another client is served')
    t.same(await retainedTopics(server), [], 'nothing was retained')
  }

  /** Sends `bytes` on a fresh connection; MQTT 5 expects DISCONNECT `code` then the close, 3.1.1 the close alone. */
  async function expectRefused (t: Test, version: 4 | 5, bytes: Buffer, code: number): Promise<void> {
    const c = await RawClient.connect(port, version)
    t.teardown(() => c.destroy())
    c.sendRaw(bytes)
    await expectServerClose(t, c, version, code)
    t.same(c.packets.map(p => p.cmd), [], 'nothing else was answered (no PUBACK)')
    await nothingGotThrough(t)
  }

  for (const [name, bytes] of [
    ['an overlong encoding (C0 80)', [0x70, 0x76, 0x2f, 0xc0, 0x80]],
    ['a surrogate (ED A0 80)', [0x70, 0x76, 0x2f, 0xed, 0xa0, 0x80]],
    ['a byte that is never UTF-8 (FF)', [0x70, 0x76, 0x2f, 0xff]]
  ] as const) {
    for (const version of [5, 4] as const) {
      await t.test(`[MQTT-1.5.4-1] a Topic Name with ${name} is a Malformed Packet (v${version})`, async (t) => {
        await expectRefused(t, version, publish([...bytes], version === 5 ? [] : undefined), ReasonCode.MalformedPacket)
      })
    }
  }

  await t.test('[MQTT-1.5.4-2] a Topic Name holding U+0000 is a Malformed Packet, not a PUBACK 0x90 (v5)', async (t) => {
    await expectRefused(t, 5, publish([0x70, 0x76, 0x2f, 0x00, 0x61], []), ReasonCode.MalformedPacket)
  })

  for (const qos of [1, 2] as const) {
    for (const version of [5, 4] as const) {
      await t.test(`[MQTT-2.2.1-3] a QoS ${qos} PUBLISH with packet identifier 0 is a Protocol Error (v${version})`, async (t) => {
        await expectRefused(t, version, publish('pv/id0', version === 5 ? [] : undefined, 0x31 | (qos << 1), 0), ReasonCode.ProtocolError)
      })
    }
  }

  await t.test('spec 2.2.2.2: a PUBLISH carrying every property it may carry, and User Property twice, is accepted', async (t) => {
    const c = await RawClient.connect(port, 5)
    t.teardown(() => c.destroy())
    const props = [
      0x01, 1,
      0x02, 0, 0, 0, 60,
      ...stringProp(0x03, 'text/plain'),
      ...stringProp(0x08, 'pv/reply'),
      0x09, 0, 2, 0x63, 0x31,
      0x23, 0, 1,
      0x26, ...str('k'), ...str('v1'),
      0x26, ...str('k'), ...str('v2')
    ]
    c.sendRaw(packet(0x32, str('pv/ok'), [0, 1], [props.length, ...props], Buffer.from('fine')))
    const ack = await c.next('puback') as mqtt.IPubackPacket
    t.equal(ack.reasonCode ?? 0, 0, 'PUBACK 0x00')
    const [m] = (await seen.next(cursor + 1)).slice(cursor)
    cursor++
    t.equal(m?.topic, 'pv/ok')
    t.same(m?.properties?.userProperties, { k: ['v1', 'v2'] }, 'both user properties, in order')
    t.equal(m?.properties?.contentType, 'text/plain')
    t.equal(m?.properties?.responseTopic, 'pv/reply')
  })

  for (const [name, props] of [
    ['Payload Format Indicator (0, then 1)', [0x01, 0, 0x01, 1]],
    ['Message Expiry Interval', [0x02, 0, 0, 0, 5, 0x02, 0, 0, 0, 6]],
    ['Message Expiry Interval (0 twice)', [0x02, 0, 0, 0, 0, 0x02, 0, 0, 0, 0]],
    ['Content Type', [...stringProp(0x03, 'a'), ...stringProp(0x03, 'b')]],
    ['Response Topic', [...stringProp(0x08, 'pv/a'), ...stringProp(0x08, 'pv/b')]],
    ['Correlation Data', [0x09, 0, 1, 0x61, 0x09, 0, 1, 0x62]],
    ['Topic Alias', [0x23, 0, 1, 0x23, 0, 1]]
  ] as const) {
    await t.test(`spec 2.2.2.2: ${name} twice in a PUBLISH is a Protocol Error`, async (t) => {
      await expectRefused(t, 5, publish('pv/dup', [...props]), ReasonCode.ProtocolError)
    })
  }

  await t.test('[MQTT-3.3.4-6] a Subscription Identifier in a PUBLISH from a client, twice, is a Protocol Error', async (t) => {
    await expectRefused(t, 5, publish('pv/si', [0x0b, 1, 0x0b, 2]), ReasonCode.ProtocolError)
  })

  for (const value of [2, 0xff]) {
    await t.test(`spec 3.3.2.3.2: a Payload Format Indicator of ${value} is a Protocol Error, not forwarded as 1`, async (t) => {
      await expectRefused(t, 5, publish('pv/pfi', [0x01, value]), ReasonCode.ProtocolError)
    })
  }

  for (const [name, props] of [
    ['a User Property name', [0x26, ...str([0xc0, 0x80]), ...str('v')]],
    ['a User Property value', [0x26, ...str('k'), ...str([0xed, 0xa0, 0x80])]],
    ['a User Property value holding U+0000', [0x26, ...str('k'), ...str([0x61, 0x00])]],
    ['the Content Type', stringProp(0x03, [0xff])],
    ['the Response Topic', stringProp(0x08, [0x70, 0x76, 0x2f, 0xc0, 0xaf])]
  ] as const) {
    await t.test(`[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.7-1] ill-formed UTF-8 in ${name} is a Malformed Packet`, async (t) => {
      await expectRefused(t, 5, publish('pv/utf8', [...props]), ReasonCode.MalformedPacket)
    })
  }

  await t.test('spec 2.2.2.2: a property that does not belong in a PUBLISH (Session Expiry Interval) is a Malformed Packet', async (t) => {
    await expectRefused(t, 5, publish('pv/foreign', [0x11, 0, 0, 0, 10]), ReasonCode.MalformedPacket)
  })

  await t.test('the broker served the well-behaved client throughout', async (t) => {
    t.ok(good.connected, 'never disconnected')
    await nothingGotThrough(t)
  })
})
