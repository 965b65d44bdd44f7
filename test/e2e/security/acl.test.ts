/**
 * The ACL (mosquitto's acl_file syntax) end to end, over real sockets:
 * PUBLISH (v5 PUBACK/PUBREC 0x87; 3.1.1 acknowledged and dropped, as
 * mosquitto), SUBSCRIBE (0x87 / 0x80), shared subscriptions, every delivery
 * (read), retained messages, wills, `%c` / `%u` patterns, `$SYS`, and reload
 * (SIGHUP and `server.reload()`).
 *
 * Without a password file and on loopback, a user name is only a name
 * (anonymous access is allowed), which keeps these tests free of scrypt work.
 */
import t from 'tap'
import type { Test } from 'tap'
import { writeFileSync } from 'node:fs'
import type mqtt from 'mqtt-packet'
import type { IPubackPacket, IPubrecPacket, IPublishPacket, ISubackPacket } from 'mqtt-packet'
import type { CulexServer } from '../../../lib/server.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import { startCulex } from '../../helpers/cli.js'
import { tempDir, uniqueId, writeFile, type Version } from '../../helpers/security.js'
import { waitFor } from '../../helpers/wait.js'

const ACL = `# anonymous clients
topic read public/#

user admin
topic readwrite #

user alice
topic readwrite sensors/#
topic deny sensors/secret
topic write alerts/#
topic read $SYS/#
topic readwrite jobs/#
topic deny jobs/secret

user bob
topic read sensors/#
topic readwrite bob/#

pattern readwrite devices/%c/#
pattern read users/%u/inbox/#
pattern write users/%u/outbox
`

let nextId = 1
const id = (): number => (nextId = nextId >= 0xfff0 ? 1 : nextId + 1)

async function client (t: Test, server: CulexServer, version: Version, username?: string, connect: Partial<mqtt.IConnectPacket> = {}): Promise<RawClient> {
  const c = await RawClient.connect(tcpPort(server), version, { clientId: uniqueId(username ?? 'anon'), ...(username !== undefined ? { username } : {}), ...connect })
  t.teardown(() => c.destroy())
  return c
}

async function subscribe (c: RawClient, ...filters: string[]): Promise<number[]> {
  const messageId = id()
  c.send({ cmd: 'subscribe', messageId, subscriptions: filters.map(topic => ({ topic, qos: 1 as const })) })
  const suback = await c.next('suback') as ISubackPacket
  return suback.granted as number[]
}

/** A PUBLISH and its acknowledgement's reason code (0 = success; 0x10 counts as success). */
async function publish (c: RawClient, topic: string, qos: 0 | 1 | 2, payload = 'm', retain = false): Promise<number | undefined> {
  const messageId = qos > 0 ? id() : undefined
  c.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false, ...(messageId !== undefined ? { messageId } : {}) } as IPublishPacket)
  if (qos === 0) return undefined
  const ack = await c.next(qos === 1 ? 'puback' : 'pubrec') as IPubackPacket | IPubrecPacket
  if (ack.messageId !== messageId) throw new Error(`ack for ${ack.messageId}, expected ${messageId}`)
  if (qos === 2 && (ack.reasonCode ?? 0) < 0x80) {
    c.send({ cmd: 'pubrel', messageId })
    await c.next('pubcomp')
  }
  const code = ack.reasonCode ?? 0
  return code === ReasonCode.NoMatchingSubscribers ? 0 : code
}

/**
 * Publishes `marker` after whatever the test sent, waits until `receiver`
 * gets it, and returns the topics it received up to it: the same publisher
 * and subscriber keep order, so anything that did not arrive before the
 * marker was not delivered.
 */
async function receivedUntilMarker (receiver: RawClient, publisher: RawClient, marker: string): Promise<string[]> {
  await publish(publisher, marker, 1)
  return receivedUntil(receiver, marker)
}

/** The topics `receiver` got up to the message on `marker` (acknowledging them). */
async function receivedUntil (receiver: RawClient, marker: string): Promise<string[]> {
  const topics: string[] = []
  for (;;) {
    const p = await receiver.next('publish') as IPublishPacket
    if (p.qos > 0 && p.messageId !== undefined) receiver.send({ cmd: 'puback', messageId: p.messageId })
    if (p.topic === marker) return topics
    topics.push(p.topic)
  }
}

t.test('ACL', async (t) => {
  const dir = tempDir(t)
  const aclFile = writeFile(dir, 'acl', ACL)
  const server = await startTestServer(t, { aclFile, sysInterval: 1 })
  t.ok(server.security.hasAcl, 'the ACL is loaded')

  await t.test('[MQTT-3.3.5-2] publish, v5: allowed topics are acknowledged, denied ones get 0x87', async (t) => {
    const alice = await client(t, server, 5, 'alice')
    const bob = await client(t, server, 5, 'bob')
    t.equal(await publish(alice, 'sensors/temp', 1), 0, 'readwrite sensors/#: QoS 1 allowed')
    t.equal(await publish(alice, 'sensors/temp', 2), 0, 'and QoS 2')
    t.equal(await publish(alice, 'alerts/fire', 1), 0, 'write alerts/#')
    t.equal(await publish(alice, 'sensors/secret', 1), ReasonCode.NotAuthorized, 'deny wins over readwrite sensors/#: PUBACK 0x87')
    t.equal(await publish(alice, 'sensors/secret', 2), ReasonCode.NotAuthorized, 'PUBREC 0x87 for QoS 2')
    t.equal(await publish(alice, 'bob/x', 1), ReasonCode.NotAuthorized, "another user's topic")
    t.equal(await publish(bob, 'sensors/temp', 1), ReasonCode.NotAuthorized, 'read-only for bob')
    t.equal(await publish(bob, 'bob/x', 1), 0)
    const anon = await client(t, server, 5)
    t.equal(await publish(anon, 'public/x', 1), ReasonCode.NotAuthorized, 'anonymous clients may only read public/#')
    t.equal(await publish(alice, 'sensors/ok', 1), 0, 'the connection goes on after refusals')
  })

  await t.test('publish, 3.1.1: a denied message is acknowledged and dropped (as mosquitto), the connection stays', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    t.same(await subscribe(admin, 'sensors/#', 'bob/#'), [1, 1])
    const alice = await client(t, server, 4, 'alice')
    t.equal(await publish(alice, 'sensors/secret', 1), 0, 'QoS 1: a plain PUBACK')
    const qos2 = id()
    alice.send({ cmd: 'publish', topic: 'bob/x', payload: Buffer.from('no'), qos: 2, messageId: qos2, retain: false, dup: false })
    t.equal((await alice.next('pubrec')).messageId, qos2, 'QoS 2: a plain PUBREC')
    alice.send({ cmd: 'pubrel', messageId: qos2 })
    t.equal((await alice.next('pubcomp')).messageId, qos2, 'and the flow completes with PUBCOMP')
    await publish(alice, 'sensors/secret', 0)
    t.same(await receivedUntilMarker(admin, alice, 'sensors/marker-311'), [], 'none of the denied messages was delivered')
    t.notOk(alice.closed, 'still connected')
  })

  await t.test('[MQTT-3.8.4-6] subscribe: 0x87 (v5) / 0x80 (3.1.1) for filters not readable, per filter', async (t) => {
    for (const version of [5, 4] as const) {
      const no = version === 5 ? ReasonCode.NotAuthorized : 0x80
      const alice = await client(t, server, version, 'alice')
      t.same(await subscribe(alice, 'sensors/#', 'alerts/#', '#', 'sensors/+', 'bob/#', 'jobs/secret'),
        [1, no, no, 1, no, no], `v${version}: read right needed over the whole filter; write-only alerts/# and denied jobs/secret refused`)
      const bob = await client(t, server, version, 'bob')
      t.same(await subscribe(bob, 'sensors/secret', 'bob/#', 'sensors', 'sensorsx/#'), [1, 1, 1, no], `v${version}: sensors/# covers sensors itself [MQTT-4.7.1-2], not a sibling`)
      const anon = await client(t, server, version)
      t.same(await subscribe(anon, 'public/#', 'sensors/#'), [1, no], `v${version}: anonymous section`)
    }
  })

  await t.test('[MQTT-4.8.2-1] shared subscribe: $share/g/f is checked as f', async (t) => {
    const bob = await client(t, server, 5, 'bob')
    t.same(await subscribe(bob, '$share/g/secret/#', '$share/g/sensors/#', '$share/g/alerts/#'),
      [ReasonCode.NotAuthorized, 1, ReasonCode.NotAuthorized], '$share/g/secret/# denied as secret/# is not readable')
    const bob311 = await client(t, server, 4, 'bob')
    t.same(await subscribe(bob311, '$share/g/secret/#', '$share/g/bob/#'), [0x80, 1], '3.1.1: 0x80')
  })

  await t.test('delivery: a filter partly denied delivers only what the client may read (live and retained)', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    t.equal(await publish(admin, 'sensors/secret', 1, 'retained secret', true), 0)
    t.equal(await publish(admin, 'sensors/temp', 1, 'retained temp', true), 0)
    for (const version of [5, 4] as const) {
      const alice = await client(t, server, version, 'alice')
      t.same(await subscribe(alice, 'sensors/#'), [1], 'a deny covering part of the filter does not refuse the SUBSCRIBE')
      // retained messages arrive right after the SUBACK; the marker below comes after them
      await publish(admin, 'sensors/secret', 1, 'live secret')
      await publish(admin, 'sensors/humidity', 1, 'live')
      const got = await receivedUntilMarker(alice, admin, 'sensors/marker')
      t.ok(got.includes('sensors/temp'), `v${version}: the retained allowed message is delivered`)
      t.ok(got.includes('sensors/humidity'), `v${version}: the live allowed message is delivered`)
      t.notOk(got.includes('sensors/secret'), `v${version}: neither the retained nor the live sensors/secret is delivered (got ${got.join(', ')})`)
    }
    await publish(admin, 'sensors/secret', 1, '', true)
    await publish(admin, 'sensors/temp', 1, '', true)
  })

  await t.test('[MQTT-4.8.2-1] delivery to a shared subscription is checked with read too', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    const alice = await client(t, server, 5, 'alice')
    t.same(await subscribe(alice, '$share/workers/jobs/#'), [1], 'alice may join $share/workers/jobs/# (deny covers only jobs/secret)')
    await publish(admin, 'jobs/secret', 1, 'for admins only')
    await publish(admin, 'jobs/build', 1, 'work')
    const got = await receivedUntilMarker(alice, admin, 'jobs/marker')
    t.ok(got.includes('jobs/build'), 'the allowed job is delivered to the group member')
    t.notOk(got.includes('jobs/secret'), `jobs/secret is not delivered to a member that may not read it (got ${got.join(', ')})`)
  })

  await t.test('patterns: %c is the client id, %u the user name', async (t) => {
    const dev = await client(t, server, 5, undefined, { clientId: 'dev-17' })
    t.equal(await publish(dev, 'devices/dev-17/state', 1), 0, 'devices/%c/# for dev-17')
    t.equal(await publish(dev, 'devices/dev-18/state', 1), ReasonCode.NotAuthorized, 'not another device')
    t.same(await subscribe(dev, 'devices/dev-17/#', 'devices/+/state', 'devices/#'), [1, ReasonCode.NotAuthorized, ReasonCode.NotAuthorized])
    const wild = await client(t, server, 5, undefined, { clientId: '+' })
    t.same(await subscribe(wild, 'devices/+/#'), [ReasonCode.NotAuthorized], 'a client id "+" does not widen devices/%c/# to every device')
    t.equal(await publish(wild, 'devices/x/state', 1), ReasonCode.NotAuthorized)
    const alice = await client(t, server, 5, 'alice')
    t.same(await subscribe(alice, 'users/alice/inbox/#', 'users/bob/inbox/#', 'users/+/inbox/#'), [1, ReasonCode.NotAuthorized, ReasonCode.NotAuthorized], '%u: own inbox only')
    t.equal(await publish(alice, 'users/alice/outbox', 1), 0, 'pattern write users/%u/outbox')
    t.equal(await publish(alice, 'users/bob/outbox', 1), ReasonCode.NotAuthorized)
    const anon = await client(t, server, 5)
    t.same(await subscribe(anon, 'users/+/inbox/#'), [ReasonCode.NotAuthorized], 'a %u pattern grants nothing to anonymous clients')
  })

  await t.test('[MQTT-4.7.2-1] $SYS/# is readable only where granted', async (t) => {
    const alice = await client(t, server, 5, 'alice')
    const admin = await client(t, server, 5, 'admin')
    const bob = await client(t, server, 4, 'bob')
    t.same(await subscribe(alice, '$SYS/#'), [1], 'alice has topic read $SYS/#')
    t.same(await subscribe(admin, '$SYS/#', '$SYS/broker/uptime'), [ReasonCode.NotAuthorized, ReasonCode.NotAuthorized], 'readwrite # does not cover $SYS')
    t.same(await subscribe(bob, '$SYS/#'), [0x80], 'nor does anything of bob')
    t.same(await subscribe(admin, '#'), [1])
    const sys = await alice.next('publish', 4000) as IPublishPacket
    t.match(sys.topic, /^\$SYS\//, 'alice receives $SYS messages')
    const got = await receivedUntilMarker(admin, admin, 'sys/marker')
    t.notOk(got.some(topic => topic.startsWith('$SYS')), 'admin, subscribed to #, gets none')
    t.equal(await publish(admin, '$SYS/broker/fake', 1), ReasonCode.NotAuthorized, 'and nobody may publish to $SYS')
  })

  await t.test('wills are published only where the client may write', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    t.same(await subscribe(admin, 'alerts/#', 'bob/#'), [1, 1])
    const allowed = await client(t, server, 5, 'alice', { will: { topic: 'alerts/alice-died', payload: Buffer.from('x'), qos: 0, retain: false } })
    const denied = await client(t, server, 5, 'alice', { will: { topic: 'bob/alice-died', payload: Buffer.from('x'), qos: 0, retain: false } })
    denied.destroy()
    allowed.destroy()
    const will = await admin.next('publish', 4000) as IPublishPacket
    t.equal(will.topic, 'alerts/alice-died', 'the will on a writable topic is published')
    const got = await receivedUntilMarker(admin, admin, 'alerts/marker')
    t.notOk(got.includes('bob/alice-died'), 'the will on a topic alice may not write is not')
  })

  await t.test('server.reload(): after a read right is removed, a subscribed client stops receiving', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    const bob = await client(t, server, 5, 'bob')
    const bob311 = await client(t, server, 4, 'bob')
    t.same(await subscribe(bob, 'sensors/#'), [1])
    t.same(await subscribe(bob311, 'sensors/#'), [1])
    await publish(admin, 'sensors/temp', 1)
    await publish(admin, 'sensors/before', 1)
    t.same(await receivedUntil(bob, 'sensors/before'), ['sensors/temp'], 'v5: delivered before the reload')
    t.same(await receivedUntil(bob311, 'sensors/before'), ['sensors/temp'], '3.1.1: delivered before the reload')
    writeFileSync(aclFile, ACL.replace('topic read sensors/#', 'topic read sensors/public/#'))
    await server.reload()
    await publish(admin, 'sensors/temp', 1)
    await publish(admin, 'sensors/public/x', 1)
    // the marker must be one bob may still read
    await publish(admin, 'sensors/public/marker', 1)
    t.same(await receivedUntil(bob, 'sensors/public/marker'), ['sensors/public/x'], 'v5: only what bob may still read')
    t.same(await receivedUntil(bob311, 'sensors/public/marker'), ['sensors/public/x'], '3.1.1: likewise')
    t.notOk(bob.closed || bob311.closed, 'the reload dropped nobody')
    t.same(await subscribe(bob, 'sensors/#'), [ReasonCode.NotAuthorized], 'a new SUBSCRIBE follows the new rules')
    writeFileSync(aclFile, ACL)
    await server.reload()
  })

  await t.test('server.reload(): a shared member whose read right is removed stops receiving', async (t) => {
    const admin = await client(t, server, 5, 'admin')
    const alice = await client(t, server, 5, 'alice')
    t.same(await subscribe(alice, '$share/reload/jobs/#'), [1])
    await publish(admin, 'jobs/build', 1)
    t.same(await receivedUntilMarker(alice, admin, 'jobs/before'), ['jobs/build'], 'delivered before the reload')
    writeFileSync(aclFile, ACL.replace('topic readwrite jobs/#', 'topic readwrite jobs/public/#'))
    await server.reload()
    await publish(admin, 'jobs/build', 1)
    const got = await receivedUntilMarker(alice, admin, 'jobs/public/marker')
    t.same(got, [], `jobs/build is no longer delivered to the member (got ${got.join(', ')})`)
    writeFileSync(aclFile, ACL)
    await server.reload()
  })

  await t.test('a broken ACL on reload keeps the previous rules', async (t) => {
    writeFileSync(aclFile, 'user bob\ntopic read a/#/b\n')
    await t.rejects(server.reload())
    const bob = await client(t, server, 5, 'bob')
    t.same(await subscribe(bob, 'sensors/#', 'alerts/#'), [1, ReasonCode.NotAuthorized], 'the old rules are still in force')
    writeFileSync(aclFile, ACL)
  })
})

t.test('SIGHUP reloads the ACL of the culex command: a subscribed client stops receiving', async (t) => {
  const dir = tempDir(t)
  const aclFile = writeFile(dir, 'acl', 'topic readwrite open/#\n')
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--acl-file', aclFile])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const loaded = (): number => culex.logs.filter(l => l.msg === 'security configuration loaded').length
  const sub = await RawClient.connect(culex.port, 5, { clientId: uniqueId('sub') })
  const pub = await RawClient.connect(culex.port, 4, { clientId: uniqueId('pub') })
  t.teardown(() => { sub.destroy(); pub.destroy() })
  t.same(await subscribe(sub, 'open/#'), [1])
  await publish(pub, 'open/a', 1)
  t.same(await receivedUntilMarker(sub, pub, 'open/marker'), ['open/a'], 'delivered before the reload')

  writeFileSync(aclFile, 'topic write open/#\ntopic read open/marker\n')
  culex.child.kill('SIGHUP')
  await t.resolves(waitFor(() => loaded() === 2), 'SIGHUP reloaded the ACL')
  await publish(pub, 'open/b', 1)
  t.same(await receivedUntilMarker(sub, pub, 'open/marker'), [], 'open/b is no longer delivered')
  t.notOk(sub.closed || pub.closed, 'nobody was dropped')
})
