/** lib/shared/filters.ts: one aedes subscription per filter, and its listener's answer to aedes. */
import t from 'tap'
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { FilterSubscriptions, type MqPacket, type Route } from '../../lib/shared/filters.js'
import { Group } from '../../lib/shared/group.js'

type Listener = (packet: MqPacket, cb: () => void) => void

function fakeAedes (): { aedes: Aedes, listeners: Map<string, Listener>, calls: string[] } {
  const listeners = new Map<string, Listener>()
  const calls: string[] = []
  const aedes = {
    subscribe: (filter: string, listener: Listener, done: () => void) => { calls.push(`subscribe ${filter}`); listeners.set(filter, listener); done() },
    unsubscribe: (filter: string, listener: Listener, done: () => void) => {
      calls.push(`unsubscribe ${filter}`)
      if (listeners.get(filter) === listener) listeners.delete(filter)
      done()
    }
  }
  return { aedes: aedes as unknown as Aedes, listeners, calls }
}

function fakeLog (): { log: Logger, errors: unknown[] } {
  const errors: unknown[] = []
  return { log: { error: (obj: unknown) => { errors.push(obj) } } as unknown as Logger, errors }
}

const packet = (topic: string): MqPacket => ({ topic, payload: Buffer.alloc(0), qos: 1 })

t.test('one subscription per filter for all its groups; unsubscribed with the last of them', async (t) => {
  const { aedes, calls } = fakeAedes()
  const filters = new FilterSubscriptions(aedes, () => undefined, fakeLog().log)
  const a = new Group('$share/a/jobs/#', 'jobs/#')
  const b = new Group('$share/b/jobs/#', 'jobs/#')
  const c = new Group('$share/c/other', 'other')
  filters.add(a)
  filters.add(b)
  filters.add(c)
  t.same(calls, ['subscribe jobs/#', 'subscribe other'])
  filters.remove(a)
  t.same(calls.length, 2, 'another group still uses jobs/#')
  filters.remove(b)
  t.same(calls.slice(2), ['unsubscribe jobs/#'])
  filters.remove(b)
  t.equal(calls.length, 3, 'removing a group twice does nothing')
  filters.close()
  t.same(calls.slice(3), ['unsubscribe other'])
})

t.test('matches: is there a subscribed filter for the topic', async (t) => {
  const filters = new FilterSubscriptions(fakeAedes().aedes, () => undefined, fakeLog().log)
  filters.add(new Group('$share/a/jobs/+', 'jobs/+'))
  t.equal(filters.matches('jobs/1'), true)
  t.equal(filters.matches('jobs/1/2'), false)
  t.equal(filters.matches('other'), false)
})

t.test('the listener hands the message to the filter\'s groups and answers aedes when it is durable', async (t) => {
  const { aedes, listeners } = fakeAedes()
  let finishWrite: () => void = () => {}
  const routed: Array<{ groups: string[], topic: string }> = []
  let durable: Promise<void> | undefined
  const route: Route = (groups, p) => { routed.push({ groups: [...groups].map(g => g.key), topic: p.topic }); return durable }
  const filters = new FilterSubscriptions(aedes, route, fakeLog().log)
  filters.add(new Group('$share/a/jobs/#', 'jobs/#'))
  filters.add(new Group('$share/b/jobs/#', 'jobs/#'))
  const listener = listeners.get('jobs/#') as Listener
  let answered = 0
  listener(packet('jobs/1'), () => answered++)
  t.same(routed, [{ groups: ['$share/a/jobs/#', '$share/b/jobs/#'], topic: 'jobs/1' }])
  t.equal(answered, 1, 'already durable: answered at once')
  durable = new Promise(resolve => { finishWrite = resolve })
  listener(packet('jobs/2'), () => answered++)
  await Promise.resolve()
  t.equal(answered, 1, 'not before the write')
  finishWrite()
  await durable
  await Promise.resolve()
  t.equal(answered, 2, 'after the write')
})

t.test('[MQTT-4.7.2-1] a filter starting with a wildcard does not route $ topics', async (t) => {
  const { aedes, listeners } = fakeAedes()
  const routed: string[] = []
  const filters = new FilterSubscriptions(aedes, (_, p) => { routed.push(p.topic); return undefined }, fakeLog().log)
  filters.add(new Group('$share/a/#', '#'))
  filters.add(new Group('$share/a/+/x', '+/x'))
  filters.add(new Group('$share/a/$SYS/#', '$SYS/#'))
  let answered = 0
  listeners.get('#')?.(packet('$SYS/x'), () => answered++)
  listeners.get('+/x')?.(packet('$a/x'), () => answered++)
  listeners.get('$SYS/#')?.(packet('$SYS/x'), () => answered++)
  t.same(routed, ['$SYS/x'], 'only the filter naming $SYS routes it')
  t.equal(answered, 3, 'aedes gets its answer every time')
})

t.test('a failing route is logged and aedes still gets its answer', async (t) => {
  const { aedes, listeners } = fakeAedes()
  const { log, errors } = fakeLog()
  let mode: 'throw' | 'reject' = 'throw'
  const route: Route = () => {
    if (mode === 'throw') throw new Error('sync')
    return Promise.reject(new Error('async'))
  }
  const filters = new FilterSubscriptions(aedes, route, log)
  filters.add(new Group('$share/a/x', 'x'))
  let answered = 0
  listeners.get('x')?.(packet('x'), () => answered++)
  t.equal(answered, 1)
  mode = 'reject'
  listeners.get('x')?.(packet('x'), () => answered++)
  await new Promise(resolve => setImmediate(resolve))
  t.equal(answered, 2)
  t.match(errors, [{ err: { message: 'sync' } }, { err: { message: 'async' } }])
})
