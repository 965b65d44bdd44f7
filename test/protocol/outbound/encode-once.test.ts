// The QoS 0 PUBLISH culex encodes itself (lib/protocol/outbound/encode-once.ts)
// against mqtt-packet: the same bytes for any topic, payload, retain flag and
// protocol version, and frames whose fixed header reads back (spec 2.1, 3.3).
import t from 'tap'
import fc from 'fast-check'
import mqtt from 'mqtt-packet'
import type { AedesPublishPacket } from 'aedes'
import { EncodeOnce, encodeQoS0 } from '../../../lib/protocol/outbound/encode-once.js'
import { readPublishHeader } from '../../../lib/protocol/frame.js'
import { QoS0Batch } from '../../../lib/protocol/outbound/qos0-batch.js'

function publish (topic: string, payload: Buffer | string, retain: boolean, properties?: AedesPublishPacket['properties'], counter = 1): AedesPublishPacket {
  const packet = { cmd: 'publish', topic, payload, qos: 0, retain, dup: false, brokerId: 'b', brokerCounter: counter } as unknown as AedesPublishPacket
  if (properties !== undefined) packet.properties = properties
  return packet
}

function reference (packet: AedesPublishPacket, retain: boolean, version: 4 | 5): Buffer {
  const wire: mqtt.IPublishPacket = { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 0, retain, dup: false }
  if (version === 5 && packet.properties) wire.properties = packet.properties
  return mqtt.generate(wire, { protocolVersion: version })
}

const topic = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }).filter((s) => !s.includes('+') && !s.includes('#'))
// sizes across the 1-, 2- and 3-byte Remaining Length boundaries (127, 16383)
const payload = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 100, max: 20000 }).map((n) => new Uint8Array(n).fill(7)))

t.test('without properties: the same bytes as mqtt-packet, 3.1.1 and 5, retain 0 and 1 [MQTT-3.3.1-2]', async (t) => {
  fc.assert(fc.property(topic, payload, fc.boolean(), fc.constantFrom(4 as const, 5 as const), (name, body, retain, version) => {
    const packet = publish(name, Buffer.from(body), retain)
    const mine = encodeQoS0(packet, retain, version)
    if (!mine.equals(reference(packet, retain, version))) return false
    // DUP and QoS bits are 0 for QoS 0
    return ((mine[0] as number) & 0x0e) === 0
  }), { numRuns: 400 })
  t.pass('400 random packets encoded identically')
})

t.test('with MQTT 5 properties and string payloads it encodes what mqtt-packet encodes', async (t) => {
  const props = { userProperties: { unit: 'C' }, contentType: 'text/plain', correlationData: Buffer.from('abc'), messageExpiryInterval: 30 }
  const packet = publish('a/b', 'hello', false, props)
  t.same(encodeQoS0(packet, false, 5), reference(packet, false, 5), 'properties kept')
  t.same(encodeQoS0(packet, true, 4), reference(packet, true, 4), '3.1.1 carries no properties')
  t.same(encodeQoS0(publish('a/b', 'héllo', false), false, 5), reference(publish('a/b', 'héllo', false), false, 5), 'a string payload is UTF-8')
})

t.test('EncodeOnce shares one encoding per message and version, not across retain flags or properties', async (t) => {
  const once = new EncodeOnce()
  const a = publish('x/y', Buffer.from('1'), false)
  const first = once.frame(a, 5)
  t.equal(once.frame({ ...a }, 5), first, 'another copy of the same message reuses the frame')
  t.not(once.frame({ ...a }, 4).buf, first.buf, 'a 3.1.1 client gets its own encoding')
  const retained = once.frame({ ...a, retain: true }, 4)
  t.equal((retained.buf[0] as number) & 1, 1, 'retain flag of that delivery')
  t.equal((once.frame({ ...a, retain: false }, 4).buf[0] as number) & 1, 0, 'and not of the previous one')
  const withProps = once.frame({ ...a, properties: { subscriptionIdentifier: 3 } }, 5)
  t.not(withProps.buf, first.buf, 'different properties: a different encoding')
  const next = once.frame(publish('x/y', Buffer.from('1'), false, undefined, 2), 5)
  t.not(next, first, 'the next message (broker counter) is encoded anew')
  const header = readPublishHeader(next)
  t.equal(header?.topic, 'x/y', 'the frame reads back')
  t.equal(next.headerLength, 2)
})

t.test('EncodeOnce.append: encoded into the first client\'s batch, copied into the next; the same bytes as frame()', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(topic, payload, fc.boolean()), { minLength: 1, maxLength: 30 }), fc.constantFrom(4 as const, 5 as const), (messages, version) => {
    const once = new EncodeOnce()
    const first = new QoS0Batch()
    const second = new QoS0Batch()
    const expected: Buffer[] = []
    messages.forEach(([name, body, retain], i) => {
      const packet = publish(name, Buffer.from(body), retain, version === 5 && i % 3 === 0 ? { contentType: 'text/plain' } : undefined, i + 1)
      once.append(packet, version, first)
      once.append({ ...packet }, version, second)
      expected.push(reference(packet, retain, version))
    })
    const all = Buffer.concat(expected)
    return first.bytes().equals(all) && second.bytes().equals(all) && first.lengths.join() === expected.map(b => b.length).join()
  }), { numRuns: 100 })
  const once = new EncodeOnce()
  const batch = new QoS0Batch()
  const packet = publish('x/y', Buffer.from('1'), false)
  once.append(packet, 5, batch)
  t.same(once.frame({ ...packet }, 5).buf, batch.bytes(), 'frame() of the message appended last: its bytes')
  t.pass('100 random runs: batches of both clients hold the reference bytes')
})
