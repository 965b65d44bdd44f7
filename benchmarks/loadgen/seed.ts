// Persistent sessions left on a cluster, so a scenario can time what a node
// joining it has to read: each session connects (3.1.1 Clean Session 0;
// MQTT 5 Clean Start 0 and a Session Expiry Interval of an hour), subscribes
// to its own topic at QoS 1 and disconnects, its session staying behind.
import { randomBytes } from 'node:crypto'
import { connectOptions, MqttConn } from './conn.js'
import { nodeTarget } from './flow.js'
import type { SeedJob, SeedResult } from './jobs.js'
import { ErrorLog, errorMessage, mapPool } from './pool.js'

const SESSION_EXPIRY_S = 3600
const SUBSCRIBE_TIMEOUT_MS = 10_000

export async function runSeed (job: SeedJob): Promise<SeedResult> {
  const runId = randomBytes(3).toString('hex')
  const errors = new ErrorLog()
  const nodes = Array.from({ length: job.target.cluster?.nodes.length ?? 1 }, (_, i) => i)
  const deadline = Date.now() + job.timeoutMs
  let timedOut = false
  const startedAt = process.hrtime.bigint()
  const settled = await mapPool(job.sessions, job.concurrency, async (index) => {
    if (Date.now() > deadline) {
      timedOut = true
      throw new Error('time bound reached before connect')
    }
    const target = nodeTarget(job.target, nodes, index)
    const { conn } = await MqttConn.open({
      ...connectOptions(target, `bench-seed-${runId}-${index}`, 'tcp'),
      clean: false,
      sessionExpiryS: target.protocolVersion === 5 ? SESSION_EXPIRY_S : null
    })
    try {
      const codes = await conn.subscribe([{ topic: `cseed/${runId}/${index}`, qos: 1 }], SUBSCRIBE_TIMEOUT_MS)
      if ((codes[0] ?? 0x80) >= 0x80) throw new Error(`SUBACK 0x${(codes[0] ?? 0x80).toString(16)}`)
      await conn.disconnect()
    } catch (err) {
      conn.destroy()
      throw err
    }
  })
  let seeded = 0
  for (const result of settled) {
    if (result.status === 'fulfilled') seeded++
    else errors.add(errorMessage(result.reason))
  }
  return {
    kind: 'seed',
    seeded,
    failed: job.sessions - seeded,
    wallMs: Number(process.hrtime.bigint() - startedAt) / 1e6,
    timedOut,
    stalled: false,
    errors: errors.list()
  }
}
