/**
 * Where a group's messages come from when they do not come from aedes on
 * this node: a queue several brokers share (a cluster's stream per group,
 * lib/broker/cluster-shared.ts). The queue feeds the dispatcher with
 * `SharedSubscriptions.enqueue`/`offer` as its members have room
 * (`roomFor`), and learns from the dispatcher's store (`delMessage`) that a
 * message is finished; what the dispatcher held and did not finish goes back
 * to the queue, never lost with a group that left this node.
 */
export interface GroupQueue {
  /** the group exists on this node now: its messages are read for its members here */
  opened (key: string, filter: string): void
  /** its last member here left: `unfinished` are the seqs of the messages it held and did not finish, for another node */
  closed (key: string, unfinished: readonly number[]): void
  /** Does a group (on any node) have a filter matching `topic`? */
  matches (topic: string): boolean
}
