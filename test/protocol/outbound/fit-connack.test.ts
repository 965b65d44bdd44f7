/**
 * lib/protocol/outbound/fit-connack.ts: what a CONNACK loses, in order, to
 * fit the client's Maximum Packet Size [MQTT-3.1.2-24].
 */
import t from 'tap'
import mqtt, { type IConnackPacket } from 'mqtt-packet'
import { fitConnack } from '../../../lib/protocol/outbound/fit-connack.js'
import { parsePacket } from '../../helpers/packet-bytes.js'

const full: IConnackPacket = {
  cmd: 'connack',
  sessionPresent: false,
  reasonCode: 0,
  properties: {
    reasonString: 'welcome to a rather long reason string',
    userProperties: { a: 'b' },
    sharedSubscriptionAvailable: true,
    wildcardSubscriptionAvailable: false,
    topicAliasMaximum: 10,
    receiveMaximum: 100,
    maximumPacketSize: 1024,
    maximumQoS: 1,
    assignedClientIdentifier: 'assigned-id'
  }
}
const encoded = mqtt.generate(full, { protocolVersion: 5 })

function decode (buf: Buffer): IConnackPacket {
  const packet = parsePacket(buf)
  if (packet.cmd !== 'connack') throw new Error('no CONNACK')
  return packet
}

t.test('a CONNACK that fits is untouched', async (t) => {
  t.equal(fitConnack(encoded, encoded.length), encoded)
})

t.test('[MQTT-3.2.2-19] [MQTT-3.2.2-20] Reason String and User Properties go first', async (t) => {
  const fitted = fitConnack(encoded, encoded.length - 1)
  t.ok(fitted)
  const p = decode(fitted as Buffer)
  t.equal(p.properties?.reasonString, undefined)
  t.equal(p.properties?.userProperties, undefined)
  t.equal(p.properties?.sharedSubscriptionAvailable, true, 'the rest stays while it fits')
  t.equal(p.properties?.topicAliasMaximum, 10)
})

t.test('then properties whose absence says the same, then Topic Alias Maximum; limits and the assigned id never', async (t) => {
  const withoutProblem = fitConnack(encoded, encoded.length - 1) as Buffer
  const second = fitConnack(encoded, withoutProblem.length - 1)
  t.ok(second)
  const p2 = decode(second as Buffer)
  t.equal(p2.properties?.sharedSubscriptionAvailable, undefined, 'Shared Subscription Available 1 left out (absent means 1)')
  t.equal(p2.properties?.wildcardSubscriptionAvailable, false, 'Wildcard Subscription Available 0 kept (absent would mean 1)')
  t.equal(p2.properties?.topicAliasMaximum, 10)
  const third = fitConnack(encoded, (second as Buffer).length - 1)
  t.ok(third)
  const p3 = decode(third as Buffer)
  t.equal(p3.properties?.topicAliasMaximum, undefined, 'Topic Alias Maximum left out (absent means 0)')
  t.same([p3.properties?.receiveMaximum, p3.properties?.maximumPacketSize, p3.properties?.maximumQoS, p3.properties?.assignedClientIdentifier], [100, 1024, 1, 'assigned-id'])
  t.equal(fitConnack(encoded, (third as Buffer).length - 1), undefined, 'smaller than that: it cannot fit')
})
