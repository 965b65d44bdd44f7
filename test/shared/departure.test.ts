/** lib/shared/departure.ts: what becomes of a message given to a member that went away (spec 4.8.2). */
import t from 'tap'
import { fateOnDisconnect, fateOnSessionEnd } from '../../lib/shared/departure.js'

t.test('a message not yet sent on the closed connection goes back to the group, QoS 1 or 2, whatever the settings', async (t) => {
  for (const qos of [1, 2]) {
    for (const redelivery of ['immediate', 'session-end'] as const) {
      for (const sessionEnded of [false, true]) t.equal(fateOnDisconnect(qos, false, redelivery, sessionEnded), 'requeue', `QoS ${qos}, ${redelivery}, session ended ${sessionEnded}`)
    }
  }
})

t.test('spec 4.8.2: a QoS 1 message sent and not acknowledged goes to another member at once (immediate) or when the session ends', async (t) => {
  t.equal(fateOnDisconnect(1, true, 'immediate', false), 'redeliver')
  t.equal(fateOnDisconnect(1, true, 'immediate', true), 'redeliver')
  t.equal(fateOnDisconnect(1, true, 'session-end', true), 'redeliver')
  t.equal(fateOnDisconnect(1, true, 'session-end', false), 'keep', 'the session lives on: it stays with the member')
})

t.test('spec 4.8.2: a QoS 2 message once sent is never sent to another member', async (t) => {
  t.equal(fateOnDisconnect(2, true, 'immediate', false), 'keep')
  t.equal(fateOnDisconnect(2, true, 'session-end', false), 'keep')
  t.equal(fateOnDisconnect(2, true, 'immediate', true), 'lose', 'lost with the session')
  t.equal(fateOnDisconnect(2, true, 'session-end', true), 'lose')
})

t.test('an offline member\'s session ends: QoS 1 goes to another member, QoS 2 is lost (spec 4.8.2)', async (t) => {
  t.equal(fateOnSessionEnd(1), 'redeliver')
  t.equal(fateOnSessionEnd(2), 'lose')
})
