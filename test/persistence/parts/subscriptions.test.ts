// The subscription index alone: records per session, the QoS 1/2 trie, keys.
import t from 'tap'
import { MemorySubscriptions } from '../../../lib/persistence/parts/subscriptions.js'
import { disk } from '../../helpers/part-disk.js'

t.test('overlapping filters of one session all match, each with its own options (aedes #543)', async (t) => {
  const d = disk()
  const subs = new MemorySubscriptions(d.io)
  await subs.add('c', [{ topic: 'a/#', qos: 1 }, { topic: 'a/+/x', qos: 2, nl: true }, { topic: 'a/b/x', qos: 1, subscriptionIdentifier: 4 }])
  t.equal(subs.count, 3)
  t.equal(subs.clients, 1)
  t.equal(subs.matchable, 3)
  t.strictSame(subs.byTopic('a/b/x').map((s) => s.topic).sort(), ['a/#', 'a/+/x', 'a/b/x'])
  t.strictSame(subs.byClient('c').find((s) => s.topic === 'a/b/x'), { topic: 'a/b/x', qos: 1, subscriptionIdentifier: 4 })
  t.strictSame(d.record('s:c:a/+/x'), { qos: 2, nl: true }, 'written as s:<cid>:<filter>, undefined options left out')
  t.ok(subs.matches('a/q'))
  t.notOk(subs.matches('b'))
})

t.test('a QoS 0 subscription is stored but not matched; downgrading to QoS 0 leaves the trie', async (t) => {
  const subs = new MemorySubscriptions(disk().io)
  await subs.add('c', [{ topic: 't', qos: 0 }])
  t.equal(subs.count, 1)
  t.equal(subs.matchable, 0)
  t.strictSame(subs.byTopic('t'), [])
  await subs.add('c', [{ topic: 't', qos: 1 }])
  t.equal(subs.matchable, 1)
  t.equal(subs.count, 1, 'the same filter again replaces it')
  await subs.add('c', [{ topic: 't', qos: 0 }])
  t.equal(subs.matchable, 0)
  t.notOk(subs.matches('t'))
})

t.test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $', async (t) => {
  const subs = new MemorySubscriptions(disk().io)
  await subs.add('c', [{ topic: '#', qos: 1 }, { topic: '+/x', qos: 1 }, { topic: '$SYS/#', qos: 1 }])
  t.strictSame(subs.byTopic('$SYS/x').map((s) => s.topic), ['$SYS/#'])
  t.notOk(subs.matches('$other/x'))
  t.ok(subs.matches('$SYS/x'))
  t.equal(subs.byTopic('a/x').length, 2)
})

t.test('remove, clear and clientsWith; a client id named like an Object member is an ordinary id', async (t) => {
  const d = disk()
  const subs = new MemorySubscriptions(d.io)
  await subs.add('__proto__', [{ topic: 'f', qos: 1 }, { topic: 'g', qos: 1 }])
  await subs.add('constructor', [{ topic: 'f', qos: 1 }])
  t.strictSame(subs.clientsWith('f').sort(), ['__proto__', 'constructor'])
  await subs.remove('__proto__', ['f', 'missing'])
  t.equal(subs.count, 2)
  t.strictSame(subs.byTopic('f').map((s) => s.clientId), ['constructor'])
  await subs.clear('constructor')
  t.equal(subs.clients, 1)
  t.equal(subs.clear('constructor'), undefined, 'nothing left to clear')
  t.strictSame(d.keys(), ['s:__proto__:g'])
  subs.restore('r', 'h', { qos: 2 })
  t.strictSame(subs.byTopic('h'), [{ clientId: 'r', topic: 'h', qos: 2, rh: undefined, rap: undefined, nl: undefined }])
})

t.test('countOf: the subscriptions a session stores, QoS 0 ones too, without the list', async (t) => {
  const subs = new MemorySubscriptions(disk().io)
  t.equal(subs.countOf('c'), 0, 'a session with none')
  await subs.add('c', [{ topic: 'a', qos: 0 }, { topic: 'b', qos: 1 }])
  await subs.add('d', [{ topic: 'a', qos: 2 }])
  t.equal(subs.countOf('c'), 2)
  t.equal(subs.countOf('d'), 1)
  await subs.remove('c', ['a'])
  t.equal(subs.countOf('c'), 1)
  await subs.clear('c')
  t.equal(subs.countOf('c'), 0)
})

t.test('the watcher is told each QoS 1/2 subscription entering and leaving the matched ones (a cluster node\'s durable routes)', async (t) => {
  const subs = new MemorySubscriptions(disk().io)
  const seen: string[] = []
  subs.watchMatchable((filter, added) => { seen.push(`${added ? '+' : '-'}${filter}`) })
  await subs.add('c', [{ topic: 'a/#', qos: 1 }, { topic: 'z', qos: 0 }])
  await subs.add('c', [{ topic: 'a/#', qos: 2 }])
  await subs.add('d', [{ topic: 'a/#', qos: 1 }])
  subs.restore('e', 'r/+', { qos: 1 })
  await subs.add('c', [{ topic: 'a/#', qos: 0 }])
  await subs.remove('d', ['a/#', 'none'])
  await subs.add('c', [{ topic: 'a/#', qos: 1 }])
  await subs.clear('c')
  await subs.clear('e')
  t.strictSame(seen, ['+a/#', '+a/#', '+r/+', '-a/#', '-a/#', '+a/#', '-a/#', '-r/+'], 'one + per (session, filter) entering, one - leaving; QoS 0 and a QoS change between 1 and 2 say nothing')
})
