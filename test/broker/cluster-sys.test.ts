/**
 * RemoteSysValues: another node's `$SYS/brokers/{node}/` values kept per
 * node, passed on only when they change, forgotten when the node leaves.
 */
import t from 'tap'
import { RemoteSysValues } from '../../lib/broker/cluster-sys.js'
import { sysTopicNode } from '../../lib/protocol/topic.js'

t.test('sysTopicNode names the node of a $SYS/brokers/ topic only', async (t) => {
  t.equal(sysTopicNode('$SYS/brokers/a/uptime'), 'a')
  t.equal(sysTopicNode('$SYS/brokers/node-1:x/load/messages/sent/1min'), 'node-1:x')
  t.equal(sysTopicNode('$SYS/brokers//uptime'), undefined, 'an empty node id')
  t.equal(sysTopicNode('$SYS/brokers/a'), undefined, 'no value under the node')
  t.equal(sysTopicNode('$SYS/broker/uptime'), undefined)
  t.equal(sysTopicNode('a/$SYS/brokers/a/uptime'), undefined)
})

t.test('a value is passed on when it is new or changed, not when repeated; an empty one only if the value was held [MQTT-3.3.1-6]', async (t) => {
  const values = new RemoteSysValues()
  t.equal(values.changed('$SYS/brokers/a/version', Buffer.from('culex version 1')), true, 'first')
  t.equal(values.changed('$SYS/brokers/a/version', 'culex version 1'), false, 'repeated (as a string)')
  t.equal(values.changed('$SYS/brokers/a/version', Buffer.from('culex version 2')), true, 'changed')
  t.equal(values.changed('$SYS/brokers/b/version', Buffer.from('culex version 2')), true, 'the same value of another node')
  t.equal(values.changed('$SYS/brokers/a/version', Buffer.alloc(0)), true, 'cleared by its node')
  t.equal(values.changed('$SYS/brokers/a/version', Buffer.alloc(0)), false, 'cleared again: nothing held')
  t.equal(values.changed('$SYS/brokers/a/gone', Buffer.alloc(0)), false, 'never held')
  t.equal(values.changed('plain/topic', Buffer.from('x')), false, 'not a node\'s value')
})

t.test('a node that leaves: its topics, to be cleared, and forgotten', async (t) => {
  const values = new RemoteSysValues()
  values.changed('$SYS/brokers/a/uptime', '1 seconds')
  values.changed('$SYS/brokers/a/clients/connected', '3')
  values.changed('$SYS/brokers/b/uptime', '5 seconds')
  t.same(values.nodeLeft('a').sort(), ['$SYS/brokers/a/clients/connected', '$SYS/brokers/a/uptime'])
  t.same(values.nodeLeft('a'), [], 'once')
  t.equal(values.changed('$SYS/brokers/a/uptime', '1 seconds'), true, 'a node back: its values are new again')
  t.equal(values.changed('$SYS/brokers/b/uptime', '5 seconds'), false, 'the other node\'s values stay')
})
