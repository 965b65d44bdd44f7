/** lib/shared/delivery.ts: the PUBLISH a member gets, the group log's copy and the dead-letter copy. */
import t from 'tap'
import { deadLetter, memberProperties, sharedDelivery, storedMessage } from '../../lib/shared/delivery.js'
import type { StoredMessage } from '../../lib/shared/store.js'

t.test('[MQTT-3.3.4-3] the member\'s Subscription Identifier replaces the message\'s; none without either', async (t) => {
  t.equal(memberProperties(undefined, { si: undefined }), undefined)
  t.same(memberProperties(undefined, { si: 4 }), { subscriptionIdentifier: 4 })
  const props = { contentType: 'a', subscriptionIdentifier: 9 }
  t.same(memberProperties(props, { si: 4 }), { contentType: 'a', subscriptionIdentifier: 4 })
  t.same(memberProperties(props, { si: undefined }), { contentType: 'a' }, 'another subscription\'s identifier is not passed on')
  t.same(props, { contentType: 'a', subscriptionIdentifier: 9 }, 'the message\'s own properties are untouched')
})

t.test('sharedDelivery: the member\'s QoS, Retain As Published, the marker broker id and counter', async (t) => {
  const payload = Buffer.from('x')
  const m = { topic: 't', payload, retain: true, properties: { contentType: 'a' }, messageExpiry: 1234 }
  t.same(sharedDelivery(m, { rap: true, si: 2 }, 1, '$culex-share:g', 7), {
    cmd: 'publish', topic: 't', payload, qos: 1, retain: true, dup: false, brokerId: '$culex-share:g', brokerCounter: 7,
    properties: { contentType: 'a', subscriptionIdentifier: 2 }, messageExpiry: 1234
  })
  const plain = sharedDelivery({ topic: 't', payload }, { rap: true, si: undefined }, 0, 'b', 1)
  t.same(plain, { cmd: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false, brokerId: 'b', brokerCounter: 1 })
  t.notOk('properties' in plain || 'messageExpiry' in plain, 'nothing absent is set')
  t.equal(sharedDelivery(m, { rap: false, si: undefined }, 2, 'b', 1).retain, false, 'retain cleared without Retain As Published')
})

t.test('storedMessage keeps what the group log needs, and nothing absent', async (t) => {
  const payload = Buffer.from('x')
  t.same(storedMessage({ topic: 't', payload }, 1), { topic: 't', payload, qos: 1, retain: false })
  t.same(storedMessage({ topic: 't', payload, retain: true, properties: { a: 1 }, messageExpiry: 5, clientId: 'pub' }, 2),
    { topic: 't', payload, qos: 2, retain: true, properties: { a: 1 }, messageExpiry: 5, publisherId: 'pub' })
})

t.test('deadLetter: the template filled in, QoS 1, not retained, with who refused it and how', async (t) => {
  const payload = Buffer.from('x')
  const m: StoredMessage = { topic: 'jobs/1', payload, qos: 2, retain: true, properties: { contentType: 'a', userProperties: { k: 'v' } } }
  t.same(deadLetter('$dlq/{group}/{topic}', '$share/workers/jobs/#', m, { reason: 'rejected', clientId: 'c1', deliveryCount: 1, reasonCode: 0x87, reasonString: 'bad job' }), {
    cmd: 'publish',
    topic: '$dlq/workers/jobs/1',
    payload,
    qos: 1,
    retain: false,
    dup: false,
    properties: {
      contentType: 'a',
      userProperties: { k: 'v', 'culex-reason': 'rejected', 'culex-delivery-count': '1', 'culex-reason-code': '0x87', 'culex-reason-string': 'bad job', 'culex-client-id': 'c1', 'culex-group': 'workers', 'culex-original-topic': 'jobs/1' }
    }
  })
  const bare = deadLetter('dead', '$share/w/a', { topic: 'a', payload, qos: 1, retain: false }, { reason: 'rejected', clientId: 'c', deliveryCount: 2, reasonCode: 0x80 })
  t.same(bare.properties, { userProperties: { 'culex-reason': 'rejected', 'culex-delivery-count': '2', 'culex-reason-code': '0x80', 'culex-client-id': 'c', 'culex-group': 'w', 'culex-original-topic': 'a' } })
})

t.test('deadLetter of a poison message: reason max-deliveries, its count and last member, no reason code', async (t) => {
  const payload = Buffer.from('x')
  const d = deadLetter('$dlq/{group}', '$share/w/a', { topic: 'a', payload, qos: 1, retain: false, properties: { contentType: 'text/plain' } }, { reason: 'max-deliveries', clientId: 'w2', deliveryCount: 3 })
  t.equal(d.topic, '$dlq/w')
  t.same(d.properties, { contentType: 'text/plain', userProperties: { 'culex-reason': 'max-deliveries', 'culex-delivery-count': '3', 'culex-client-id': 'w2', 'culex-group': 'w', 'culex-original-topic': 'a' } })
})

t.test('sharedDelivery: a delivery after the first carries culex-delivery-count, the first none', async (t) => {
  const payload = Buffer.from('x')
  const first = sharedDelivery({ topic: 't', payload, deliveryCount: 1 }, { rap: false, si: undefined }, 1, 'b', 1)
  t.equal(first.properties, undefined, 'first delivery: no property added')
  const third = sharedDelivery({ topic: 't', payload, deliveryCount: 3, properties: { userProperties: { k: 'v' } } }, { rap: false, si: 4 }, 1, 'b', 2)
  t.same(third.properties, { userProperties: { k: 'v', 'culex-delivery-count': '3' }, subscriptionIdentifier: 4 })
})
