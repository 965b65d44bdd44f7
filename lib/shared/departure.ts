/**
 * What becomes of a message given to a member that went away (spec 4.8.2):
 * the decisions only, so each case is testable alone; the dispatcher carries
 * them out.
 */

/**
 * - `requeue`: back to the group, not counted as redelivered (it was never sent)
 * - `redeliver`: back to the group, counted as redelivered
 * - `lose`: finished for the group without delivery (counted as dropped)
 * - `keep`: stays with the member, whose session re-sends it when it returns
 */
export type Fate = 'requeue' | 'redeliver' | 'lose' | 'keep'

/**
 * The member's connection closed. `wasSent`: it went out on that connection
 * and was not acknowledged. `sessionEnded`: the session ends with the
 * connection (Session Expiry 0).
 */
export function fateOnDisconnect (qos: number, wasSent: boolean, redelivery: 'immediate' | 'session-end', sessionEnded: boolean): Fate {
  // what it was not sent goes back in any case
  if (!wasSent) return 'requeue'
  // spec 4.8.2: a QoS 1 message MAY go to another member as soon as the connection is lost
  if (qos === 1 && (redelivery === 'immediate' || sessionEnded)) return 'redeliver'
  // spec 4.8.2: a QoS 2 message sent to a session that ended is never sent to another member
  if (qos === 2 && sessionEnded) return 'lose'
  return 'keep'
}

/** The member's persistent session expired or was discarded while it was offline. */
export function fateOnSessionEnd (qos: number): Fate {
  return qos === 1 ? 'redeliver' : 'lose'
}
