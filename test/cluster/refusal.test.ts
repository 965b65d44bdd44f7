/**
 * The one mapping from a refused cluster write to the publisher's answer
 * (lib/cluster/refusal.ts): MQTT 5 PUBACK/PUBREC 0x80 with the reason,
 * 3.1.1 closed; any other error is left to the caller.
 */
import t from 'tap'
import { ClusterWriteRefused, clusterWriteRefused, publishRefusal } from '../../lib/cluster/refusal.js'

t.test('Redis\' errors are named by kind, with a reason a client can read', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['OOM command not allowed when used memory > \'maxmemory\'. script: abc', 'out-of-memory', /out of memory \(maxmemory\)/],
    ['READONLY You can\'t write against a read only replica.', 'read-only', /read-only replica/],
    ['MISCONF Redis is configured to save RDB snapshots', 'cannot-persist', /cannot persist/],
    ['Command timed out', 'timeout', /did not answer the write in time/],
    ['Stream isn\'t writeable and enableOfflineQueue options is false', 'unreachable', /cannot be reached/],
    ['Connection is closed.', 'unreachable', /cannot be reached/],
    ['ERR something else', 'other', /refused the write \(ERR something else\)/]
  ]
  for (const [message, kind, reason] of cases) {
    const err = clusterWriteRefused(new Error(message), 'retained message of a/b')
    t.equal(err.kind, kind, message)
    t.match(err.message, /^retained message of a\/b not stored: the cluster's Redis /)
    t.match(err.message, reason)
  }
  const once = clusterWriteRefused(new Error('OOM x'), 'one')
  t.equal(clusterWriteRefused(once, 'two'), once, 'wrapped once')
})

t.test('MQTT 5: PUBACK 0x80 with the reason; 3.1.1: closed; another error: not a refusal', async (t) => {
  const err = clusterWriteRefused(new Error('OOM command not allowed'), 'message')
  t.same(publishRefusal(err, 5), { kind: 'ack', reasonCode: 0x80, reason: err.message })
  t.same(publishRefusal(err, 4), { kind: 'close', reason: err.message })
  t.same(publishRefusal(err, 3), { kind: 'close', reason: err.message })
  t.equal(publishRefusal(new Error('OOM command not allowed'), 5), undefined, 'an unwrapped error is not a refused cluster write')
  t.ok(err instanceof ClusterWriteRefused)
})
