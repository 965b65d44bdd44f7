/**
 * authorizePublish and published (lib/broker/hooks/publish.ts) against stubs
 * of the gateway and the ACL.
 */
import t from 'tap'
import type { AedesPublishPacket, Client, PublishPacket } from 'aedes'
import { authorizePublish, isReservedTopic, published, type AuthorizePublishContext } from '../../../lib/broker/hooks/publish.js'

const client = { id: 'c1', conn: {} } as unknown as Client

function packet (over: Partial<PublishPacket> = {}): PublishPacket {
  return { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, ...over } as PublishPacket
}

function setup (acl?: boolean) {
  const calls: string[] = []
  const gateway = { authenticatedAs: 'alice', retainedRouted: () => { calls.push('retainedRouted') } }
  const ctx: AuthorizePublishContext = {
    security: acl === undefined
      ? undefined
      : { hasAcl: true, mayPublish: (who, topic) => { calls.push(`mayPublish ${who.clientId} ${String(who.username)} ${topic}`); return acl } },
    gatewayOf: () => gateway
  }
  const verdict = (p: PublishPacket, from: Client | null = client): Error | null => {
    let answer: Error | null | undefined
    authorizePublish(ctx, from, p, (err) => { answer = err })
    if (answer === undefined) throw new Error('no answer')
    return answer
  }
  return { verdict, calls }
}

t.test('[MQTT-4.7.2-1] the broker\'s topics', async (t) => {
  for (const topic of ['$SYS', '$SYS/broker/uptime', '$events/client', '$dlq/jobs']) t.ok(isReservedTopic(topic), topic)
  for (const topic of ['a/$SYS', '$share/g/a', 'events/x', '$eventsx']) t.notOk(isReservedTopic(topic), topic)
})

t.test('[MQTT-4.7.2-1] a client may not publish to $SYS, $events or $dlq; a will with no client may', async (t) => {
  const { verdict, calls } = setup()
  t.match(verdict(packet({ topic: '$SYS/x' }))?.message, /\$SYS topics are reserved/)
  t.match(verdict(packet({ topic: '$dlq/x' }))?.message, /\$dlq topics are reserved/)
  t.equal(verdict(packet({ topic: '$SYS/x' }), null), null, 'the broker\'s own (stored will sweep) publishes')
  t.equal(verdict(packet()), null, 'any other topic')
  t.same(calls, [], 'nothing waits on a non-retained message')
})

t.test('with an ACL, the client (its will) may publish only where it may write', async (t) => {
  const refused = setup(false)
  t.match(refused.verdict(packet())?.message, /not authorized/)
  t.same(refused.calls, ['mayPublish c1 alice a/b'], 'asked with the client id, the authenticated user and the topic')
  const allowed = setup(true)
  t.equal(allowed.verdict(packet()), null)
  t.equal(allowed.verdict(packet(), null), null, 'a will with no client is not checked here')
  t.same(allowed.calls, ['mayPublish c1 alice a/b'])
})

t.test('a refused retained QoS 0/1 message releases a SUBSCRIBE waiting for it (retained-order)', async (t) => {
  const { verdict, calls } = setup(false)
  verdict(packet({ retain: true, qos: 1 }))
  verdict(packet({ retain: true, qos: 2 }))
  t.same(calls, ['mayPublish c1 alice a/b', 'retainedRouted', 'mayPublish c1 alice a/b'], 'QoS 2 is ordered by its PUBREL, not here')
})

t.test('a will loses its Will Delay Interval on its way in', async (t) => {
  const { verdict } = setup()
  const will = packet({ properties: { willDelayInterval: 5, contentType: 'text/plain' } as PublishPacket['properties'] })
  verdict(will, null)
  t.same(will.properties, { contentType: 'text/plain' })
})

t.test('published: the PUBACK of a QoS 1 message may go, and a SUBSCRIBE waiting for a retained one goes on', async (t) => {
  const calls: string[] = []
  const ctx = { gatewayOf: () => ({ onPublished: (id: number) => { calls.push(`onPublished ${id}`) }, retainedRouted: () => { calls.push('retainedRouted') } }) }
  const done: unknown[] = []
  const publish = (over: Partial<AedesPublishPacket>, from: Client | null = client): void => {
    published(ctx, { ...packet(), brokerId: 'b', brokerCounter: 1, ...over } as AedesPublishPacket, from, (err) => { done.push(err) })
  }
  publish({ qos: 1, messageId: 3 })
  publish({ qos: 1, messageId: 4, retain: true })
  publish({ qos: 2, messageId: 5, retain: true })
  publish({ qos: 0, retain: true })
  publish({ qos: 1, messageId: 6 }, null)
  t.same(calls, ['onPublished 3', 'onPublished 4', 'retainedRouted', 'retainedRouted'])
  t.same(done, [null, null, null, null, null], 'aedes goes on every time')
})
