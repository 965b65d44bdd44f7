// lib/protocol/flows/client-writer.ts against a stub host: the write path's
// states (coalescing, a resumed session's CONNACK alone, the gate, the hold)
// and aedes' back-pressure (waiting, shedding), with no socket.
import t from 'tap'
import { setImmediate as turn } from 'node:timers/promises'
import { afterBrokerWrite, endHold, flushAll, HOLD_LIMIT, progress, startGathering, startResumedDrain, write } from '../../../lib/protocol/flows/client-writer.js'
import { StubHost } from '../../helpers/flow-host.js'

/** The flows' stub, with a slow-consumer timeout short enough to wait for. */
function stub (): StubHost {
  const host = new StubHost()
  host.settings.slowConsumerTimeout = 20
  return host
}

const b = (s: string): Buffer => Buffer.from(s)

t.test('writes in one loop turn go out in one socket write, in order', async (t) => {
  const host = stub()
  write(host, [b('a')])
  write(host, [b('b'), b('c')])
  t.equal(host.outMode, 'scheduled')
  t.equal(host.writes.length, 0, 'nothing before the next setImmediate')
  await turn()
  t.same(host.writes.map(String), ['abc'])
  t.equal(host.outMode, 'idle')
  write(host, [])
  t.equal(host.outMode, 'idle', 'an empty write changes nothing')
})

t.test('a resumed session: CONNACK alone, then the queue after two loop turns in one write', async (t) => {
  const host = stub()
  startResumedDrain(host)
  t.equal(host.outMode, 'connack-alone')
  write(host, [b('C')])
  t.same(host.writes.map(String), ['C'], 'the CONNACK goes out at once, alone')
  t.equal(host.outMode, 'gate-holding')
  write(host, [b('1')])
  await turn()
  t.equal(host.writes.length, 1, 'the queue waits behind the gate')
  write(host, [b('2')])
  await turn()
  t.equal(host.outMode, 'holding', 'the gate opened; the queue still gathers')
  t.equal(host.writes.length, 1)
  write(host, [b('3')])
  await turn()
  t.equal(host.writes.length, 1, 'gathering: no write per message')
  endHold(host)
  t.same(host.writes.map(String), ['C', '123'], 'the end of the hold writes the queue at once')
  t.equal(host.outMode, 'idle')
})

t.test('the hold ends before the gate opens: the queue goes out when it opens', async (t) => {
  const host = stub()
  startResumedDrain(host)
  write(host, [b('C')])
  write(host, [b('1')])
  endHold(host)
  t.equal(host.outMode, 'gate')
  write(host, [b('2')])
  await turn()
  t.equal(host.writes.length, 1)
  await turn()
  t.same(host.writes.map(String), ['C', '12'])
  t.equal(host.outMode, 'idle')
})

t.test('HOLD_LIMIT bytes end the hold', async (t) => {
  const host = stub()
  startResumedDrain(host)
  write(host, [b('C')])
  await turn()
  await turn()
  t.equal(host.outMode, 'holding')
  write(host, [Buffer.alloc(HOLD_LIMIT - 1)])
  t.equal(host.outMode, 'holding')
  write(host, [Buffer.alloc(1)])
  t.equal(host.outMode, 'scheduled')
  await turn()
  t.equal(host.writes.length, 2)
  t.equal(host.writes[1]?.length, HOLD_LIMIT)
  t.equal(host.outQueueBytes, 0)
})

t.test('HOLD_LIMIT bytes behind the gate: written when it opens', async (t) => {
  const host = stub()
  startResumedDrain(host)
  write(host, [b('C')])
  write(host, [Buffer.alloc(HOLD_LIMIT)])
  t.equal(host.outMode, 'gate')
  await turn()
  await turn()
  t.equal(host.writes.length, 2)
  t.equal(host.outMode, 'idle')
})

/** n turns of the event loop */
async function turns (n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
}

t.test('a SUBSCRIBE\'s retained messages: the SUBACK and what follows gather while aedes writes, then go out in one write', async (t) => {
  const host = stub()
  write(host, [b('S')])
  startGathering(host)
  t.equal(host.outMode, 'gathering', 'a write already scheduled joins the gathering')
  // aedes writes a retained message every second loop turn
  for (const m of ['1', '2', '3']) {
    await turns(2)
    write(host, [b(m)])
  }
  t.equal(host.writes.length, 0, 'gathering: no write per message')
  await turns(4)
  t.same(host.writes.map(String), ['S123'], 'two quiet looks later, one write')
  t.equal(host.outMode, 'idle')
  write(host, [b('4')])
  await turn()
  t.same(host.writes.map(String), ['S123', '4'], 'then writes go out at the next turn again')
})

t.test('gathering: a granted subscription with nothing retained delays nothing but a few loop turns; a second start joins the first', async (t) => {
  const host = stub()
  startGathering(host)
  write(host, [b('S')])
  startGathering(host)
  await turns(5)
  t.same(host.writes.map(String), ['S'])
  t.equal(host.outMode, 'idle')
})

t.test('gathering: HOLD_LIMIT bytes go out at once, and the gathering goes on', async (t) => {
  const host = stub()
  startGathering(host)
  write(host, [Buffer.alloc(HOLD_LIMIT - 1)])
  t.equal(host.writes.length, 0)
  write(host, [Buffer.alloc(1)])
  t.equal(host.writes.length, 1)
  t.equal(host.writes[0]?.length, HOLD_LIMIT)
  t.equal(host.outQueueBytes, 0)
  t.equal(host.outMode, 'gathering')
  write(host, [b('x')])
  await turns(6)
  t.same(host.writes.map(String).slice(1), ['x'])
})

t.test('gathering: a client that falls behind gets what was gathered at once (back-pressure ends it)', async (t) => {
  const host = stub()
  startGathering(host)
  write(host, [b('S'), b('1')])
  host.queuedOutbound = 1
  t.equal(afterBrokerWrite(host), false, 'aedes waits')
  t.same(host.writes.map(String), ['S1'], 'what aedes was sent reaches the client')
  t.equal(host.outMode, 'idle')
})

t.test('gathering: a resumed session\'s hold is left as it is; closing writes what was gathered', async (t) => {
  const resumed = stub()
  startResumedDrain(resumed)
  startGathering(resumed)
  t.equal(resumed.outMode, 'connack-alone')
  const host = stub()
  startGathering(host)
  write(host, [b('S')])
  flushAll(host)
  t.same(host.writes.map(String), ['S'])
  await turns(5)
  t.equal(host.writes.length, 1, 'the gathering\'s look after close writes nothing more')
})

t.test('closing writes what waits, whatever the phase; a closed socket gets nothing', async (t) => {
  const host = stub()
  startResumedDrain(host)
  write(host, [b('C')])
  write(host, [b('1')])
  flushAll(host)
  t.same(host.writes.map(String), ['C', '1'])
  t.equal(host.outMode, 'idle')
  host.socket.writable = false
  write(host, [b('2')])
  await turn()
  t.equal(host.writes.length, 2)
  t.equal(host.outQueue, undefined, 'dropped, not kept')
})

t.test('back-pressure: aedes waits for a client that is behind, and resumes on progress', async (t) => {
  const host = stub()
  t.equal(afterBrokerWrite(host), true, 'a client that keeps up: aedes goes on')
  host.queuedOutbound = 3
  t.equal(afterBrokerWrite(host), false, 'messages held for the window: aedes waits')
  t.equal(host.pressure, 'waiting')
  t.ok(host.stallTimer, 'the stall timer runs')
  progress(host)
  t.equal(host.pressure, 'waiting', 'still behind')
  host.queuedOutbound = 0
  progress(host)
  t.equal(host.pressure, 'flowing')
  t.equal(host.brokerResumed, 1)
  t.equal(host.stallTimer, undefined)
})

t.test('back-pressure: a full socket buffer waits for drain; a write ends a resumed session\'s hold', async (t) => {
  const host = stub()
  startResumedDrain(host)
  write(host, [b('C')])
  await turn()
  await turn()
  write(host, [b('1')])
  host.socket.writableNeedDrain = true
  t.equal(afterBrokerWrite(host), false)
  t.equal(host.drainAwaited, 1)
  t.same(host.writes.map(String), ['C', '1'], 'what aedes was sent reaches the client')
  host.socket.writableNeedDrain = false
  progress(host)
  t.equal(host.pressure, 'flowing')
})

t.test('back-pressure: a client without progress for slowConsumerTimeout is shed', async (t) => {
  const host = stub()
  host.queuedOutbound = 1
  afterBrokerWrite(host)
  await new Promise(resolve => setTimeout(resolve, 60))
  t.equal(host.pressure, 'shedding')
  t.equal(host.shedCalls, 1, 'the queue limits apply')
  t.equal(host.brokerResumed, 1, 'aedes writes again')
  t.equal(afterBrokerWrite(host), true, 'while shedding, aedes never waits')
  progress(host)
  t.equal(host.pressure, 'shedding', 'still behind')
  host.queuedOutbound = 0
  progress(host)
  t.equal(host.pressure, 'flowing', 'caught up')
})
