/**
 * SUBSCRIBE and UNSUBSCRIBE are checked on their raw bytes before they are
 * decoded or reach aedes: Topic Filters are UTF-8 Encoded Strings
 * [MQTT-1.5.4-1] [MQTT-1.5.4-2] (a broken one makes the packet malformed,
 * not a filter refused with a SUBACK code), the packet identifier is not 0
 * [MQTT-2.2.1-3], and the properties neither repeat nor hold ill-formed
 * UTF-8 (spec 2.2.2.2, 3.8.2.1). Each case checks the exact answer, that no
 * subscription was made (a persistent session resumed afterwards has none),
 * and that another client is served.
 *
 * Implemented in lib/protocol/inbound/subscribe.ts (checkSubscribeFrame)
 * and lib/protocol/property-rules.ts.
 */
import t from 'tap'
import type { Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { packet, str } from '../../helpers/packet-bytes.js'
import { expectServerClose, rawSubscribe, uniqueId } from '../../helpers/raw5.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'

const SUBSCRIBE = 0x82
const UNSUBSCRIBE = 0xa2

/** A SUBSCRIBE of `filter` (raw bytes) at QoS 1, with packet id `id` and MQTT 5 `props` (undefined for 3.1.1). */
function subscribe (filter: number[] | string, props: number[] | undefined, id = 1): Buffer {
  return packet(SUBSCRIBE, [id >> 8, id & 0xff], props === undefined ? [] : [props.length, ...props], str(filter), [1])
}

function unsubscribe (filter: number[] | string, props: number[] | undefined, id = 1): Buffer {
  return packet(UNSUBSCRIBE, [id >> 8, id & 0xff], props === undefined ? [] : [props.length, ...props], str(filter))
}

t.test('SUBSCRIBE and UNSUBSCRIBE validation', async (t) => {
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const good = await connectClient(t, tcpUrl(server), { clientId: uniqueId('sv-good') })
  const seen = collect(good)
  await good.subscribeAsync('sv/good', { qos: 1 })

  /**
   * Sends `bytes` from a client with a persistent session, which sees
   * DISCONNECT `code` (MQTT 5) and the close; then resumes that session and
   * shows it holds no subscription from the bad packet: a message on
   * `probe` does not arrive, a later one on a fresh subscription does.
   */
  async function expectRefused (t: Test, version: 4 | 5, bytes: Buffer, code: number, probe = 'sv/x'): Promise<void> {
    const clientId = uniqueId('sv')
    const session = version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}
    const c = await RawClient.connect(port, version, { clientId, clean: false, ...session })
    t.teardown(() => c.destroy())
    c.sendRaw(bytes)
    await expectServerClose(t, c, version, code)
    t.same(c.packets.map(p => p.cmd), [], 'nothing else was answered (no SUBACK / UNSUBACK)')

    const again = await RawClient.connect(port, version, { clientId, clean: false, ...session })
    t.teardown(() => again.destroy())
    t.same(await rawSubscribe(again, [{ topic: 'sv/marker', qos: 1 }]), [1])
    await good.publishAsync(probe, 'probe', { qos: 1 })
    await good.publishAsync('sv/marker', 'marker', { qos: 1 })
    const first = await again.next('publish') as mqtt.IPublishPacket
    t.equal(first.topic, 'sv/marker', 'the session holds no subscription from the bad packet')
    // a clean end: the session is not left behind for the next case
    again.send({ cmd: 'disconnect', reasonCode: 0, properties: version === 5 ? { sessionExpiryInterval: 0 } : undefined } as mqtt.IDisconnectPacket)
    await again.waitClose()
    const before = seen.messages.length
    await good.publishAsync('sv/good', 'still served', { qos: 1 })
    const got = await seen.next(before + 1)
    t.equal(got[before]?.payload.toString(), 'still served', 'another client is served')
  }

  for (const version of [5, 4] as const) {
    const props = version === 5 ? [] : undefined
    await t.test(`[MQTT-1.5.4-2] a Topic Filter holding U+0000 is a Malformed Packet, not a SUBACK failure code (v${version})`, async (t) => {
      await expectRefused(t, version, subscribe([0x73, 0x76, 0x2f, 0x00], props), ReasonCode.MalformedPacket)
    })
    for (const [name, bytes] of [
      ['an overlong encoding (C0 80)', [0x73, 0x76, 0x2f, 0xc0, 0x80]],
      ['a surrogate (ED A0 80)', [0x73, 0x76, 0x2f, 0xed, 0xa0, 0x80]],
      ['a byte that is never UTF-8 (FF)', [0x73, 0x76, 0x2f, 0xff]]
    ] as const) {
      await t.test(`[MQTT-1.5.4-1] a Topic Filter with ${name} is a Malformed Packet (v${version})`, async (t) => {
        // decoded, the filter would read as U+FFFD: a message on that topic must not arrive
        await expectRefused(t, version, subscribe([...bytes], props), ReasonCode.MalformedPacket, Buffer.from(bytes).toString())
      })
    }
    await t.test(`[MQTT-2.2.1-3] a SUBSCRIBE with packet identifier 0 is a Protocol Error (v${version})`, async (t) => {
      await expectRefused(t, version, subscribe('sv/x', props, 0), ReasonCode.ProtocolError)
    })
    await t.test(`[MQTT-2.2.1-3] an UNSUBSCRIBE with packet identifier 0 is a Protocol Error (v${version})`, async (t) => {
      await expectRefused(t, version, unsubscribe('sv/x', props, 0), ReasonCode.ProtocolError)
    })
  }

  await t.test('[MQTT-1.5.4-1] an UNSUBSCRIBE Topic Filter that is not well-formed UTF-8 is a Malformed Packet', async (t) => {
    await expectRefused(t, 5, unsubscribe([0x73, 0x76, 0x2f, 0xed, 0xbf, 0xbf], []), ReasonCode.MalformedPacket)
  })

  await t.test('spec 3.8.2.1.2: a Subscription Identifier twice in a SUBSCRIBE is a Protocol Error', async (t) => {
    await expectRefused(t, 5, subscribe('sv/x', [0x0b, 1, 0x0b, 2]), ReasonCode.ProtocolError)
  })

  await t.test('spec 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error', async (t) => {
    await expectRefused(t, 5, subscribe('sv/x', [0x0b, 0]), ReasonCode.ProtocolError)
  })

  await t.test('[MQTT-1.5.7-1] a User Property that is not well-formed UTF-8 makes a SUBSCRIBE malformed', async (t) => {
    await expectRefused(t, 5, subscribe('sv/x', [0x26, ...str([0xc0, 0x80]), ...str('v')]), ReasonCode.MalformedPacket)
  })

  await t.test('[MQTT-1.5.7-1] a User Property that is not well-formed UTF-8 makes an UNSUBSCRIBE malformed', async (t) => {
    await expectRefused(t, 5, unsubscribe('sv/x', [0x26, ...str('k'), ...str([0xff])]), ReasonCode.MalformedPacket)
  })

  await t.test('spec 2.2.2.2: a property that does not belong in an UNSUBSCRIBE (Subscription Identifier) is a Malformed Packet', async (t) => {
    await expectRefused(t, 5, unsubscribe('sv/x', [0x0b, 1]), ReasonCode.MalformedPacket)
  })

  await t.test('spec 2.2.2.2: User Property may repeat in SUBSCRIBE and UNSUBSCRIBE, with one Subscription Identifier', async (t) => {
    const c = await RawClient.connect(port, 5)
    t.teardown(() => c.destroy())
    const users = [0x26, ...str('k'), ...str('1'), 0x26, ...str('k'), ...str('2')]
    c.sendRaw(subscribe('sv/ok', [0x0b, 5, ...users], 7))
    const suback = await c.next('suback') as mqtt.ISubackPacket
    t.same([suback.messageId, suback.granted], [7, [1]], 'SUBACK granting QoS 1')
    c.sendRaw(unsubscribe('sv/ok', users, 8))
    const unsuback = await c.next('unsuback') as mqtt.IUnsubackPacket
    t.same([unsuback.messageId, unsuback.granted], [8, [0]], 'UNSUBACK 0x00')
  })
})
