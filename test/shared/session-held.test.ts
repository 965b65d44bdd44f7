/**
 * lib/shared/session-held.ts: a QoS 2 delivery's broker id that names its
 * message in a shared queue, and the retransmissions of other nodes'
 * deliveries let out here and settled at the member's PUBREC [MQTT-4.8.2-4].
 */
import t from 'tap'
import { ForeignDeliveries, parseSessionBrokerId, sessionBrokerId, type SessionQoS2 } from '../../lib/shared/session-held.js'
import { SHARED_BROKER_ID } from '../../lib/shared/member-link.js'

function queue (): SessionQoS2 & { settled: string[] } {
  const settled: string[] = []
  return { settled, brokerIdFor: (key, seq) => sessionBrokerId(key, String(seq)), sent: () => {}, release: () => {}, settle: (id) => { settled.push(id) } }
}

t.test('a broker id names the group and the message; a group\'s plain marker names no message', async (t) => {
  const id = sessionBrokerId('$share/g/a/#', '1700000000000-3')
  t.same(parseSessionBrokerId(id), { key: '$share/g/a/#', name: '1700000000000-3' })
  t.equal(parseSessionBrokerId(SHARED_BROKER_ID + '$share/g/a/#'), undefined, 'the group\'s marker alone')
  t.equal(parseSessionBrokerId(sessionBrokerId('$share/g/a/#', '')), undefined, 'no message named')
  t.equal(parseSessionBrokerId('$culex-routed:x\u0000y'), undefined, 'another broker id')
  t.equal(parseSessionBrokerId(undefined), undefined)
})

t.test('only a QoS 2 retransmission (with its packet id) of a message named in a queue is let out; its PUBREC settles it once', async (t) => {
  const q = queue()
  const foreign = new ForeignDeliveries(q)
  const client = {}
  const brokerId = sessionBrokerId('$share/g/a/#', '5-0')
  t.notOk(foreign.accept(client, { qos: 1, messageId: 7, brokerId }), 'QoS 1: a stale copy is not let out')
  t.notOk(foreign.accept(client, { qos: 2, brokerId }), 'no packet id: a fresh delivery, never another node\'s')
  t.notOk(foreign.accept(client, { qos: 2, messageId: 7, brokerId: SHARED_BROKER_ID + '$share/g/a/#' }), 'a broker id naming no message')
  t.ok(foreign.accept(client, { qos: 2, messageId: 7, brokerId }), 'let out')
  t.equal(foreign.acknowledged({}, 7), undefined, 'another connection\'s PUBREC of the same id settles nothing')
  t.equal(foreign.acknowledged(client, 8), undefined, 'nor one of another id')
  t.same(q.settled, [])
  t.equal(foreign.acknowledged(client, 7), '$share/g/a/#', 'the PUBREC names its group')
  t.same(q.settled, [brokerId], 'and settles the message in the queue')
  t.equal(foreign.acknowledged(client, 7), undefined, 'once')
  t.ok(foreign.accept(client, { qos: 2, messageId: 9, brokerId }))
  foreign.closed(client)
  t.equal(foreign.acknowledged(client, 9), undefined, 'a closed connection tracks nothing (the session re-sends it on the next one)')
  t.same(q.settled, [brokerId])
})
