/**
 * The figures and notes of the cluster flow scenarios, from a load
 * generator's result: Redis commands per delivered message, the loss of
 * acknowledged QoS 1 messages said in words, and which brokers take part.
 */
import t from 'tap'
import type { BrokerRunner } from '../../../benchmarks/brokers.js'
import type { FlowResult } from '../../../benchmarks/loadgen/jobs.js'
import { ackedLossNote, clusterOnly, redisNote, redisPerMessage } from '../../../benchmarks/scenarios/cluster-flow.js'

function result (unique: number, expected: number, acked: number, redisCommands: Record<string, number> | null): FlowResult {
  return {
    kind: 'flow',
    rejected: null,
    sent: expected,
    acked,
    nacked: 0,
    nackReasons: {},
    deliveries: unique,
    integrity: { expected, unique, lost: expected - unique, duplicated: 0, reordered: 0, unexpected: 0, refused: 0 },
    window: { wallMs: 1000, brokerCpuS: 1, rssStartKiB: 0, rssEndKiB: 0 },
    latency: null,
    redisCommands,
    timedOut: false,
    stalled: unique < expected,
    errors: []
  }
}

t.test('redisPerMessage: every command of the window per delivered message', async (t) => {
  t.equal(redisPerMessage(result(1000, 1000, 1000, { publish: 1000, mset: 1000, evalsha: 3 })), 2.003)
  t.equal(redisPerMessage(result(1000, 1000, 1000, null)), null, 'a single broker has no Redis')
  t.equal(redisPerMessage(result(0, 1000, 1000, { publish: 5 })), null, 'nothing delivered: no rate')
})

t.test('ackedLossNote counts what never arrived next to what was acknowledged, for QoS 1 only', async (t) => {
  t.same(ackedLossNote(result(0, 5000, 5000, {}), 1), ['5000 of 5000 deliveries never arrived, with 5000 messages acknowledged (PUBACK) to their publishers'])
  t.same(ackedLossNote(result(5000, 5000, 5000, {}), 1), [], 'nothing lost: no note')
  t.same(ackedLossNote(result(10, 50, 50, {}), 0), [], 'QoS 0 promised nothing')
})

t.test('redisNote says when Redis did nothing', async (t) => {
  t.same(redisNote(result(1, 1, 1, {})), ['Redis during the window: no commands'])
  t.same(redisNote(result(1, 1, 1, { publish: 2, get: 1 })), ['Redis during the window: 3 commands (2× publish, 1× get)'])
  t.same(redisNote(result(1, 1, 1, null)), [])
})

t.test('clusterOnly lets cluster runners in and says why others stay out', async (t) => {
  const runner = (cluster: boolean): BrokerRunner => ({
    name: cluster ? 'culex-cluster' : 'culex-memory',
    features: { mqtt5: true, websocket: false, cluster },
    unavailable: null,
    description: '',
    start: async () => { throw new Error('not started in this test') }
  })
  t.equal(clusterOnly(runner(true)), null)
  t.match(clusterOnly(runner(false)), /needs a cluster/)
})
