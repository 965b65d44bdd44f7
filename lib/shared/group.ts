/**
 * One shared subscription group (`$share/{name}/{filter}`, spec 4.8.2): its
 * members, its unfinished messages and its counters. Pure bookkeeping; the
 * dispatcher decides what happens to them.
 */
import type { Candidate } from './strategies.js'
import type { StoredMessage } from './store.js'
import { SHARED_BROKER_ID, type MemberLink } from './member-link.js'
import { DEFAULT_POLICY, type GroupPolicy } from './policy.js'

export type DeadLetterReason = 'rejected' | 'max-deliveries'

export interface Member {
  clientId: string
  qos: 0 | 1 | 2
  si: number | undefined
  rap: boolean
  persistent: boolean
  link: MemberLink | undefined
  /** messages assigned to it and not yet acknowledged */
  assigned: number
  /** what selectors see of it, refilled for every choice (no allocation per message) */
  readonly candidate: { clientId: string, room: number, inflight: number }
}

export function newMember (clientId: string, qos: 0 | 1 | 2, si: number | undefined, rap: boolean, persistent: boolean, link: MemberLink | undefined, assigned: number): Member {
  return { clientId, qos, si, rap, persistent, link, assigned, candidate: { clientId, room: 0, inflight: 0 } }
}

export interface Entry {
  readonly group: Group
  seq: number
  message: StoredMessage
  /** in its group's list of unfinished messages */
  live: boolean
  prev: Entry | undefined
  next: Entry | undefined
  assignedTo: string | undefined
  /** the connection it was given to */
  link: MemberLink | undefined
  /** the aedes Client that aedes wrote it to */
  forwardedTo?: object
  delivery: number | undefined
  messageId: number | undefined
  /** its ack timeout while delivered, its backoff while abandoned (never both) */
  timer: NodeJS.Timeout | undefined
  /** a member that held it until its ack timeout: another one gets it, when there is one */
  avoid: string | undefined
}

export class Group {
  readonly members = new Map<string, Member>()
  /** `SHARED_BROKER_ID + key`, built once: every delivery carries it */
  readonly brokerId: string
  /** reused for every choice of a member: see MemberSelector */
  readonly candidates: Candidate[] = []
  readonly selectInput: { group: string, topic: string, publisherId: string | undefined }
  /**
   * Unfinished QoS 1/2 messages, a list linked through the entries: one is
   * added and one removed per message, and a Map doing that churned out
   * hash tables that the young-generation collections had to keep copying.
   */
  private head: Entry | undefined
  private tail: Entry | undefined
  get first (): Entry | undefined { return this.head }
  /** messages waiting for a member, ascending seq */
  pending: Entry[] = []
  nextSeq = 1
  delivered = 0
  redelivered = 0
  deadLettered = 0
  dropped = 0
  /** messages a member handed back for a later retry */
  abandoned = 0
  /** deliveries taken back after the ack timeout */
  timedOut = 0
  /** messages given up after maxDeliveries deliveries (dead-lettered or dropped) */
  poison = 0
  /** dead-lettered, by reason: `rejected` (PUBACK/PUBREC 0x80 or more), `max-deliveries` */
  readonly deadLetteredBy: Record<DeadLetterReason, number> = { rejected: 0, 'max-deliveries': 0 }
  /** acknowledgements whose culex-settle user properties made no sense (ignored) */
  invalidSettles = 0
  /** abandoned messages waiting for their backoff */
  delayed = 0
  policy: GroupPolicy = DEFAULT_POLICY

  constructor (readonly key: string, readonly filter: string) {
    this.brokerId = SHARED_BROKER_ID + key
    this.selectInput = { group: key, topic: '', publisherId: undefined }
  }

  add (seq: number, message: StoredMessage): Entry {
    const entry: Entry = { group: this, seq, message, live: true, prev: this.tail, next: undefined, assignedTo: undefined, link: undefined, delivery: undefined, messageId: undefined, timer: undefined, avoid: undefined }
    if (this.tail) this.tail.next = entry
    else this.head = entry
    this.tail = entry
    return entry
  }

  /** false when it was not (or no longer) in the list */
  remove (entry: Entry): boolean {
    if (!entry.live) return false
    entry.live = false
    if (entry.prev) entry.prev.next = entry.next
    else this.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else this.tail = entry.prev
    entry.prev = undefined
    entry.next = undefined
    return true
  }

  /** A copy of the list, for loops that may finish entries or wait. */
  list (): Entry[] {
    const out: Entry[] = []
    for (let e = this.head; e; e = e.next) out.push(e)
    return out
  }

  requeue (entry: Entry): void {
    // keep seq order, so per-topic order holds for hash-topic groups
    let lo = 0
    let hi = this.pending.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((this.pending[mid] as Entry).seq < entry.seq) lo = mid + 1
      else hi = mid
    }
    this.pending.splice(lo, 0, entry)
  }
}
