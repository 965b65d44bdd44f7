/**
 * The packed inbox entry (lib/cluster/inbox-entry.ts), without Redis: the
 * fields ROUTE writes decode back into the same messages under the ids the
 * publishing node gave them (the call's id and each message's number in the
 * call), RETAIN and properties kept; a truncated or malformed entry gives
 * what can be read of it, logs the rest, and does not throw.
 */
import t from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import { CALL_FIELD, decodeEntry, FIRST_FIELD, PACKED_FIELD, packMessages } from '../../lib/cluster/inbox-entry.js'
import { encodeRouted } from '../../lib/cluster/wire.js'
import { routedPacket } from '../../lib/cluster/routes.js'
import { silentLogger } from '../../lib/logging.js'
import { captureLogger } from '../helpers/store.js'

const packet = (n: number, extra: Partial<IPublishPacket> = {}): IPublishPacket => ({ ...routedPacket({ topic: `t/${n}`, payload: Buffer.from(`p${n}`) }, 1), ...extra })
const b = (s: string | number): Buffer => Buffer.from(String(s))
/** an entry id added `agoMs` ago by Redis' clock */
const entryId = (agoMs = 0): Buffer => b(`${Date.now() - agoMs}-0`)
/** the fields ROUTE writes for one inbox: the call's id, then each group's first number and packed messages */
const packedFields = (callId: string, groups: Array<[number, Buffer[]]>): Buffer[] =>
  [b(CALL_FIELD), b(callId), ...groups.flatMap(([first, messages]) => [b(FIRST_FIELD), b(first), b(PACKED_FIELD), packMessages(messages)])]
const summary = (messages: ReturnType<typeof decodeEntry>): Array<{ topic: string, payload: string, id: string }> =>
  messages.map((m) => ({ topic: m.packet.topic, payload: m.packet.payload.toString(), id: m.id }))

t.test('a packed entry round-trips: each group\'s messages in order, the n-th of the call under {call id}.n', async (t) => {
  // a call whose messages 1-2 and 5 went to this inbox (3-4 to another node only)
  const fields = packedFields('abc7', [[1, [encodeRouted(packet(1)), encodeRouted(packet(2))]], [5, [encodeRouted(packet(5))]]])
  const messages = decodeEntry(entryId(), fields, silentLogger())
  t.same(summary(messages), [
    { topic: 't/1', payload: 'p1', id: 'abc7.1' },
    { topic: 't/2', payload: 'p2', id: 'abc7.2' },
    { topic: 't/5', payload: 'p5', id: 'abc7.5' }
  ])
  t.ok(messages.every((m) => m.forClient === undefined && m.packet.qos === 1), 'for no one session, QoS kept')
})

t.test('a packed message keeps RETAIN, QoS 2 and its properties; its expiry is lessened by its time in the inbox, an expired one left out', async (t) => {
  const retained = packet(1, { retain: true, qos: 2 })
  const withProps = packet(2, { properties: { messageExpiryInterval: 60, userProperties: { k: 'v' } } })
  const expired = packet(3, { properties: { messageExpiryInterval: 2 } })
  const messages = decodeEntry(entryId(5000), packedFields('c', [[1, [encodeRouted(retained), encodeRouted(withProps), encodeRouted(expired)]]]), silentLogger())
  t.same(messages.map((m) => m.id), ['c.1', 'c.2'], 'the expired third is left out')
  t.equal(messages[0]?.packet.retain, true)
  t.equal(messages[0]?.packet.qos, 2)
  t.equal(messages[1]?.packet.properties?.messageExpiryInterval, 55)
  t.same(messages[1]?.packet.properties?.userProperties, { k: 'v' })
})

t.test('a packed entry cut short gives the messages before the cut and logs the rest as dropped', async (t) => {
  const blob = packMessages([encodeRouted(packet(1)), encodeRouted(packet(2)), encodeRouted(packet(3))])
  for (const cut of [blob.length - 1, blob.length - encodeRouted(packet(3)).length - 2]) {
    const { logger, lines } = captureLogger()
    const fields = [b(CALL_FIELD), b('x'), b(FIRST_FIELD), b(1), b(PACKED_FIELD), blob.subarray(0, cut)]
    t.same(summary(decodeEntry(entryId(), fields, logger)).map((m) => m.id), ['x.1', 'x.2'], `cut at ${cut} of ${blob.length}: the two whole messages`)
    t.equal(lines.filter((l) => l.level === 40 && String(l.err).includes('truncated')).length, 1, 'one warning of the truncation')
  }
})

t.test('a malformed packed entry is skipped with a warning, not a crash', async (t) => {
  const good = encodeRouted(packet(1))
  const cases: Array<[string, Buffer[], string[]]> = [
    ['no call id', [b(FIRST_FIELD), b(1), b(PACKED_FIELD), packMessages([good])], []],
    ['no first number', [b(CALL_FIELD), b('x'), b(PACKED_FIELD), packMessages([good])], []],
    ['a first number that is not one', [b(CALL_FIELD), b('x'), b(FIRST_FIELD), b('one'), b(PACKED_FIELD), packMessages([good])], []],
    ['a length beyond the entry', [b(CALL_FIELD), b('x'), b(FIRST_FIELD), b(1), b(PACKED_FIELD), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2])], []],
    ['a message that is not a PUBLISH, between two that are', [b(CALL_FIELD), b('x'), b(FIRST_FIELD), b(1), b(PACKED_FIELD), packMessages([good, Buffer.from([0xc0, 0x00]), good])], ['x.1', 'x.3']],
    ['no message field at all', [b(CALL_FIELD), b('x')], []]
  ]
  for (const [what, fields, ids] of cases) {
    const { logger, lines } = captureLogger()
    let messages: ReturnType<typeof decodeEntry> = []
    t.doesNotThrow(() => { messages = decodeEntry(entryId(), fields, logger) }, what)
    t.same(messages.map((m) => m.id), ids, `${what}: what can be read of it`)
    t.ok(lines.some((l) => l.level === 40), `${what}: logged`)
  }
})

t.test('older entries decode beside packed ones: FORWARD\'s (m, c, u) and one field per message (m, u)', async (t) => {
  const forwarded = decodeEntry(entryId(), [b('m'), encodeRouted(packet(4)), b('c'), b('client'), b('u'), b('k.4')], silentLogger())
  t.same(forwarded.map((m) => ({ id: m.id, forClient: m.forClient })), [{ id: 'k.4', forClient: 'client' }])
  const old = decodeEntry(entryId(), [b('m'), encodeRouted(packet(1)), b('u'), b('k.1'), b('m'), encodeRouted(packet(2))], silentLogger())
  t.same(summary(old).map((m) => m.id), ['k.1', ''], 'an m without u: no id')
})
