/** A shared group's figures, as lib/metrics exports them (Prometheus and $SYS). */
import type { Group } from './group.js'

/** One group's figures (exported as metrics and $SYS by lib/metrics). */
export interface GroupStats {
  /** `$share/{ShareName}/{filter}` (spec 4.8.2) */
  group: string
  membersOnline: number
  membersOffline: number
  /** messages waiting for a member */
  queued: number
  /** messages given to a member and not yet acknowledged */
  inflight: number
  /** cumulative */
  delivered: number
  /** cumulative: messages sent again after a member left without acknowledging */
  redelivered: number
  /** cumulative: messages a member refused, published to the dead-letter topic */
  deadLettered: number
  /** cumulative: messages discarded (queue full, expired, refused or poison without a dead-letter topic, not readable) */
  dropped: number
  /** cumulative: messages a member handed back (`culex-settle: abandon`) for a later retry */
  abandoned: number
  /** cumulative: deliveries taken back after the group's ackTimeout */
  timedOut: number
  /** cumulative: messages given up after maxDeliveries deliveries (dead-lettered or dropped) */
  poison: number
  /** cumulative: dead-lettered, by reason */
  deadLetteredBy: { rejected: number, 'max-deliveries': number }
  /** cumulative: acknowledgements whose culex-settle properties made no sense (ignored) */
  invalidSettles: number
  /** abandoned messages waiting for their backoff */
  delayed: number
}

export function groupStats (g: Group): GroupStats {
  let online = 0
  let inflight = 0
  for (const m of g.members.values()) if (m.link) online++
  for (let e = g.first; e; e = e.next) if (e.assignedTo !== undefined) inflight++
  return {
    group: g.key,
    membersOnline: online,
    membersOffline: g.members.size - online,
    queued: g.pending.length,
    inflight,
    delivered: g.delivered,
    redelivered: g.redelivered,
    deadLettered: g.deadLettered,
    dropped: g.dropped,
    abandoned: g.abandoned,
    timedOut: g.timedOut,
    poison: g.poison,
    deadLetteredBy: { ...g.deadLetteredBy },
    invalidSettles: g.invalidSettles,
    delayed: g.delayed
  }
}
