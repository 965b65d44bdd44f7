/**
 * The names of the member-selection strategies, apart from the strategies
 * themselves so the configuration schema (a lower layer than shared/) can
 * validate them without importing the dispatcher's side.
 */
export const STRATEGIES = ['round-robin', 'random', 'sticky', 'hash-clientid', 'hash-topic', 'least-inflight'] as const
export type Strategy = (typeof STRATEGIES)[number]
