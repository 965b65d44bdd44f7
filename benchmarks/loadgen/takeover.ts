// Takeover latency across cluster nodes: one client id, connected on node 0,
// is taken over by a CONNECT on node 1, then back on node 0, and so on. Each
// takeover is timed from the new CONNECT (its TCP connect included) until
// both its CONNACK arrived and the old connection was closed by its node:
// only then does the cluster hold one connection for the id again.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { latencySummary } from '../lib/stats.js'
import { connectOptions, MqttConn } from './conn.js'
import { nodeTarget } from './flow.js'
import type { TakeoverJob, TakeoverResult } from './jobs.js'
import { ErrorLog, errorMessage } from './pool.js'

interface Held {
  readonly conn: MqttConn
  /** Resolves with how the connection ended: a DISCONNECT reason code as `0x8e`, or `closed`. */
  readonly ended: Promise<string>
}

interface Round {
  readonly held: Held | null
  readonly takeoverMs: number | null
  readonly connackMs: number | null
  readonly ending: string | null
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6

async function open (job: TakeoverJob, clientId: string, node: number): Promise<{ held: Held, connackAt: bigint }> {
  let reason: string | null = null
  let resolveEnded: (how: string) => void = () => {}
  const ended = new Promise<string>((resolve) => { resolveEnded = resolve })
  const { conn } = await MqttConn.open(connectOptions(nodeTarget(job.target, [node], 0), clientId, 'tcp'), {
    disconnected: (code) => { reason = `0x${code.toString(16)}` },
    closed: () => resolveEnded(reason ?? 'closed')
  })
  return { held: { conn, ended }, connackAt: process.hrtime.bigint() }
}

/** One takeover of `previous` by a CONNECT on `node`. */
async function takeOver (job: TakeoverJob, clientId: string, node: number, previous: Held | null, errors: ErrorLog): Promise<Round> {
  const startedAt = process.hrtime.bigint()
  let oldClosedAt: bigint | null = null
  let ending: string | null = null
  const oldEnded = previous?.ended.then((how) => { oldClosedAt = process.hrtime.bigint(); ending = how })
  let opened: { held: Held, connackAt: bigint }
  try {
    opened = await open(job, clientId, node)
  } catch (err) {
    errors.add(`CONNECT on node ${node}: ${errorMessage(err)}`)
    previous?.conn.destroy()
    return { held: null, takeoverMs: null, connackMs: null, ending: null }
  }
  if (oldEnded !== undefined) {
    await Promise.race([oldEnded, sleep(job.roundTimeoutMs)])
  }
  const connackMs = ms(startedAt, opened.connackAt)
  if (previous === null) return { held: opened.held, takeoverMs: null, connackMs, ending: null }
  if (oldClosedAt === null) {
    previous.conn.destroy()
    return { held: opened.held, takeoverMs: null, connackMs, ending: null }
  }
  const closedAt: bigint = oldClosedAt
  const doneAt = closedAt > opened.connackAt ? closedAt : opened.connackAt
  return { held: opened.held, takeoverMs: ms(startedAt, doneAt), connackMs, ending }
}

export async function runTakeover (job: TakeoverJob): Promise<TakeoverResult> {
  const nodes = job.target.cluster?.nodes.length ?? 0
  if (nodes < 2) throw new Error('takeover needs a cluster of at least 2 nodes')
  const clientId = `bench-takeover-${randomBytes(3).toString('hex')}`
  const errors = new ErrorLog()
  const deadline = Date.now() + job.timeoutMs
  const takeovers: number[] = []
  const connacks: number[] = []
  const endings: Record<string, number> = {}
  let failed = 0
  let notClosed = 0
  let measured = 0
  let timedOut = false
  let held: Held | null = null
  for (let i = 0; i < job.warmupRounds + job.rounds + 1; i++) {
    if (Date.now() > deadline) { timedOut = true; break }
    const hadPrevious = held !== null
    const round: Round = await takeOver(job, clientId, i % 2, held, errors)
    held = round.held
    // Round 0 only connects, as does a round after a failed CONNECT; the warm-up takeovers follow it.
    if (i <= job.warmupRounds || !hadPrevious) continue
    measured++
    if (round.connackMs === null) { failed++; continue }
    connacks.push(round.connackMs)
    if (round.takeoverMs === null) { notClosed++; continue }
    takeovers.push(round.takeoverMs)
    if (round.ending !== null) endings[round.ending] = (endings[round.ending] ?? 0) + 1
  }
  held?.conn.destroy()
  return {
    kind: 'takeover',
    rounds: measured,
    completed: takeovers.length,
    failed,
    notClosed,
    takeover: latencySummary(takeovers, false),
    connack: latencySummary(connacks, false),
    endings,
    timedOut,
    stalled: false,
    errors: errors.list()
  }
}
