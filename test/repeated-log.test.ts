/**
 * Events that repeat per message or per packet are written as one line per
 * kind and interval, carrying their count (lib/repeated-log.ts), so that no
 * client can fill a disk with the broker's log: a stuck subscriber under a
 * QoS 0 flood, and a client sending thousands of refused filters.
 */
import t from 'tap'
import { pino } from 'pino'
import type mqtt from 'mqtt-packet'
import { RepeatedLog } from '../lib/repeated-log.js'
import { ReasonCode } from '../lib/protocol/reason-codes.js'
import { connectClient } from './helpers/mqtt.js'
import { rawClient } from './helpers/raw5.js'
import { metricSum, startLoggedServer, uniqueId } from './helpers/security.js'
import { tcpPort, tcpUrl } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

interface Line { level: number, msg?: string, count?: number, repeated?: boolean, [key: string]: unknown }

/** the sum of the `count` fields of log lines */
function total (lines: Array<Record<string, unknown>>): number {
  return lines.reduce((sum, l) => sum + (typeof l.count === 'number' ? l.count : 0), 0)
}

t.test('RepeatedLog: the first event at once, its repeats as one line with their count per interval, a quiet kind forgotten', async (t) => {
  const lines: Line[] = []
  const sink = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Line) } })
  const log = new RepeatedLog(100)
  for (let i = 0; i < 1000; i++) log.log(sink, 'warn', 'drop a', { reason: 'a', i }, 'dropped')
  log.log(sink, 'warn', 'drop b', { reason: 'b' }, 'dropped', 5)
  log.log(sink, 'debug', 'below the level', {}, 'not written')
  t.same(lines.map(l => [l.reason, l.count, l.repeated]), [['a', 1, undefined], ['b', 5, undefined]], 'one line per kind at once, with its count')
  await t.resolves(waitFor(() => lines.length >= 3, { timeout: 2000 }), 'the interval ends')
  t.match(lines[2], { reason: 'a', i: 999, count: 999, repeated: true, msg: 'dropped' }, 'the repeats of a: one line, their count, the latest fields')
  t.equal(lines.length, 3, 'b did not repeat: no second line')
  // after a quiet interval a kind is forgotten: its next event is written at once
  await t.resolves(waitFor(() => { log.log(sink, 'warn', 'drop b', { reason: 'b' }, 'dropped'); return lines.length > 3 }, { timeout: 2000, step: 25 }))
  t.match(lines[3], { reason: 'b', count: 1 })
  log.log(sink, 'warn', 'drop b', { reason: 'b' }, 'dropped', 2)
  log.flush()
  t.match(lines[4], { reason: 'b', count: 2, repeated: true }, 'flush writes what is pending')
  log.flush()
  t.equal(lines.length, 5, 'and nothing twice')
})

t.test('a stuck subscriber under a QoS 0 flood: a few log lines, not one per dropped message, and they carry the count', async (t) => {
  const { server, logs } = await startLoggedServer(t, { slowConsumerTimeout: 200, maxQueuedOutbound: 100, maxOutboundBuffer: 65536 })
  const stuckId = uniqueId('stuck')
  const stuck = await rawClient(t, tcpPort(server), 5, { clientId: stuckId, properties: { receiveMaximum: 10 } })
  stuck.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] })
  await stuck.next('suback')
  stuck.socket.pause()
  const publisher = await connectClient(t, tcpUrl(server), { clientId: uniqueId('flooder') })
  const N = 20000
  const payload = Buffer.alloc(2048, 0x61)
  for (let i = 0; i < N; i++) publisher.publish('flood/x', payload, { qos: 0 })
  // the QoS 1 PUBACK comes once the QoS 0 flood before it was routed
  await publisher.publishAsync('flood/x', 'end', { qos: 1 })
  const dropped = await metricSum(server, 'culex_messages_dropped_total')
  t.ok(dropped !== undefined && dropped > 1000, `most of the flood was dropped for the stuck client (${dropped ?? '?'})`)
  await server.close()
  const drops = logs.filter(l => l.msg === 'message to client dropped')
  t.ok(drops.length >= 1 && drops.length <= 10, `${drops.length} lines for ${dropped ?? '?'} dropped messages`)
  t.ok(drops.every(l => l.clientId === stuckId), 'each names the stuck client')
  t.equal(total(drops), dropped, 'their counts add up to every dropped message')
  t.ok(logs.length < 100, `the whole log stays small (${logs.length} lines)`)
})

t.test('5,000 refused filters: a few log lines carrying the count', async (t) => {
  const { server, logs } = await startLoggedServer(t, { maxSubscriptionsPerClient: 10 })
  const c = await rawClient(t, tcpPort(server), 5, { clientId: uniqueId('filters') })
  const refused: number[] = []
  for (let s = 0; s < 50; s++) {
    const subscriptions = Array.from({ length: 100 }, (_, i) => ({ topic: `filters/${s}/${i}`, qos: 0 as const }))
    c.send({ cmd: 'subscribe', messageId: s + 1, subscriptions })
    const suback = await c.next('suback') as mqtt.ISubackPacket
    refused.push(...(suback.granted as number[]).filter(code => code === ReasonCode.QuotaExceeded))
  }
  t.equal(refused.length, 4990, 'all but 10 filters refused with 0x97')
  await server.close()
  const lines = logs.filter(l => l.msg === 'subscription limit reached')
  t.ok(lines.length >= 1 && lines.length <= 5, `${lines.length} lines for 4990 refused filters`)
  t.equal(total(lines), 4990, 'their counts add up to every refused filter')
})
