import t from 'tap'
import { settleOf } from '../../lib/shared/settle.js'

t.test('no culex-settle property, or complete: the delivery completes', async (t) => {
  t.same(settleOf(undefined), { kind: 'complete', invalid: undefined })
  t.same(settleOf({ other: 'x' }), { kind: 'complete', invalid: undefined })
  t.same(settleOf({ 'culex-settle': 'complete' }), { kind: 'complete', invalid: undefined })
})

t.test('abandon, with an optional delay in ms (the last value of a repeated property)', async (t) => {
  t.same(settleOf({ 'culex-settle': 'abandon' }), { kind: 'abandon', delay: undefined, invalid: undefined })
  t.same(settleOf({ 'culex-settle': 'abandon', 'culex-settle-delay': '250' }), { kind: 'abandon', delay: 250, invalid: undefined })
  t.same(settleOf({ 'culex-settle': ['complete', 'abandon'], 'culex-settle-delay': ['5', '0'] }), { kind: 'abandon', delay: 0, invalid: undefined })
})

t.test('bad input is ignored and reported: an unknown value completes, a negative or non-numeric delay falls back to the backoff', async (t) => {
  t.match(settleOf({ 'culex-settle': 'retry' }), { kind: 'complete', invalid: /unknown culex-settle value/ })
  t.match(settleOf({ 'culex-settle': 'abandon', 'culex-settle-delay': '-5' }), { kind: 'abandon', delay: undefined, invalid: /culex-settle-delay/ })
  t.match(settleOf({ 'culex-settle': 'abandon', 'culex-settle-delay': '1.5' }), { kind: 'abandon', delay: undefined, invalid: /culex-settle-delay/ })
})
