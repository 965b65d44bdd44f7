/**
 * authorizeForward's steps (lib/broker/hooks/forward.ts), each alone and in
 * their order, against stubs of the gateway, the dispatcher, the ACL and the store.
 */
import t from 'tap'
import type { AedesPublishPacket, Client } from 'aedes'
import {
  FORWARD_STEPS, authorizeForward, dropRepeatedCopy, dropRoutedRepeat, checkReadRight, markResentAsDuplicate,
  confirmSharedDelivery, applyCorrections, sendEncodedOnce, sealEncoded, forwardLiveQoS0,
  type ForwardContext, type ForwardGateway
} from '../../../lib/broker/hooks/forward.js'
import { SHARED_BROKER_ID } from '../../../lib/shared/dispatcher.js'

type Subscriptions = Record<string, { qos: number, si?: number }>

function client (subscriptions: Subscriptions = { '#': { qos: 2 } }): Client {
  return { id: 'c1', conn: {}, subscriptions } as unknown as Client
}

function packet (over: Partial<AedesPublishPacket> = {}): AedesPublishPacket {
  return { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, brokerId: 'b1', brokerCounter: 1, ...over } as AedesPublishPacket
}

interface Stubs {
  ctx: ForwardContext
  conn: ForwardGateway
  /** what the stubs were asked, in order */
  calls: string[]
  frames: AedesPublishPacket[]
}

interface StubOptions {
  acl?: boolean
  mayReceive?: boolean
  shared?: boolean
  onForward?: boolean
  wasInFlight?: boolean
  takesEncoded?: boolean
  usesSubscriptionIds?: boolean
  version?: 4 | 5 | undefined
}

function stubs (o: StubOptions = {}): Stubs {
  const calls: string[] = []
  const frames: AedesPublishPacket[] = []
  let last: string | undefined
  const conn = {
    authenticatedAs: 'alice',
    usesSubscriptionIds: o.usesSubscriptionIds ?? false,
    version: 'version' in o ? o.version : 5,
    isRepeat (brokerId: string, counter: number) {
      calls.push('isRepeat')
      const repeat = last === `${brokerId}:${counter}`
      last = `${brokerId}:${counter}`
      return repeat
    },
    sendEncoded () { calls.push('sendEncoded'); return o.takesEncoded ?? true },
    sealEncoded () { calls.push('sealEncoded') },
    qos0Batch () { calls.push('qos0Batch'); return undefined }
  } as unknown as ForwardGateway
  const ctx: ForwardContext = {
    security: o.acl === true
      ? { hasAcl: true, mayReceive: (who, topic) => { calls.push(`mayReceive ${who.clientId} ${String(who.username)} ${topic}`); return o.mayReceive ?? true } }
      : undefined,
    shared: o.shared === true
      ? {
          refuse: (delivery) => { calls.push(`refuse ${delivery}`) },
          onForward: () => { calls.push('onForward'); return o.onForward ?? true }
        }
      : undefined,
    encodeOnce: {
      frame: (p) => { calls.push('frame'); frames.push({ ...p }); return { buf: Buffer.alloc(0) } as never },
      append: (p) => { calls.push('append'); frames.push({ ...p }) }
    },
    store: () => ({ wasInFlight: () => { calls.push('wasInFlight'); return o.wasInFlight ?? false } }),
    gatewayOf: () => conn
  }
  return { ctx, conn, calls, frames }
}

t.test('the steps run in this order', async (t) => {
  t.same(FORWARD_STEPS.map(step => step.name), [
    'dropRepeatedCopy',
    'dropRoutedRepeat',
    'checkReadRight',
    'markResentAsDuplicate',
    'confirmSharedDelivery',
    'applyCorrections',
    'sendEncodedOnce',
    'sealEncoded'
  ])
})

t.test('1b. dropRoutedRepeat [MQTT-4.3.3-10]: a routed QoS 2 message the session had already is not delivered again', async (t) => {
  const { ctx, conn } = stubs()
  const repeat = packet({ qos: 2 })
  const asked: string[] = []
  const store = (p: object): boolean => p === repeat
  const withStore = { ...ctx, store: () => ({ routedDuplicate: (cid: string, p: object) => { asked.push(cid); return store(p) } }) }
  t.equal(dropRoutedRepeat(repeat, client(), conn, false, withStore), null, 'the repeat the store marked is dropped')
  t.ok(dropRoutedRepeat(packet({ qos: 2 }), client(), conn, false, withStore), 'another message goes')
  t.ok(dropRoutedRepeat(packet({ qos: 1 }), client(), conn, false, withStore), 'a QoS 1 message is not looked up')
  t.ok(dropRoutedRepeat(repeat, client(), conn, true, withStore), 'nor a shared delivery')
  t.same(asked, ['c1', 'c1'], 'the store was asked for the QoS 2 deliveries only')
  t.ok(dropRoutedRepeat(repeat, client(), conn, false, ctx), 'a store that cannot tell delivers it')
})

t.test('1. dropRepeatedCopy [MQTT-3.3.4-2]: one copy per client of a live message that matches several subscriptions', async (t) => {
  const { ctx, conn, calls } = stubs()
  const c = client()
  t.ok(dropRepeatedCopy(packet(), c, conn, false, ctx), 'the first copy goes')
  t.equal(dropRepeatedCopy(packet(), c, conn, false, ctx), null, 'the same message again is dropped')
  t.ok(dropRepeatedCopy(packet({ brokerCounter: 2 }), c, conn, false, ctx), 'the next message goes')
  calls.length = 0
  t.ok(dropRepeatedCopy(packet({ brokerCounter: 2, messageId: 7 }), c, conn, false, ctx), 'a message from the session queue (with a packet id) is never a repeat')
  t.ok(dropRepeatedCopy(packet({ brokerCounter: 2 }), c, conn, true, ctx), 'nor is a shared delivery')
  t.ok(dropRepeatedCopy(packet({ brokerId: null as unknown as string }), c, conn, false, ctx), 'nor a retained message sent at subscribe')
  t.ok(dropRepeatedCopy(packet({ brokerCounter: 2 }), c, undefined, false, ctx), 'nor one for a client without a gateway')
  t.same(calls, [], 'and the gateway was not asked')
})

t.test('2. checkReadRight: with an ACL, a client whose read right went away stops receiving', async (t) => {
  const open = stubs()
  t.ok(checkReadRight(packet(), client(), open.conn, false, open.ctx), 'no ACL: delivered')
  const allowed = stubs({ acl: true, mayReceive: true, shared: true })
  t.ok(checkReadRight(packet(), client(), allowed.conn, false, allowed.ctx), 'allowed: delivered')
  t.same(allowed.calls, ['mayReceive c1 alice a/b'], 'asked with the client id, the authenticated user and the topic')
  const refused = stubs({ acl: true, mayReceive: false, shared: true })
  t.equal(checkReadRight(packet(), client(), refused.conn, false, refused.ctx), null, 'refused: dropped')
  t.same(refused.calls, ['mayReceive c1 alice a/b'], 'a plain delivery is not handed back to any group')
  refused.calls.length = 0
  t.equal(checkReadRight(packet({ brokerCounter: 9 }), client(), refused.conn, true, refused.ctx), null, 'a refused shared delivery is dropped')
  t.same(refused.calls, ['mayReceive c1 alice a/b', 'refuse 9'], 'and goes back to its group')
})

t.test('3. markResentAsDuplicate [MQTT-3.3.1-1]: a message re-sent from the queue with its old packet id has DUP set', async (t) => {
  const resent = stubs({ wasInFlight: true })
  t.equal(markResentAsDuplicate(packet({ qos: 1, messageId: 3 }), client(), resent.conn, false, resent.ctx)?.dup, true, 'in flight before: DUP')
  const fresh = stubs({ wasInFlight: false })
  t.equal(markResentAsDuplicate(packet({ qos: 1, messageId: 3 }), client(), fresh.conn, false, fresh.ctx)?.dup, false, 'first sending: no DUP')
  fresh.calls.length = 0
  markResentAsDuplicate(packet({ qos: 0 }), client(), fresh.conn, false, fresh.ctx)
  markResentAsDuplicate(packet({ qos: 1 }), client(), fresh.conn, false, fresh.ctx)
  t.same(fresh.calls, [], 'QoS 0 and live messages (no packet id yet) are not looked up')
})

t.test('4. confirmSharedDelivery: a shared delivery goes out only while the dispatcher assigns it to this client', async (t) => {
  const confirmed = stubs({ shared: true, onForward: true })
  t.ok(confirmSharedDelivery(packet(), client(), confirmed.conn, true, confirmed.ctx), 'assigned: goes')
  const stale = stubs({ shared: true, onForward: false })
  t.equal(confirmSharedDelivery(packet(), client(), stale.conn, true, stale.ctx), null, 'a stale copy is dropped')
  stale.calls.length = 0
  t.ok(confirmSharedDelivery(packet(), client(), stale.conn, false, stale.ctx), 'a plain delivery is not the dispatcher\'s')
  t.same(stale.calls, [], 'which is not asked')
})

t.test('5. applyCorrections: expiry, QoS downgrade and Subscription Identifiers', async (t) => {
  const s = stubs({ usesSubscriptionIds: true })
  t.equal(applyCorrections(packet({ messageExpiry: Date.now() - 1 }), client(), s.conn, false, s.ctx), null, '[MQTT-3.3.2-5] an expired message is not delivered')
  const downgraded = applyCorrections(packet({ qos: 2 }), client({ 'a/+': { qos: 1, si: 4 } }), s.conn, false, s.ctx)
  t.equal(downgraded?.qos, 1, '[MQTT-3.8.4-8] the QoS granted to the matching wildcard subscription')
  t.equal(downgraded?.properties?.subscriptionIdentifier, 4, '[MQTT-3.3.4-3] with its Subscription Identifier')
  const shared = applyCorrections(packet({ qos: 2, properties: { subscriptionIdentifier: 9 } }), client({ 'a/+': { qos: 0, si: 4 } }), s.conn, true, s.ctx)
  t.equal(shared?.qos, 2, 'a shared delivery keeps the QoS the dispatcher chose')
  t.equal(shared?.properties?.subscriptionIdentifier, 9, 'and the member\'s identifier')
  const plain = stubs({ usesSubscriptionIds: false })
  t.equal(applyCorrections(packet({ qos: 1 }), client({ 'a/+': { qos: 1, si: 4 } }), plain.conn, false, plain.ctx)?.properties?.subscriptionIdentifier, undefined, 'no identifiers for a client that never used any')
})

t.test('6. sendEncodedOnce: a live QoS 0 delivery goes out encoded once, through the gateway', async (t) => {
  const s = stubs({ takesEncoded: true })
  t.equal(sendEncodedOnce(packet(), client(), s.conn, false, s.ctx), null, 'taken by the gateway: aedes writes nothing')
  t.same(s.calls, ['frame', 'sendEncoded'])
  const behind = stubs({ takesEncoded: false })
  t.ok(sendEncodedOnce(packet(), client(), behind.conn, false, behind.ctx), 'a gateway that cannot take it now leaves it to aedes')
  for (const [why, p, shared, version] of [
    ['QoS 1', packet({ qos: 1 }), false, 5],
    ['a retained message sent at subscribe', packet({ brokerId: null as unknown as string }), false, 5],
    ['a shared delivery', packet(), true, 5],
    ['before CONNECT (no version)', packet(), false, undefined]
  ] as const) {
    const other = stubs({ version })
    t.ok(sendEncodedOnce(p, client(), other.conn, shared, other.ctx), `${why}: aedes writes it`)
    t.same(other.calls, [], `${why}: nothing encoded`)
  }
})

t.test('7. sealEncoded: QoS 0 messages encoded after a message aedes writes wait for it', async (t) => {
  const s = stubs()
  const p = packet()
  t.equal(sealEncoded(p, client(), s.conn, false, s.ctx), p)
  t.same(s.calls, ['sealEncoded'])
  t.equal(sealEncoded(p, client(), undefined, false, s.ctx), p, 'no gateway, nothing to seal')
})

t.test('the order matters', async (t) => {
  t.test('a repeated copy is dropped before the ACL is asked', async (t) => {
    const s = stubs({ acl: true })
    const c = client()
    authorizeForward(s.ctx, c, packet())
    s.calls.length = 0
    t.equal(authorizeForward(s.ctx, c, packet()), null)
    t.same(s.calls, ['isRepeat'])
  })
  t.test('a shared delivery the ACL refuses goes back to its group without being confirmed', async (t) => {
    const s = stubs({ acl: true, mayReceive: false, shared: true })
    t.equal(authorizeForward(s.ctx, client(), packet({ brokerId: `${SHARED_BROKER_ID}x`, brokerCounter: 5, qos: 1 })), null)
    t.same(s.calls, ['mayReceive c1 alice a/b', 'refuse 5'])
  })
  t.test('the QoS is corrected before encode-once decides: a QoS 1 message for a QoS 0 subscription goes out encoded once at QoS 0', async (t) => {
    const s = stubs()
    t.equal(authorizeForward(s.ctx, client({ 'a/#': { qos: 0 } }), packet({ qos: 1 })), null, 'sent by the gateway')
    t.equal(s.frames[0]?.qos, 0, 'encoded at the granted QoS')
  })
  t.test('an expired message is dropped before anything is encoded or sealed', async (t) => {
    const s = stubs()
    t.equal(authorizeForward(s.ctx, client(), packet({ messageExpiry: Date.now() - 1 })), null)
    t.same(s.calls, ['isRepeat'])
  })
  t.test('a message aedes writes seals the encoded batch last; one encoded once does not', async (t) => {
    const s = stubs({ wasInFlight: true })
    const queued = authorizeForward(s.ctx, client(), packet({ qos: 1, messageId: 4 }))
    t.equal(queued?.dup, true, 'DUP set on the way')
    t.same(s.calls, ['wasInFlight', 'sealEncoded'])
    s.calls.length = 0
    t.equal(authorizeForward(s.ctx, client(), packet({ brokerCounter: 2 })), null)
    t.same(s.calls, ['isRepeat', 'frame', 'sendEncoded'])
  })
  t.test('a shared delivery is confirmed, corrected as the dispatcher chose and sealed; never encoded once', async (t) => {
    const s = stubs({ shared: true })
    const p = authorizeForward(s.ctx, client({ 'a/#': { qos: 0 } }), packet({ brokerId: `${SHARED_BROKER_ID}x`, qos: 0 }))
    t.ok(p)
    t.same(s.calls, ['onForward', 'sealEncoded'])
  })
  t.test('without shared subscriptions, a broker id like the dispatcher\'s is a plain delivery', async (t) => {
    const s = stubs()
    t.equal(authorizeForward(s.ctx, client(), packet({ brokerId: `${SHARED_BROKER_ID}x` })), null, 'encoded once like any live QoS 0 message')
    t.same(s.calls, ['isRepeat', 'frame', 'sendEncoded'])
  })
})

t.test('forwardLiveQoS0: a live QoS 0 delivery the gateway takes whole runs steps 1-5 and is encoded once, into the client\'s batch', async (t) => {
  const { ctx, conn, calls, frames } = stubs({ acl: true, usesSubscriptionIds: true })
  const c = client({ 'a/+': { qos: 0, si: 7 } })
  t.equal(forwardLiveQoS0(ctx, c, conn, 5, packet()), true, 'taken')
  t.same(calls, ['isRepeat', 'mayReceive c1 alice a/b', 'qos0Batch', 'append'], 'repeat check, read right, then the encoding into the batch; no sendEncoded or sealEncoded')
  t.equal(frames[0]?.properties?.subscriptionIdentifier, 7, '[MQTT-3.3.4-3] corrected before it is encoded')
  t.equal(forwardLiveQoS0(ctx, c, conn, 5, packet()), null, '[MQTT-3.3.4-2] a repeated copy is dropped (null)')
  const refused = stubs({ acl: true, mayReceive: false })
  t.equal(forwardLiveQoS0(refused.ctx, c, refused.conn, 5, packet()), null, 'no read right: dropped')
  const expired = stubs()
  t.equal(forwardLiveQoS0(expired.ctx, c, expired.conn, 5, packet({ messageExpiry: Date.now() - 1 })), null, '[MQTT-3.3.2-5] expired: dropped')
  const shared = stubs({ shared: true })
  t.equal(forwardLiveQoS0(shared.ctx, c, shared.conn, 5, packet({ brokerId: `${SHARED_BROKER_ID}x` })), undefined, 'a shared delivery is not for this path (undefined)')
  t.same(shared.calls, [], 'and nothing was asked')
})
