// lib/protocol/flows/retained-out.ts against a stub host: which SUBSCRIBEs'
// retained messages the gateway takes, the steps each message takes, the
// hand-over to aedes' path, and back-pressure.
import t from 'tap'
import type { AedesPublishPacket } from 'aedes'
import type { IPublishPacket } from 'mqtt-packet'
import type { GrantedSubscription, RetainedLookup } from '../../../lib/aedes-internals.js'
import { claimRetained, type RetainedOutHost } from '../../../lib/protocol/flows/retained-out.js'
import { StubHost } from '../../helpers/flow-host.js'

interface Stored { topic: string, payload: string, qos: 0 | 1 | 2, properties?: Record<string, unknown>, messageExpiry?: number }

class RetainedStub extends StubHost implements RetainedOutHost {
  /** aedes' own retained deliveries (client.deliverQoS) */
  readonly byAedes: AedesPublishPacket[] = []
  readonly errors: string[] = []
  waits = 0
  /** what the next writableAgain does before it resolves */
  onWait: () => void = () => {}
  constructor (subscriptions: Record<string, { qos: number }> = { 'r/#': { qos: 0 } }) {
    super()
    Object.assign(this.stubClient, {
      subscriptions,
      deliverQoS: (packet: AedesPublishPacket, cb: () => void) => { this.byAedes.push(packet); setImmediate(cb) }
    })
  }

  override readonly log = {
    repeated: (_level: string, key: string) => { this.logged.push(key) },
    error: (_obj: object, msg: string) => { this.errors.push(msg) }
  }

  async writableAgain (_ms: number): Promise<void> {
    this.waits++
    this.onWait()
  }
}

/** the store's batches: two messages each, so that a lookup spans batches */
async function * inBatches (stored: Stored[]): AsyncGenerator<readonly object[]> {
  for (let i = 0; i < stored.length; i += 2) yield stored.slice(i, i + 2).map(s => ({ ...s, payload: Buffer.from(s.payload) }))
}

function lookupOf (stored: Stored[], removed: string[] = []): () => RetainedLookup {
  return () => ({
    messages: inBatches(stored),
    removeExpired: async (topic) => { removed.push(topic) }
  })
}

/** authorizeForward's QoS step (protocol/delivery.ts): the client's matching subscriptions are QoS 0 */
const atQoS0 = (packet: AedesPublishPacket): AedesPublishPacket => { packet.qos = 0; return packet }

const granted = (si?: number): GrantedSubscription[] => [{ topic: 'r/#', qos: 0, ...(si === undefined ? {} : { subscriptionIdentifier: si }) }]

/** loop turns enough for the sends to start, run and be written */
async function settle (): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise(resolve => setImmediate(resolve))
}

t.test('[MQTT-3.3.1-8] a QoS 0 subscriber\'s retained messages go out from the gateway, in store order, RETAIN set, after the next turn', async (t) => {
  const host = new RetainedStub()
  host.forward = atQoS0
  const stored: Stored[] = [{ topic: 'r/1', payload: 'a', qos: 0 }, { topic: 'r/2', payload: 'b', qos: 1 }]
  t.equal(claimRetained(host, granted(), lookupOf(stored)), true)
  t.equal(host.writes.length, 0, 'nothing before the SUBACK aedes just wrote has reached the writer')
  await settle()
  const got = (await host.received()) as IPublishPacket[]
  t.same(got.map(p => [p.topic, String(p.payload), p.qos, p.retain]), [['r/1', 'a', 0, true], ['r/2', 'b', 0, true]], '[MQTT-3.8.4-8] at the subscription\'s QoS 0')
  t.same(host.sent.map(s => s.qos), [0, 0], 'counted as every PUBLISH sent')
  t.equal(host.byAedes.length, 0)
})

t.test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] [MQTT-3.3.4-3] expired messages are removed, not sent; the rest carry the remaining interval and the SUBSCRIBE\'s identifier', async (t) => {
  const host = new RetainedStub()
  const removed: string[] = []
  const now = Date.now()
  const stored: Stored[] = [
    { topic: 'r/old', payload: 'x', qos: 0, messageExpiry: now - 1 },
    { topic: 'r/new', payload: 'y', qos: 0, messageExpiry: now + 9_500, properties: { contentType: 'text/plain' } }
  ]
  claimRetained(host, granted(7), lookupOf(stored, removed))
  await settle()
  const got = (await host.received()) as IPublishPacket[]
  t.same(removed, ['r/old'])
  t.equal(got.length, 1)
  t.match(got[0], { topic: 'r/new', properties: { contentType: 'text/plain', messageExpiryInterval: 10, subscriptionIdentifier: 7 } })
})

t.test('authorizeForward decides each message: refused ones are skipped', async (t) => {
  const host = new RetainedStub()
  host.forward = packet => packet.topic === 'r/secret' ? null : packet
  claimRetained(host, granted(), lookupOf([{ topic: 'r/secret', payload: 's', qos: 0 }, { topic: 'r/open', payload: 'o', qos: 0 }]))
  await settle()
  t.same(((await host.received()) as IPublishPacket[]).map(p => p.topic), ['r/open'])
})

t.test('[MQTT-3.1.2-24] the outbound steps apply: a message over the client\'s Maximum Packet Size is not sent', async (t) => {
  const host = new RetainedStub()
  host.clientMaximumPacketSize = 20
  claimRetained(host, granted(), lookupOf([{ topic: 'r/big', payload: 'x'.repeat(50), qos: 0 }, { topic: 'r/s', payload: 's', qos: 0 }]))
  await settle()
  t.same(((await host.received()) as IPublishPacket[]).map(p => p.topic), ['r/s'])
  t.same(host.dropped, ['packet-too-large'])
})

t.test('left to aedes: a client holding a QoS 1 or 2 subscription, one not yet accepted or closed', async (t) => {
  t.equal(claimRetained(new RetainedStub({ 'r/#': { qos: 0 }, q: { qos: 1 } }), granted(), lookupOf([])), false)
  const before = new RetainedStub()
  before.isAccepted = false
  t.equal(claimRetained(before, granted(), lookupOf([])), false)
  const closed = new RetainedStub()
  closed.isClosed = true
  t.equal(claimRetained(closed, granted(), lookupOf([])), false)
})

t.test('from the first message going out at QoS 1, the rest go through aedes, in order', async (t) => {
  const host = new RetainedStub()
  host.forward = packet => {
    packet.qos = packet.topic === 'r/1' ? 0 : 1
    return packet
  }
  claimRetained(host, granted(), lookupOf([{ topic: 'r/1', payload: 'a', qos: 1 }, { topic: 'r/2', payload: 'b', qos: 1 }, { topic: 'r/3', payload: 'c', qos: 1 }]))
  await settle()
  t.same(((await host.received()) as IPublishPacket[]).map(p => p.topic), ['r/1'])
  t.same(host.byAedes.map(p => [p.topic, p.qos, p.retain, p.brokerId]), [['r/2', 1, true, null], ['r/3', 1, true, null]], 'as aedes\' sendRetained makes them')
})

t.test('[MQTT-3.8.4-8] a QoS 1 retained message reaches authorizeForward at QoS 0 while the client holds QoS 0 filters only, this SUBSCRIBE\'s among them; otherwise at its own QoS', async (t) => {
  const seen: number[] = []
  const recordQoS = (packet: AedesPublishPacket): AedesPublishPacket => { seen.push(packet.qos); return packet }
  const held = new RetainedStub({ 'r/#': { qos: 0 }, other: { qos: 0 } })
  held.forward = recordQoS
  claimRetained(held, granted(), lookupOf([{ topic: 'r/1', payload: 'a', qos: 1 }, { topic: 'r/2', payload: 'b', qos: 2 }]))
  await settle()
  t.same(seen, [0, 0], 'known without matching each topic')
  t.same(((await held.received()) as IPublishPacket[]).map(p => [p.topic, p.qos]), [['r/1', 0], ['r/2', 0]])
  seen.length = 0
  // the SUBSCRIBE's filter is gone again (an UNSUBSCRIBE meanwhile): authorizeForward matches, as for any message
  const gone = new RetainedStub({ other: { qos: 0 } })
  gone.forward = recordQoS
  claimRetained(gone, granted(), lookupOf([{ topic: 'r/1', payload: 'a', qos: 1 }]))
  await settle()
  t.same(seen, [1], 'at its own QoS')
  t.same(gone.byAedes.map(p => [p.topic, p.qos]), [['r/1', 1]], 'which aedes then sends')
})

t.test('aedes\' writes still held for the client: aedes sends them all, behind those', async (t) => {
  const host = new RetainedStub()
  ;(host.side as { writableLength: number }).writableLength = 10
  claimRetained(host, granted(), lookupOf([{ topic: 'r/1', payload: 'a', qos: 0 }]))
  await settle()
  t.equal(host.writes.length, 0)
  t.same(host.byAedes.map(p => p.topic), ['r/1'])
})

t.test('back-pressure: the next batch waits while the client\'s socket is full', async (t) => {
  const host = new RetainedStub()
  const stored: Stored[] = Array.from({ length: 200 }, (_, i) => ({ topic: `r/${i}`, payload: 'p', qos: 0 as const }))
  host.socket.writableNeedDrain = true
  host.onWait = () => { host.socket.writableNeedDrain = false }
  claimRetained(host, granted(), lookupOf(stored))
  await settle()
  t.equal(host.waits, 1, 'waited once, then the socket drained')
  t.equal(host.drainAwaited, 1, 'through aedes\' back-pressure state: the client is behind until its socket drains')
  const got = (await host.received()) as IPublishPacket[]
  t.equal(got.length, 200, 'nothing lost')
  t.same(got.map(p => p.topic), stored.map(s => s.topic), 'in order')
})
