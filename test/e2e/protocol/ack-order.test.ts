/**
 * Acknowledgements of a client's PUBLISHes go out in the order the
 * PUBLISHes came [MQTT-4.6.0-2] [MQTT-4.6.0-3], whichever answers them:
 * aedes (after the store write, for a persistent subscriber) or the gateway
 * itself (a refusal: ACL, invalid topic, payload format).
 *
 * Implemented in lib/protocol/outbound/ack-order.ts, used by
 * lib/protocol/flows/publish-in.ts (onPublish, refusePublish) and
 * lib/protocol/flows/acks.ts (onOutboundAck).
 */
import t, { type Test } from 'tap'
import mqtt from 'mqtt-packet'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { RawClient } from '../../helpers/raw.js'
import { describe, rawClient, rawSubscribe, uniqueId, type RawVersion } from '../../helpers/raw5.js'
import { tempDir, writeFile } from '../../helpers/security.js'

// anonymous clients may publish under ao/ only
const ACL = 'topic readwrite ao/#\n'

/** The packets, encoded for `version`, as one buffer: one socket write. */
function oneWrite (version: RawVersion, packets: mqtt.Packet[]): Buffer {
  return Buffer.concat(packets.map(p => mqtt.generate(p, { protocolVersion: version })))
}

function publish (topic: string, messageId: number, qos: 1 | 2, properties?: mqtt.IPublishPacket['properties']): mqtt.IPublishPacket {
  const p: mqtt.IPublishPacket = { cmd: 'publish', topic, payload: Buffer.from('m' + messageId), qos, retain: false, dup: false, messageId }
  if (properties !== undefined) p.properties = properties
  return p
}

/** The next `count` acknowledgements of type `cmd`, in the order they arrived. */
async function acks (c: RawClient, cmd: 'puback' | 'pubrec', count: number): Promise<Array<{ id: number, code: number }>> {
  const out: Array<{ id: number, code: number }> = []
  for (let i = 0; i < count; i++) {
    const a = await c.next(cmd, 5000) as mqtt.IPubackPacket
    out.push({ id: a.messageId as number, code: a.reasonCode ?? 0 })
  }
  return out
}

t.test('acknowledgements in the order of the PUBLISHes, refusals included', async (t) => {
  const dir = tempDir(t)
  const aclFile = writeFile(dir, 'acl', ACL)
  const server = await startTestServer(t, { aclFile, persistence: 'level', dataDir: `${dir}/data` })
  const port = tcpPort(server)

  // an offline persistent subscriber: every accepted message is written to its queue in LevelDB
  const subscriberId = uniqueId('ao-sub')
  const sub = await rawClient(t, port, 5, { clientId: subscriberId, clean: false, properties: { sessionExpiryInterval: 3600 } })
  await rawSubscribe(sub, [{ topic: 'ao/#', qos: 2 }])
  sub.send({ cmd: 'disconnect' })
  await sub.waitClose()

  async function expectOrder (t: Test, version: RawVersion, ack: 'puback' | 'pubrec', packets: mqtt.IPublishPacket[], codes: number[]): Promise<void> {
    const c = await rawClient(t, port, version)
    c.sendRaw(oneWrite(version, packets))
    const got = await acks(c, ack, packets.length)
    t.same(got, packets.map((p, i) => ({ id: p.messageId, code: codes[i] })), `in order: ${describe(got)}`)
    t.notOk(c.closed, 'the connection stays open')
  }

  const denied = 'ao-denied/x'
  await t.test('[MQTT-4.6.0-2] v5: PUBACK of an accepted PUBLISH (waiting for the store) before the PUBACK 0x87 of a later one refused by the ACL', async (t) => {
    await expectOrder(t, 5, 'puback', [publish('ao/1', 101, 1), publish(denied, 102, 1)], [0, ReasonCode.NotAuthorized])
  })

  await t.test('[MQTT-4.6.0-2] [MQTT-3.3.2-2] v5: PUBACK of an accepted PUBLISH before the PUBACK 0x90 of a later one with a wildcard topic', async (t) => {
    await expectOrder(t, 5, 'puback', [publish('ao/2', 201, 1), publish('ao/+', 202, 1), publish('ao/3', 203, 1)], [0, ReasonCode.TopicNameInvalid, 0])
  })

  await t.test('[MQTT-4.6.0-2] v5: PUBACK of an accepted PUBLISH before the PUBACK 0x99 of a later one whose payload is not UTF-8', async (t) => {
    const bad = { ...publish('ao/4', 302, 1, { payloadFormatIndicator: true }), payload: Buffer.from([0xff, 0xfe]) }
    await expectOrder(t, 5, 'puback', [publish('ao/4', 301, 1), bad], [0, ReasonCode.PayloadFormatInvalid])
  })

  await t.test('[MQTT-4.6.0-3] v5: PUBREC of an accepted QoS 2 PUBLISH before the PUBREC 0x87 of a later refused one', async (t) => {
    await expectOrder(t, 5, 'pubrec', [publish('ao/5', 401, 2), publish(denied, 402, 2)], [0, ReasonCode.NotAuthorized])
  })

  await t.test('[MQTT-4.6.0-2] v3.1.1: PUBACK of an accepted PUBLISH before the plain PUBACK of a later one refused by the ACL (and dropped)', async (t) => {
    await expectOrder(t, 4, 'puback', [publish('ao/6', 501, 1), publish(denied, 502, 1), publish('ao/7', 503, 1)], [0, 0, 0])
  })

  await t.test('the subscriber gets the accepted messages only', async (t) => {
    const back = await rawClient(t, port, 5, { clientId: subscriberId, clean: false, properties: { sessionExpiryInterval: 3600 } })
    const topics: string[] = []
    for (let i = 0; i < 7; i++) {
      const p = await back.next('publish', 5000) as mqtt.IPublishPacket
      topics.push(p.topic)
      if (p.qos === 1) back.send({ cmd: 'puback', messageId: p.messageId })
      if (p.qos === 2) back.send({ cmd: 'pubrec', messageId: p.messageId })
    }
    t.same(topics.slice().sort(), ['ao/1', 'ao/2', 'ao/3', 'ao/4', 'ao/5', 'ao/6', 'ao/7'], 'no refused message was queued')
  })
})
