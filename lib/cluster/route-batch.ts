/**
 * The inbox writes of QoS 1/2 messages (inbox.ts), coalesced: every message
 * routed in one turn of the event loop goes to Redis in ONE call of the
 * ROUTE script, which adds ONE stream entry per target inbox holding all of
 * that inbox's messages of the call, in the order they were routed, packed
 * (inbox-entry.ts: the groups' strings as they came, and the call's id, from
 * which a reader knows each message's id: the same in every inbox it went
 * to, so that a node that gets it again, forwarded for a session that moved,
 * knows whether that session had it: forward.ts). Each message's
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
import { CALL_FIELD, FIRST_FIELD, PACKED_FIELD, packMessages } from './inbox-entry.js'
import { CLUSTER_PREFIX, NODES_KEY } from './keys.js'

/**
 * ARGV, per group of consecutive messages to the same nodes: how many nodes
 * (k), the k nodes, the number in the call of the group's first message,
 * then the group's messages as one string, each message preceded by its
 * length (4 bytes, big-endian): a few arguments per call instead of one per
 * message (ioredis' cost per argument was a tenth of a publishing node's
 * time); last, the call's id, which the n-th message of the call gets as its
 * own followed by `.n`. Each node's inbox, or, when a survivor adopted that
 * node (adoption.ts), the survivor's (followed up to 3 times), looked up
 * once per node and call; each inbox once per group. One XADD per inbox:
 * a packed entry (inbox-entry.ts), `i` the call's id, then `n` and `p` (the
 * group's number and string as they came) per group it gets; at most
 * 2 + 4 × MAX_MESSAGES values, within Lua's unpack bound (about 8000).
 * Returns the entries added. Redis checks "out of memory" at a script's
 * first write and lets a script that has written go on, so a refusal comes
 * before any XADD: all or none. The keys are computed here: every inbox and
 * adoption marker shares the `{culex}` hash tag with the key the call names
 * (KEYS[1], the live set, unused: it routes the call to that slot's master
 * on a Redis Cluster, which lets a script touch undeclared keys of its slot).
 */
export const ROUTE = new Script(`
local inboxOf = {}
local order = {}
local fields = {}
local callId = ARGV[#ARGV]
local i = 1
while i < #ARGV do
  local k = tonumber(ARGV[i])
  local first = ARGV[i + k + 1]
  local blob = ARGV[i + k + 2]
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
        f = { '${CALL_FIELD}', callId }
        fields[inbox] = f
        order[#order + 1] = inbox
      end
      f[#f + 1] = '${FIRST_FIELD}'
      f[#f + 1] = first
      f[#f + 1] = '${PACKED_FIELD}'
      f[#f + 1] = blob
    end
  end
  i = i + k + 3
end
for _, inbox in ipairs(order) do
  redis.call('XADD', '${CLUSTER_PREFIX}inbox:{' .. inbox .. '}', '*', unpack(fields[inbox]))
end
return #order
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
  let first = 1
  for (const group of groups) {
    args.push(group.nodes.length, ...group.nodes, first, packMessages(group.messages, group.bytes))
    first += group.messages.length
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
