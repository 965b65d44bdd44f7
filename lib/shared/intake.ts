/**
 * Where a group's messages come from when they do not come from aedes on
 * this node: a queue several brokers share (a cluster's stream per group,
 * lib/broker/cluster-shared.ts). The queue feeds the dispatcher with
 * `SharedSubscriptions.enqueue`/`offer` as its members have room
 * (`roomFor`), and learns from the dispatcher's store (`delMessage`) that a
 * message is finished; what the dispatcher held and did not finish goes back
 * to the queue, never lost with a group that left this node.
 */
import { newMember, type Group } from './group.js'
import type { Groups } from './groups.js'
import type { StoredMember, StoredMessage } from './store.js'

export interface GroupQueue {
  /** the group exists on this node now: its messages are read for its members here */
  opened (key: string, filter: string): void
  /** its last member here left: `unfinished` are the seqs of the messages it held and did not finish, for another node */
  closed (key: string, unfinished: readonly number[]): void
  /** Does a group (on any node) have a filter matching `topic`? */
  matches (topic: string): boolean
}

/** Free places of the group's online members here (each counted up to `perMember`), less the messages already waiting for them. */
export function roomOf (group: Group | undefined, perMember: number): number {
  if (group === undefined) return 0
  let room = 0
  for (const m of group.members.values()) if (m.link !== undefined) room += Math.min(perMember, Math.max(0, m.link.room()))
  return room - group.pending.length
}

/** A message the queue read, waiting in the group for a member: its seq. */
export function enqueueIn (group: Group, message: StoredMessage): number {
  const seq = group.nextSeq++
  group.pending.push(group.add(seq, message))
  return seq
}

/** The messages waiting beyond the room of the members here (the last ones), out of the group: their seqs, for the queue. */
export function takeExcess (group: Group | undefined): number[] {
  const excess = -roomOf(group, Infinity)
  if (group === undefined || excess <= 0) return []
  const out: number[] = []
  for (const entry of group.pending.splice(group.pending.length - excess)) {
    if (group.remove(entry)) out.push(entry.seq)
  }
  return out
}

/** A persistent member whose session another node held joins its group here, offline; false when it already is a member. */
export function adoptMember (groups: Groups, stored: StoredMember): boolean {
  const group = groups.ensure(stored.group)
  if (group.members.has(stored.clientId)) return false
  group.members.set(stored.clientId, newMember(stored.clientId, stored.qos, stored.subscriptionIdentifier, stored.retainAsPublished === true, true, undefined, 0))
  return true
}
