/**
 * lib/protocol/broker-side.ts: the stream aedes writes to behaves as the
 * Node Writable it replaces (hand-overs one at a time, cork/uncork,
 * write() false past the high-water mark, 'drain', 'close' after destroy)
 * and as an EventEmitter for the events aedes and Node's finished() use.
 */
import t from 'tap'
import { finished } from 'node:stream'
import { BrokerSide, HIGH_WATER_MARK, type BrokerSideOwner } from '../../lib/protocol/broker-side.js'

/** An owner that records hand-overs and takes them at once unless told to hold them. */
function owner (): BrokerSideOwner & { handed: Buffer[][], hold: boolean, closed: Array<Error | null> } {
  return {
    handed: [],
    hold: false,
    closed: [],
    fromBroker (chunks) { this.handed.push(chunks); return !this.hold },
    brokerClosed (err) { this.closed.push(err) }
  }
}

const tick = async (): Promise<void> => { await new Promise<void>((resolve) => process.nextTick(resolve)) }

t.test('writes are handed over as they come; strings become Buffers; writableLength counts what was not taken', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  t.equal(side.write(Buffer.from([1, 2])), true)
  t.equal(side.write('ab'), true)
  t.same(o.handed, [[Buffer.from([1, 2])], [Buffer.from('ab')]])
  t.equal(side.writableLength, 0, 'taken at once')
  o.hold = true
  side.write(Buffer.from([3]))
  t.equal(side.writableLength, 1, 'held by the owner')
})

t.test('cork/uncork: the pieces of a packet go over in one hand-over, in order', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  side.cork()
  side.write(Buffer.from([0x30]))
  side.write(Buffer.from([2]))
  side.write('xy')
  t.same(o.handed, [], 'nothing while corked')
  side.uncork()
  t.same(o.handed, [[Buffer.from([0x30]), Buffer.from([2]), Buffer.from('xy')]])
  side.uncork()
  t.equal(o.handed.length, 1, 'an extra uncork does nothing')
})

t.test('back-pressure: writes wait behind a held hand-over, write() says false past the high-water mark, one drain once all is taken', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  let drains = 0
  side.on('drain', () => { drains++ })
  o.hold = true
  t.equal(side.write(Buffer.alloc(10)), true)
  t.equal(side.write(Buffer.alloc(10)), true, 'queued behind the held one')
  t.equal(side.write(Buffer.alloc(HIGH_WATER_MARK)), false, 'past the high-water mark')
  t.equal(o.handed.length, 1, 'one hand-over at a time')
  t.equal(side.writableLength, 20 + HIGH_WATER_MARK)
  o.hold = false
  side.taken()
  t.equal(o.handed.length, 2, 'the queue goes over in one hand-over when the owner takes the first')
  t.same(o.handed[1]?.map(b => b.length), [10, HIGH_WATER_MARK])
  t.equal(side.writableLength, 0)
  t.equal(drains, 1, 'drain at once: the owner took it asynchronously')
  side.taken()
  await tick()
  t.equal(drains, 1, 'taken() with nothing handed over does nothing')
})

t.test('a write past the high-water mark taken at once: false, then drain on the next tick', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  let drains = 0
  side.on('drain', () => { drains++ })
  t.equal(side.write(Buffer.alloc(HIGH_WATER_MARK + 1)), false)
  t.equal(drains, 0, 'not synchronously')
  await tick()
  t.equal(drains, 1)
})

t.test('destroy: the owner is told once, close on the next tick, later writes are refused', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  const events: string[] = []
  side.on('close', () => events.push('close'))
  side.on('error', () => events.push('error'))
  const err = new Error('gone')
  side.destroy(err)
  side.destroy()
  t.same(o.closed, [err], 'owner told once, with the error')
  t.equal(side.destroyed, true)
  t.equal(side.writable, false)
  t.same(events, [], 'close comes on the next tick')
  await tick()
  t.same(events, ['close'], 'close, and no error event (as the Duplex did)')
  t.equal(side.write(Buffer.from([1])), false)
  t.same(o.handed, [], 'nothing handed over after destroy')
})

t.test('events: on, once, removeListener (last registration, once wrappers), removeAllListeners, emit', async (t) => {
  const side = new BrokerSide(owner())
  const calls: string[] = []
  const a = (): void => { calls.push('a') }
  const b = function (this: unknown, x: unknown): void { calls.push(`b:${String(x)}:${String(this === side)}`) }
  side.on('end', a).on('end', b).on('end', a)
  t.equal(side.listenerCount('end'), 3)
  side.emit('end', 1)
  t.same(calls, ['a', 'b:1:true', 'a'], 'in order, with the stream as this')
  side.removeListener('end', a)
  t.same(side.listeners('end'), [a, b], 'the last registration removed')
  calls.length = 0
  side.once('drain', a)
  t.same(side.listeners('drain'), [a], 'listeners() shows what was registered')
  side.emit('drain')
  side.emit('drain')
  t.same(calls, ['a'], 'once runs once')
  side.once('drain', a)
  side.removeListener('drain', a)
  t.equal(side.listenerCount('drain'), 0, 'a once() listener is removed by the function given')
  side.on('some-event', a)
  t.equal(side.emit('some-event'), true, 'any event name')
  side.on('readable', () => { side.on('readable', a); calls.push('r') })
  calls.length = 0
  side.emit('readable')
  t.same(calls, ['r'], 'a listener added while emitting runs next time')
  side.removeAllListeners('readable')
  t.equal(side.emit('readable'), false)
  t.throws(() => side.emit('error', new Error('boom')), /boom/, 'an error nobody listens for throws')
  side.removeAllListeners()
  t.equal(side.listenerCount('end') + side.listenerCount('some-event'), 0)
  t.equal(side.setMaxListeners(200), side)
})

t.test("Node's finished() (aedes' watcher) sees a writable stream, and its cleanup leaves no listener", async (t) => {
  const side = new BrokerSide(owner())
  let called = false
  const cleanup = finished(side as never, () => { called = true })
  t.ok(side.listenerCount('close') > 0 && side.listenerCount('finish') > 0, 'it watches close and finish')
  cleanup()
  for (const event of ['end', 'finish', 'error', 'close']) t.equal(side.listenerCount(event), 0, `no '${event}' listener left`)
  await tick()
  t.equal(called, false, 'and it did not fire for a live stream')
})

t.test('writePacket: a PUBACK or a plain PUBLISH in one piece, handed over on the next tick with what else was written in the tick; anything else left to mqtt-packet', async (t) => {
  const o = owner()
  const side = new BrokerSide(o)
  t.equal(side.writePacket({ cmd: 'puback', messageId: 5 }, 4), true)
  t.equal(side.writePacket({ cmd: 'publish', topic: 'a', payload: Buffer.from('p'), qos: 1, dup: true, retain: false, messageId: 6 }, 4), true)
  side.write(Buffer.from([0xd0, 0]))
  t.same(o.handed, [], 'nothing before the next tick')
  await tick()
  t.same(o.handed, [[Buffer.from([0x40, 2, 0, 5]), Buffer.from([0x3a, 6, 0, 1, 0x61, 0, 6, 0x70]), Buffer.from([0xd0, 0])]], 'in order, in one hand-over')
  t.equal(side.writePacket({ cmd: 'publish', topic: 'a', payload: Buffer.from('p'), qos: 1, dup: false, retain: false, messageId: 6, properties: { subscriptionIdentifier: 1 } }, 5), undefined, 'with properties: mqtt-packet\'s')
  t.equal(side.writePacket({ cmd: 'pingresp' }, 4), undefined, 'another packet type: mqtt-packet\'s')
  t.equal(side.writePacket({ cmd: 'puback', messageId: 5 }, 6), undefined, 'a version mqtt-packet would not write')
  o.hold = true
  await tick()
  t.equal(side.writePacket({ cmd: 'publish', topic: 'a', payload: Buffer.alloc(HIGH_WATER_MARK), qos: 1, dup: false, retain: false, messageId: 7 }, 4), false, 'a PUBLISH past the high-water mark: false, as mqtt-packet\'s last write says')
  t.equal(side.writePacket({ cmd: 'puback', messageId: 8 }, 4), true, 'an acknowledgement: true whatever the stream says, as mqtt-packet returns')
})
