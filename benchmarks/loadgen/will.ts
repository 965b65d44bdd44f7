// Wills of a dead node: clients with wills connect to one node, a subscriber
// to their will topics to another; then this process SIGKILLs the clients'
// node (by the pid the harness gave it) and times the wills' arrival. A will
// that does not arrive within the bound is counted missing, not waited for.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IPublishPacket } from 'mqtt-packet'
import { connectOptions, MqttConn } from './conn.js'
import { nodeTarget } from './flow.js'
import type { WillJob, WillResult } from './jobs.js'
import { ErrorLog, errorMessage, mapPool } from './pool.js'

const CONNECT_CONCURRENCY = 20
const SUBSCRIBE_TIMEOUT_MS = 10_000
const CHECK_INTERVAL_MS = 20

/** The will client's index from a will topic `<prefix>/<index>`, or null for anything else. */
export function willIndex (topic: string, prefix: string, clients: number): number | null {
  if (!topic.startsWith(`${prefix}/`)) return null
  const rest = topic.slice(prefix.length + 1)
  if (!/^\d+$/.test(rest)) return null
  const index = Number(rest)
  return index < clients ? index : null
}

export async function runWill (job: WillJob): Promise<WillResult> {
  const cluster = job.target.cluster
  const victim = cluster?.nodes[job.clientNode]
  if (cluster === undefined || victim === undefined || cluster.nodes[job.subscriberNode] === undefined || job.clientNode === job.subscriberNode) {
    throw new Error('the will job needs a cluster, and the subscriber on another node than the will clients')
  }
  const prefix = `cwill-${randomBytes(3).toString('hex')}`
  const errors = new ErrorLog()
  const seen = new Uint8Array(job.clients)
  let delivered = 0
  let duplicated = 0
  let killedAt = 0n
  let firstAt: bigint | null = null
  let lastAt: bigint | null = null

  const { conn: subscriber } = await MqttConn.open(connectOptions(nodeTarget(job.target, [job.subscriberNode], 0), `${prefix}-sub`, 'tcp'), {
    publish: (packet: IPublishPacket) => {
      const index = willIndex(packet.topic, prefix, job.clients)
      if (index === null || killedAt === 0n) return
      if (seen[index]! > 0) { duplicated++; return }
      seen[index] = 1
      delivered++
      lastAt = process.hrtime.bigint()
      firstAt ??= lastAt
    },
    closed: (error) => { if (error !== null) errors.add(`subscriber: ${error.message}`) }
  })
  const codes = await subscriber.subscribe([{ topic: `${prefix}/#`, qos: job.willQos }], SUBSCRIBE_TIMEOUT_MS)
  if ((codes[0] ?? 0x80) >= 0x80) throw new Error(`SUBSCRIBE ${prefix}/# refused: 0x${(codes[0] ?? 0x80).toString(16)}`)

  const settled = await mapPool(job.clients, CONNECT_CONCURRENCY, async (index) => {
    const { conn } = await MqttConn.open({
      ...connectOptions(nodeTarget(job.target, [job.clientNode], 0), `${prefix}-${index}`, 'tcp'),
      will: { topic: `${prefix}/${index}`, payload: Buffer.from(`will ${index}`), qos: job.willQos }
    })
    return conn
  })
  const clients: MqttConn[] = []
  for (const result of settled) {
    if (result.status === 'fulfilled') clients.push(result.value)
    else errors.add(`will client: ${errorMessage(result.reason)}`)
  }
  await sleep(job.beforeKillMs)

  killedAt = process.hrtime.bigint()
  process.kill(victim.pid, 'SIGKILL')
  const deadline = Date.now() + job.timeoutMs
  while (delivered < clients.length && Date.now() < deadline) await sleep(CHECK_INTERVAL_MS)
  // Wills still in flight when everything arrived would be duplicates; give them a moment.
  if (delivered >= clients.length) await sleep(200)

  for (const conn of clients) conn.destroy()
  subscriber.destroy()
  const since = (at: bigint | null): number | null => at === null ? null : Number(at - killedAt) / 1e6
  const complete = clients.length > 0 && delivered >= clients.length
  return {
    kind: 'will',
    clients: job.clients,
    connected: clients.length,
    delivered,
    duplicated,
    firstMs: since(firstAt),
    allMs: complete ? since(lastAt) : null,
    killedPid: victim.pid,
    timedOut: !complete,
    stalled: false,
    errors: errors.list()
  }
}
