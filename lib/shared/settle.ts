/**
 * How a member settles a shared delivery, read from the user properties of
 * its PUBACK (QoS 1) or PUBREC (QoS 2) (MQTT 5 only, spec 3.4.2.2.3,
 * 3.5.2.2.3): `culex-settle: complete` (the default) finishes it;
 * `culex-settle: abandon` puts it back in the group for a later retry,
 * after the group's backoff or `culex-settle-delay` ms. A value that makes
 * no sense is ignored (the delivery completes, or the backoff applies) and
 * reported so it is counted.
 */
export const SETTLE = 'culex-settle'
export const SETTLE_DELAY = 'culex-settle-delay'

export type UserProperties = Record<string, string | string[]>

/** What an acknowledgement from an MQTT 5 member carries besides its Reason Code. */
export interface AckProperties {
  userProperties?: UserProperties | undefined
  reasonString?: string | undefined
}

export type Settle =
  | { kind: 'complete', invalid: string | undefined }
  | { kind: 'abandon', delay: number | undefined, invalid: string | undefined }

const COMPLETE: Settle = { kind: 'complete', invalid: undefined }

/** The last value of a user property (a name may repeat, spec 3.4.2.2.3). */
function last (props: UserProperties, name: string): string | undefined {
  const v = props[name]
  return Array.isArray(v) ? v[v.length - 1] : v
}

export function settleOf (props: UserProperties | undefined): Settle {
  if (props === undefined) return COMPLETE
  const value = last(props, SETTLE)
  if (value === undefined || value === 'complete') return COMPLETE
  if (value !== 'abandon') return { kind: 'complete', invalid: `unknown ${SETTLE} value` }
  const delayText = last(props, SETTLE_DELAY)
  if (delayText === undefined) return { kind: 'abandon', delay: undefined, invalid: undefined }
  const delay = /^\d{1,9}$/.test(delayText) ? Number(delayText) : NaN
  if (Number.isNaN(delay)) return { kind: 'abandon', delay: undefined, invalid: `${SETTLE_DELAY} is not a whole number of ms (0 or more)` }
  return { kind: 'abandon', delay, invalid: undefined }
}
