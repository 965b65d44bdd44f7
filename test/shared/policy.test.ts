import t from 'tap'
import { DEFAULT_POLICY, backoffDelay, policyOf, ruleFor } from '../../lib/shared/policy.js'
import { strategyResolver } from '../../lib/shared/strategies.js'

t.test('a group no rule matches gets the defaults: maxDeliveries 10, no ack timeout, the global dead-letter topic', async (t) => {
  t.same(policyOf([], 'jobs', undefined), DEFAULT_POLICY)
  t.equal(DEFAULT_POLICY.maxDeliveries, 10)
  t.equal(policyOf([], 'jobs', '$dlq/{group}').deadLetterTopic, '$dlq/{group}')
})

t.test('the first matching rule wins, its missing fields take the defaults', async (t) => {
  const rules = [{ pattern: 'jobs-*', maxDeliveries: 3, ackTimeout: 500 }, { pattern: '*', maxDeliveries: 7, deadLetterTopic: 'dead' }]
  t.same(policyOf(rules, 'jobs-a', 'global'), { maxDeliveries: 3, retryBackoff: DEFAULT_POLICY.retryBackoff, ackTimeout: 500, deadLetterTopic: 'global' })
  t.same(policyOf(rules, 'other', undefined), { maxDeliveries: 7, retryBackoff: DEFAULT_POLICY.retryBackoff, ackTimeout: undefined, deadLetterTopic: 'dead' })
  t.equal(ruleFor(rules, 'jobs.a')?.pattern, '*', 'a dot in a name is no wildcard')
})

t.test('one list for strategies and policies: a rule without a strategy gives the default strategy', async (t) => {
  const strategyOf = strategyResolver('round-robin', [{ pattern: 'jobs', maxDeliveries: 2 } as never, { pattern: '*', strategy: 'random' }])
  t.equal(strategyOf('$share/jobs/a/#'), 'round-robin', 'first match wins for the strategy too')
  t.equal(strategyOf('$share/other/a'), 'random')
})

t.test('backoff: initial x factor^(deliveries - 1), at most max', async (t) => {
  const b = { initial: 100, factor: 2, max: 350 }
  t.same([1, 2, 3, 4].map(n => backoffDelay(b, n)), [100, 200, 350, 350])
  t.equal(backoffDelay({ initial: 0, factor: 3, max: 10 }, 5), 0)
})
