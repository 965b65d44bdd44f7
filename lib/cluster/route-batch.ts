/**
 * The inbox writes of QoS 1/2 messages (inbox.ts), coalesced: every message
 * routed in one turn of the event loop goes to Redis in ONE call of the
 * ROUTE script, which adds ONE stream entry per target inbox holding all of
 * that inbox's messages of the call, in the order they were routed (a field
 * `m` per message, then a field `u` with its id: the same in every inbox it
 * went to, so that a node that gets it again, forwarded for a session that
 * moved, knows whether that session had it: forward.ts). Each message's
 * promise settles when that call answers: resolved once Redis holds the
 * whole call, rejected (the publisher's 0x80) when Redis refused it, and
 * then none of its messages reached any inbox (a script without a write
 * flag stops at its first refused write, before any write: below). Per node, with 10 publishers and 100 messages in flight
 * each, this turned ~3 Redis commands and one ioredis command per message
 * into ~3 per call of about 200 messages (lib/cluster/README.md, "QoS 1/2:
 * what a message costs").
 */
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { Script, type ScriptArg } from './script.js'
import { ID_FIELD } from './forward.js'
import { CLUSTER_PREFIX, NODES_KEY } from './keys.js'

/** messages in one XADD at most (Lua's unpack is bounded by its C stack, about 8000 values) */
const CHUNK = 500

/**
 * ARGV, per group of consecutive messages to the same nodes: how many nodes
 * (k), the k nodes, then the group's messages as one string, each message
 * preceded by its length (4 bytes, big-endian): a few arguments per call
 * instead of one per message (ioredis' cost per argument was a tenth of a
 * publishing node's time); last, the call's id, which the n-th message of
 * the call gets as its own followed by `.n`. Each node's inbox, or, when a
 * survivor adopted that node (adoption.ts), the survivor's (followed up to
 * 3 times), looked up once per node and call; each inbox once per message. One XADD per
 * inbox and at most CHUNK messages (Lua's unpack has a bound); returns the
 * entries added. Redis checks "out of memory" at a script's first write
 * and lets a script that has written go on, so a refusal comes before any
 * XADD: all or none. The keys are computed here: every inbox and adoption
 * marker shares the `{culex}` hash tag with the key the call names
 * (KEYS[1], the live set, unused: it routes the call to that slot's master
 * on a Redis Cluster, which lets a script touch undeclared keys of its slot).
 */
export const ROUTE = new Script(`
local inboxOf = {}
local order = {}
local fields = {}
local callId = ARGV[#ARGV]
local n = 0
local i = 1
while i < #ARGV do
  local k = tonumber(ARGV[i])
  local targets = {}
  local seen = {}
  for j = 1, k do
    local to = ARGV[i + j]
    local inbox = inboxOf[to]
    if not inbox then
      inbox = to
      for _ = 1, 3 do
        local by = redis.call('GET', '${CLUSTER_PREFIX}adopted:{' .. inbox .. '}')
        if not by then break end
        inbox = by
      end
      inboxOf[to] = inbox
    end
    if not seen[inbox] then
      seen[inbox] = true
      local f = fields[inbox]
      if not f then
        f = {}
        fields[inbox] = f
        order[#order + 1] = inbox
      end
      targets[#targets + 1] = f
    end
  end
  local blob = ARGV[i + k + 1]
  local at = 1
  while at <= #blob do
    local length = struct.unpack('>I4', blob, at)
    local message = string.sub(blob, at + 4, at + 3 + length)
    at = at + 4 + length
    n = n + 1
    local id = callId .. '.' .. n
    for _, f in ipairs(targets) do
      f[#f + 1] = 'm'
      f[#f + 1] = message
      f[#f + 1] = '${ID_FIELD}'
      f[#f + 1] = id
    end
  end
  i = i + k + 2
end
local added = 0
for _, inbox in ipairs(order) do
  local f = fields[inbox]
  for from = 1, #f, ${4 * CHUNK} do
    redis.call('XADD', '${CLUSTER_PREFIX}inbox:{' .. inbox .. '}', '*', unpack(f, from, math.min(from + ${4 * CHUNK} - 1, #f)))
    added = added + 1
  end
end
return added
`)

/** messages in one call at most: a larger turn becomes several calls, in order */
export const MAX_MESSAGES = 500
/** bytes of messages in one call at most (a single larger message goes alone) */
export const MAX_BYTES = 1 << 20

/** Sends the ROUTE calls: the command connection (a test may stand in). */
export type RouteCall = (args: ScriptArg[]) => Promise<unknown>

export const routeCall = (redis: Redis): RouteCall => async (args) => await ROUTE.run(redis, [NODES_KEY], args)

interface Waiter {
  resolve: (id: string) => void
  reject: (err: unknown) => void
}

/** consecutive messages of a call to the same nodes */
interface Group {
  readonly key: string
  readonly nodes: readonly string[]
  readonly messages: Buffer[]
  bytes: number
}

/** a prefix unique to this process, and a counter over its batchers (nodes in one process): the ids of its calls (ROUTE) */
const ID_PREFIX = randomBytes(9).toString('base64url')
let callCounter = 0

/** The ROUTE arguments of a call's groups and its id (see ROUTE). */
export function routeArgs (groups: readonly Group[], callId: string): ScriptArg[] {
  const args: ScriptArg[] = []
  for (const group of groups) {
    const blob = Buffer.allocUnsafe(group.bytes + 4 * group.messages.length)
    let at = 0
    // byte stores and TypedArray set: Buffer's writeUInt32BE and copy (argument checks per call) were a few per cent of a publishing node
    for (const message of group.messages) {
      const length = message.length
      blob[at] = length >>> 24
      blob[at + 1] = (length >>> 16) & 0xff
      blob[at + 2] = (length >>> 8) & 0xff
      blob[at + 3] = length & 0xff
      blob.set(message, at + 4)
      at += 4 + length
    }
    args.push(group.nodes.length, ...group.nodes, blob)
  }
  args.push(callId)
  return args
}

interface Targets {
  readonly of: Iterable<string>
  readonly size: number
  readonly nodes: readonly string[]
  readonly key: string
}

export class RouteBatcher {
  private lastTargets: Targets | undefined
  private groups: Group[] = []
  private waiters: Waiter[] = []
  private bytes = 0
  private scheduled = false
  /** calls made, for tests and figures */
  calls = 0

  constructor (private readonly call: RouteCall) {}

  /**
   * Queues `message` for the inboxes of `nodes`; resolves with its id (as
   * ROUTE gave it; '' when sent nowhere) once the call carrying it was
   * answered by Redis, rejects with Redis' error otherwise.
   * Calls leave in the order of their messages, on one connection: Redis
   * runs them in that order, so a publisher's messages keep theirs.
   */
  send (nodes: Iterable<string>, message: Buffer): Promise<string> {
    const to = this.targetsOf(nodes)
    if (to.nodes.length === 0) return Promise.resolve('')
    if (this.waiters.length >= MAX_MESSAGES || (this.waiters.length > 0 && this.bytes + message.length > MAX_BYTES)) this.flush()
    return new Promise<string>((resolve, reject) => {
      const key = to.key
      let group = this.groups[this.groups.length - 1]
      if (group?.key !== key) this.groups.push(group = { key, nodes: to.nodes, messages: [], bytes: 0 })
      group.messages.push(message)
      group.bytes += message.length
      this.waiters.push({ resolve, reject })
      this.bytes += message.length
      if (!this.scheduled) {
        this.scheduled = true
        // after the I/O of this turn: every socket read in it (each publisher's burst) joins the call
        setImmediate(this.flushScheduled)
      }
    })
  }

  /**
   * The nodes as an array and a group key. The route table hands out the
   * same Set for a topic until a route changes (routes.ts durableNodes):
   * the last one's array and key are kept instead of made per message. A
   * Set is read again whenever its size changed (a caller may add to its own).
   */
  private targetsOf (nodes: Iterable<string>): Targets {
    const last = this.lastTargets
    if (last !== undefined && last.of === nodes && last.size === (nodes as ReadonlySet<string>).size) return last
    const array = [...nodes]
    const targets: Targets = { of: nodes, size: nodes instanceof Set ? nodes.size : -1, nodes: array, key: array.length === 1 ? array[0] as string : array.join('\n') }
    if (nodes instanceof Set) this.lastTargets = targets
    return targets
  }

  private readonly flushScheduled = (): void => {
    this.scheduled = false
    this.flush()
  }

  private flush (): void {
    const waiters = this.waiters
    if (waiters.length === 0) return
    const callId = `${ID_PREFIX}${(callCounter++).toString(36)}`
    const args = routeArgs(this.groups, callId)
    this.calls++
    this.groups = []
    this.waiters = []
    this.bytes = 0
    this.call(args).then(() => {
      // the n-th message of the call, in the order of the waiters (ROUTE)
      for (let n = 0; n < waiters.length; n++) (waiters[n] as Waiter).resolve(`${callId}.${n + 1}`)
    }, (err: unknown) => {
      for (const w of waiters) w.reject(err)
    })
  }
}
