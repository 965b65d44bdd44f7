/**
 * A shared group's queue policy: how often one message may be delivered
 * before it is treated as poison, how long an abandoned message waits before
 * it is offered again, how long a member may hold a QoS 1 delivery without
 * acknowledging it, and where dead letters go. One list of rules, matched by
 * group name like the strategies (strategies.ts), configures both.
 */
import type { Strategy } from './strategy-names.js'

export interface RetryBackoff {
  /** ms before the first retry */
  initial: number
  /** each retry waits this many times longer than the one before */
  factor: number
  /** ms, the longest wait */
  max: number
}

export interface GroupPolicy {
  /** deliveries of one message at most; a message delivered this often is poison */
  maxDeliveries: number
  retryBackoff: RetryBackoff
  /** ms a connected member may hold a QoS 1 delivery unacknowledged; undefined = no limit */
  ackTimeout: number | undefined
  /** e.g. `$dlq/{group}/{topic}`; undefined = refused and poison messages are dropped (and counted) */
  deadLetterTopic: string | undefined
}

/** One entry of the `sharedGroups` setting: a group name pattern (`*` = any characters) and what it sets. */
export interface GroupRule {
  pattern: string
  strategy?: Strategy | undefined
  maxDeliveries?: number | undefined
  retryBackoff?: RetryBackoff | undefined
  ackTimeout?: number | undefined
  deadLetterTopic?: string | undefined
}

/** What a group that no rule matches gets: ten deliveries at most, protecting a pool that configured nothing. */
export const DEFAULT_POLICY: GroupPolicy = {
  maxDeliveries: 10,
  retryBackoff: { initial: 1000, factor: 2, max: 60000 },
  ackTimeout: undefined,
  deadLetterTopic: undefined
}

/** `jobs-*` -> /^jobs-.*$/ */
export function patternRegExp (pattern: string): RegExp {
  return new RegExp('^' + pattern.split('*').map(s => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
}

/** The first rule whose pattern matches the group's name, if any. */
export function ruleFor<R extends { pattern: string }> (rules: readonly R[], name: string): R | undefined {
  return rules.find(r => patternRegExp(r.pattern).test(name))
}

/** The policy of a group named `name`: its first matching rule's fields over the defaults. */
export function policyOf (rules: readonly GroupRule[], name: string, defaultDeadLetterTopic: string | undefined): GroupPolicy {
  const rule = ruleFor(rules, name)
  return {
    maxDeliveries: rule?.maxDeliveries ?? DEFAULT_POLICY.maxDeliveries,
    retryBackoff: rule?.retryBackoff ?? DEFAULT_POLICY.retryBackoff,
    ackTimeout: rule?.ackTimeout ?? DEFAULT_POLICY.ackTimeout,
    deadLetterTopic: rule?.deadLetterTopic ?? defaultDeadLetterTopic
  }
}

/** ms an abandoned message waits after its `deliveries`-th delivery: initial * factor^(deliveries - 1), at most max. */
export function backoffDelay (b: RetryBackoff, deliveries: number): number {
  return Math.min(b.max, b.initial * Math.pow(b.factor, Math.max(0, deliveries - 1)))
}
