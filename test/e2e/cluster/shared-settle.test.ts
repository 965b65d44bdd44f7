/**
 * A cluster-wide shared group's refusals and QoS 2 (lib/cluster/shared-stream.ts
 * with lib/shared's rules): a PUBACK of 0x80 or more on one node discards
 * the message for the group [MQTT-4.8.2-6] and dead-letters it to a group
 * whose member is on another node. QoS 2 held by a member's session:
 * shared-qos2.test.ts.
 */
import t from 'tap'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { redisCli, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { nextPublishes, rawMember, rawSubscribe, takePublishes, text } from '../../helpers/share.js'

t.test('a PUBACK 0x80 from a member on node B: not sent to the member on node C [MQTT-4.8.2-6], dead-lettered to a member on node A', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'], { args: ['--shared-dead-letter-topic', '$dlq/{group}/{topic}'] })
  const letters = await connectClient(t, a.url, { clientId: 'letters', protocolVersion: 5 })
  const gotLetters = collect(letters)
  await letters.subscribeAsync('$share/dlq/$dlq/#', { qos: 1 })
  const refuser = await rawMember(t, b.port, { clientId: 'refuser' })
  t.same(await rawSubscribe(refuser, [{ topic: '$share/nack/tasks/#', qos: 1 }]), [1])
  const publisher = await connectClient(t, a.url, { clientId: 'publisher', protocolVersion: 5 })
  // the member on B is the only one: the message goes to it
  await waitFor(async () => {
    await publisher.publishAsync('tasks/probe', 'probe', { qos: 1 })
    return refuser.packets.some((p) => p.cmd === 'publish')
  }, { timeout: 5000, step: 100, what: 'the group known on node A' })
  await sleep(300)
  for (const probe of takePublishes(refuser)) refuser.send({ cmd: 'puback', messageId: probe.messageId ?? 0 })
  await publisher.publishAsync('tasks/2', 'poison', { qos: 1 })
  const [poison] = await nextPublishes(refuser, 1, 5000)
  const refused = poison && text(poison)
  // a member on C with room joins before the refusal: the message must not go to it
  const other = await connectClient(t, c.url, { clientId: 'other', protocolVersion: 5 })
  const gotOther = collect(other)
  await other.subscribeAsync('$share/nack/tasks/#', { qos: 1 })
  await waitFor(() => redisCli(redis, 'XINFO', 'CONSUMERS', 'culex:share:{$share/nack/tasks/#}', 'culex').includes('"c"'), { timeout: 5000, what: 'node C reading the group' })
  refuser.send({ cmd: 'puback', messageId: poison?.messageId ?? 0, reasonCode: 0x80, properties: { reasonString: 'cannot process' } })
  t.equal(refused, 'poison', 'the member on node B got the message and refused it')
  await waitFor(() => gotLetters.messages.length > 0, { timeout: 5000, what: 'the dead letter reaching node A' })
  const letter = gotLetters.messages[0]
  t.equal(letter?.topic, '$dlq/nack/tasks/2', 'dead-lettered to $dlq/{group}/{topic}')
  t.equal(letter?.payload.toString(), 'poison')
  t.match(letter?.properties?.userProperties, { 'culex-reason': 'rejected', 'culex-reason-code': '0x80', 'culex-client-id': 'refuser' }, 'saying why and who')
  await sleep(1500)
  t.notOk(gotOther.messages.some((m) => m.payload.toString() === 'poison'), 'never sent to the member on node C [MQTT-4.8.2-6]')
  t.equal(gotLetters.messages.length, 1, 'dead-lettered once')
  await publisher.publishAsync('tasks/3', 'next', { qos: 1 })
  await waitFor(() => gotOther.messages.some((m) => m.payload.toString() === 'next') || refuser.packets.some((p) => p.cmd === 'publish'), { timeout: 5000, what: 'the next message reaching a member' })
  t.pass('the group goes on')
})

t.test('QoS 0 for a cluster group: each message to one member once, also when the message is routed to the members\' node for a plain subscriber there', async (t) => {
  const { nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onB = await connectClient(t, b.url, { clientId: 'q0-b', protocolVersion: 5 })
  const onC = await connectClient(t, c.url, { clientId: 'q0-c', protocolVersion: 4 })
  const plain = await connectClient(t, b.url, { clientId: 'q0-plain', protocolVersion: 5 })
  const got = [collect(onB), collect(onC)]
  const gotPlain = collect(plain)
  await onB.subscribeAsync('$share/q0/q0/#', { qos: 0 })
  await onC.subscribeAsync('$share/q0/q0/#', { qos: 0 })
  await plain.subscribeAsync('q0/#', { qos: 0 })
  const publisher = await connectClient(t, a.url, { clientId: 'q0-pub', protocolVersion: 5 })
  await waitFor(async () => {
    await publisher.publishAsync('q0/probe', 'probe', { qos: 0 })
    return gotPlain.messages.length > 0 && got.some((g) => g.messages.length > 0)
  }, { timeout: 5000, step: 100, what: 'the route to node B and the group known on node A' })
  await sleep(300)
  for (const g of [...got, gotPlain]) g.messages.length = 0
  for (let i = 0; i < 50; i++) await publisher.publishAsync(`q0/${i}`, String(i), { qos: 0 })
  await waitFor(() => gotPlain.messages.length >= 50 && got[0]!.messages.length + got[1]!.messages.length >= 50, { timeout: 10000, what: 'the 50 messages' })
  await sleep(500)
  const group = got.flatMap((g) => g.messages.map((m) => m.payload.toString()))
  t.equal(group.length, 50, 'the group got each once: a message routed to node B for its plain subscriber is not added to the group again')
  t.equal(new Set(group).size, 50)
  t.equal(gotPlain.messages.length, 50, 'the plain subscriber on node B got each once')
  t.ok(got.every((g) => g.messages.every((m) => m.qos === 0)), 'at QoS 0')
})
