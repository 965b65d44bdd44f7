/**
 * A CONNECT that claims a session whose holder died (its lease is gone): the
 * claiming node does for that one session what the whole-node adoption
 * (adoption.ts) would, at once, instead of waiting for it. Under the dead
 * node's adoption lock (so no adoption runs meanwhile) it claims the id,
 * loads the session and queues into it the entries of the dead node's inbox
 * that match its subscriptions; the id's record names this node from then
 * on, so the adoption that follows skips the session and does not queue
 * them again. A holder whose lease still runs may be alive (a slow node, a
 * short pause): the claim waits for its inbox as before, or for its lease to
 * end, whichever comes first.
 */
import type { Logger } from 'pino'
import { leaseKey, ownerKey } from './keys.js'
import { adoptedKey, adoptionLockKey, type AdoptionHost } from './adoption.js'
import { inboxKey } from './inbox.js'
import { decodeEntry } from './inbox-entry.js'
import { recordMove } from './forward.js'
import type { RedisPair } from './redis.js'
import { Script } from './script.js'
import { DUE_KEY, nodeWillsKey } from './wills.js'

/** milliseconds between two looks at a holder's inbox and lease */
const POLL_MS = 25
/** milliseconds a claim waits at most for the adoption lock (an adoption running) */
const LOCK_WAIT_MS = 15000
/** milliseconds the claim's hold of the lock lasts unless released */
const LOCK_MS = 10000
/** milliseconds a claim waits at most for the dead connection's due will to be published */
const WILL_WAIT_MS = 5000

/**
 * 1 while the dead connection's will has yet to be published at once: still
 * in its node's hash (no survivor moved it yet), or due now. A will whose
 * Will Delay runs on is cancelled by the claim [MQTT-3.1.3-9].
 * KEYS: the dead node's wills hash, the due set. ARGV: client id.
 */
const WILL_DUE = new Script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due then return 0 end
local t = redis.call('TIME')
if tonumber(due) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then return 1 end
return 0
`)

/** KEYS: the lock. ARGV: its token. */
const UNLOCK = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

export type HolderState = 'drained' | 'dead' | 'timeout'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export class OrphanClaims {
  private stopped = false

  constructor (private readonly redis: RedisPair, private readonly nodeId: string, private readonly logger: Logger) {}

  stop (): void {
    this.stopped = true
  }

  /**
   * Resolves 'drained' once `holder`'s inbox holds no entry it holds now,
   * 'dead' once its lease is gone, 'timeout' after `waitMs`.
   */
  async waitForHolder (holder: string, waitMs: number): Promise<HolderState> {
    const commands = this.redis.commands
    const key = inboxKey(holder)
    const deadline = Date.now() + waitMs
    let target: string | undefined
    for (let first = true; ; first = false) {
      const [lease, last] = await Promise.all([
        commands.exists(leaseKey(holder)),
        first ? commands.xrevrange(key, '+', '-', 'COUNT', 1) : Promise.resolve(undefined)
      ])
      if (lease === 0) return 'dead'
      if (first) target = last?.[0]?.[0]
      if (target === undefined || (await commands.xrange(key, '-', target, 'COUNT', 1)).length === 0) return 'drained'
      if (Date.now() >= deadline || this.stopped) return 'timeout'
      await sleep(POLL_MS)
    }
  }

  /**
   * Claims `clientId` from its dead holder `dead` with `claim`, loads its
   * session and queues into it the dead inbox's entries it matches, all
   * under the dead node's adoption lock. Resolves with the claim's epoch,
   * or undefined when the session is no longer the dead node's (adopted
   * meanwhile, or the node is back): the caller claims as usual then.
   */
  async claimFromDead (clientId: string, dead: string, claim: () => Promise<number>, host: AdoptionHost): Promise<number | undefined> {
    const commands = this.redis.commands
    // a will due at once is published before the reconnect: the claim would cancel it (wills.ts TAKE)
    const willDeadline = Date.now() + WILL_WAIT_MS
    while (Number(await WILL_DUE.run(commands, [nodeWillsKey(dead), DUE_KEY], [clientId])) === 1) {
      if (Date.now() >= willDeadline) {
        this.logger.warn({ clientId, node: dead }, 'cluster: the will of a dead node\'s connection was not published in time; the reconnect cancels it')
        break
      }
      await sleep(POLL_MS)
    }
    const lock = adoptionLockKey(dead)
    const token = `${this.nodeId} claim ${clientId}`
    const lockDeadline = Date.now() + LOCK_WAIT_MS
    while (await commands.set(lock, token, 'PX', LOCK_MS, 'NX') === null) {
      if (Date.now() >= lockDeadline || this.stopped) {
        this.logger.warn({ clientId, node: dead }, 'cluster: the adoption of a dead node held its lock too long; claiming without its inbox (messages still there may miss the session)')
        return undefined
      }
      await sleep(POLL_MS)
    }
    try {
      const [lease, adopted, owner] = await Promise.all([
        commands.exists(leaseKey(dead)),
        commands.exists(adoptedKey(dead)),
        commands.hmget(ownerKey(clientId), 'node', 'last')
      ])
      if (lease === 1 || adopted === 1 || (owner[0] ?? owner[1]) !== dead) return undefined
      const epoch = await claim()
      await host.hydrate(clientId, epoch, true)
      const ids = new Set([clientId])
      let taken = 0
      let last = '0-0'
      for (const [id, fields] of await commands.xrangeBuffer(inboxKey(dead), '-', '+')) {
        last = id.toString()
        for (const { packet, forClient, id: messageId } of decodeEntry(Buffer.from(id), fields, this.logger)) {
          if (forClient !== undefined && forClient !== clientId) continue
          // with its id: skipped when the dead node had published it into the session already
          await host.enqueueFor(ids, packet, messageId)
          taken++
        }
      }
      // what reaches the dead inbox after this, the adoption forwards to the session (adoption.ts)
      await recordMove(this.redis, dead, this.nodeId, clientId, last)
      this.logger.info({ clientId, node: dead, entries: taken }, 'cluster: a session of a dead node claimed at once, with the entries of its inbox')
      return epoch
    } finally {
      await UNLOCK.run(commands, [lock], [token]).catch(() => {})
    }
  }
}
