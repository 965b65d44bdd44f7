/**
 * The figures and notes of the reconnect-storm and connects-tls scenarios,
 * from a load generator's result.
 */
import t from 'tap'
import { distinctNegotiated } from '../../../benchmarks/loadgen/idle.js'
import type { IdleResult, StormResult } from '../../../benchmarks/loadgen/jobs.js'
import { tlsOutcome } from '../../../benchmarks/scenarios/connects-tls.js'
import { stormOutcome } from '../../../benchmarks/scenarios/storm.js'

function stormResult (overrides: Partial<StormResult> = {}): StormResult {
  const window = { wallMs: 1500, brokerCpuS: 1, rssStartKiB: 1000, rssEndKiB: 2000 }
  return {
    kind: 'storm',
    sessions: 1000,
    sessionsPresent: 1000,
    reconnected: 1000,
    fill: window,
    window,
    cpuUntilQuietS: 2,
    lastConnectStartedMs: 1001,
    lastConnackMs: 1200,
    concurrencyWaits: 0,
    peakRssKiB: 204_800,
    hwmKiB: 300_000,
    loadgenCpuShare: 0.4,
    loadgenLoopDelayP99Ms: 12,
    listenOverflows: 0,
    monotonicStartUs: 1_000_000,
    monotonicQuietUs: 3_000_000,
    integrity: { expected: 5000, unique: 5000, lost: 0, duplicated: 0, reordered: 0, unexpected: 0, refused: 0 },
    timedOut: false,
    stalled: false,
    errors: [],
    ...overrides
  }
}

t.test('a complete storm: every figure, CPU counted until the broker was quiet', async (t) => {
  const outcome = stormOutcome(stormResult())
  t.same(outcome.values, { deliveredMs: 1500, lastConnackMs: 1200, peakRssMiB: 200, cpuS: 2, perCpu: 2500 })
  t.same(outcome.integrity, { lost: 0, duplicated: 0, reordered: 0, refused: 0 })
  t.same(outcome.notes, ['connects started over 1001 ms (0 waited for a free slot); load generator at 40% of a core, event-loop delay p99 12 ms; listen-queue overflows 0'])
})

t.test('a storm that lost messages has no delivery time, and says why', async (t) => {
  const outcome = stormOutcome(stormResult({
    integrity: { expected: 5000, unique: 4990, lost: 10, duplicated: 2, reordered: 1, unexpected: 0, refused: 0 },
    reconnected: 998,
    sessionsPresent: 990,
    stalled: true,
    loadgenCpuShare: 0.95,
    loadgenLoopDelayP99Ms: 80,
    listenOverflows: null
  }))
  t.equal(outcome.values['deliveredMs'], null)
  t.equal(outcome.values['lastConnackMs'], null, 'not every session came back')
  t.same(outcome.integrity, { lost: 10, duplicated: 2, reordered: 1, refused: 0 })
  t.match(outcome.notes.join('\n'), /near one full core/)
  t.match(outcome.notes.join('\n'), /event-loop delay p99 80 ms; listen-queue overflows unknown/)
  t.match(outcome.notes.join('\n'), /waited for CPU/)
  t.match(outcome.notes.join('\n'), /2 of 1000 reconnects failed/)
  t.match(outcome.notes.join('\n'), /8 reconnects had no session/)
  t.match(outcome.notes.join('\n'), /deliveries stalled/)
})

t.test('too little broker CPU to rate', async (t) => {
  t.equal(stormOutcome(stormResult({ cpuUntilQuietS: 0.01 })).values['perCpu'], null)
})

const pin = { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', group: 'X25519' }

function idleResult (negotiated: IdleResult['negotiated']): IdleResult {
  return {
    kind: 'idle',
    requested: 900,
    opened: 900,
    failed: 0,
    warmup: 100,
    window: { wallMs: 3000, brokerCpuS: 1.5, rssStartKiB: 10_000, rssEndKiB: 40_000 },
    rssIdleKiB: 28_000,
    ...(negotiated === undefined ? {} : { negotiated }),
    timedOut: false,
    stalled: false,
    errors: []
  }
}

t.test('connects-tls rates connects per broker CPU-s when every handshake held the pin', async (t) => {
  const outcome = tlsOutcome(idleResult([pin]))
  t.same(outcome.values, { connectsPerCpu: 600, connectsPerWall: 300, wallMs: 3000, kibPerConn: 20 })
  t.same(outcome.notes, ['every handshake: TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 X25519'])
})

t.test('connects-tls gives no figures when a handshake negotiated anything else', async (t) => {
  const outcome = tlsOutcome(idleResult([pin, { ...pin, protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }]))
  t.ok(Object.values(outcome.values).every((v) => v === null))
  t.match(outcome.notes.join('\n'), /negotiated TLSv1\.3 TLS_AES_256_GCM_SHA384 X25519, not the pinned suite/)
  t.same(tlsOutcome(idleResult(undefined)).notes[0], 'no TLS handshake completed')
})

t.test('distinctNegotiated keeps each handshake outcome once', async (t) => {
  t.same(distinctNegotiated([pin, { ...pin }, { ...pin, group: null }, pin]), [pin, { ...pin, group: null }])
  t.same(distinctNegotiated([]), [])
})
