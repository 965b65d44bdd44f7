/**
 * Wills in the sessions a restarted node adopts from its previous run: the
 * cluster publishes them to every node, once each, and the adopted sessions
 * keep no copy in the store for aedes' will sweep to publish again on that
 * node only; a will the store had but the cluster did not (the node died
 * before holding it in Redis) is handed to the cluster at the adoption.
 */
import t from 'tap'
import { connectClient } from '../../helpers/mqtt.js'
import { redisCli, routeReady, startCluster, startNode, waitForLog } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'
import { arrivals, count, watchedNodes } from '../../helpers/wills.js'

t.test('[MQTT-3.1.2-8] [MQTT-3.1.3-9] the wills of a restarted node\'s previous run reach every node once each, also one the store had and Redis\' wills did not', async (t) => {
  const { redis, a, gotB, gotC } = await watchedNodes(t, 1)

  const session = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 60 } }
  await connectClient(t, a.url, { clientId: 'held', ...session, will: { topic: 'wills/held', payload: Buffer.from('held'), qos: 0, retain: false } })
  await connectClient(t, a.url, { clientId: 'lost', ...session, will: { topic: 'wills/lost', payload: Buffer.from('lost'), qos: 1, retain: false, properties: { willDelayInterval: 1 } } })
  await waitFor(() => redisCli(redis, '--raw', 'HLEN', '{culex}:wills:{a}') === '2', { timeout: 3000, what: 'a\'s two wills in Redis' })
  // as if a had died in the moment between the store's write of the will and Redis' record of it
  redisCli(redis, 'HDEL', '{culex}:wills:{a}', 'lost')
  a.child.kill('SIGKILL')
  await a.exit
  const again = await startNode(t, redis, ['--node-id', 'a'])
  await waitForLog(again, (l) => String(l.msg).startsWith('cluster: adopted the sessions and inbox of this node\'s previous run'), 'the adoption of a\'s previous run', 15000)

  await waitFor(() => ['wills/held', 'wills/lost'].every((topic) => count(gotB, topic) > 0 && count(gotC, topic) > 0), { timeout: 8000, what: 'both wills on b and c' })
  await sleep(1500)
  for (const topic of ['wills/held', 'wills/lost']) {
    t.equal(count(gotB, topic), 1, `${topic} reached b once`)
    t.equal(count(gotC, topic), 1, `${topic} reached c once`)
  }
  t.equal(gotB.find((m) => m.topic === 'wills/lost')?.qos, 1, 'the QoS 1 will as QoS 1')
  for (const id of ['held', 'lost']) {
    t.notOk(redisCli(redis, '--raw', 'HKEYS', `culex:session:{${id}}`).split('\n').includes(`w:${id}`), `the adopted session ${id} keeps no will in the store for aedes' will sweep`)
  }
})

t.test('[MQTT-3.1.3-9] a delayed will the store had and Redis\' wills did not is not sent when its client reconnects on another node within the Will Delay', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onC = await connectClient(t, c.url, { clientId: 'watch-c', protocolVersion: 5 })
  const gotC = arrivals(onC)
  await onC.subscribeAsync('wills/#', { qos: 1 })
  const onA = await connectClient(t, a.url, { clientId: 'probe-a', protocolVersion: 5 })
  await routeReady(onA, 'wills/probe-a', () => count(gotC, 'wills/probe-a') > 0)

  const opts = { clientId: 'back', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 60 } }
  await connectClient(t, a.url, { ...opts, will: { topic: 'wills/back', payload: Buffer.from('back'), qos: 1, retain: false, properties: { willDelayInterval: 8 } } })
  await waitFor(() => redisCli(redis, '--raw', 'HEXISTS', '{culex}:wills:{a}', 'back') === '1', { timeout: 3000, what: 'the will in Redis' })
  // as if a had died in the moment between the store's write of the will and Redis' record of it
  redisCli(redis, 'HDEL', '{culex}:wills:{a}', 'back')
  const killedAt = Date.now()
  a.child.kill('SIGKILL')
  await a.exit
  // the client comes back once a's lease is gone: its CONNECT claims the dead node's session (orphans.ts)
  await waitFor(() => redisCli(redis, '--raw', 'EXISTS', '{culex}:node:a') === '0', { timeout: 8000, what: 'a\'s lease gone' })
  const back = await connectClient(t, b.url, opts)
  t.ok(Date.now() - killedAt < 7000, `reconnected within the Will Delay (${Date.now() - killedAt} ms after the kill)`)
  await waitForLog(b, (l) => String(l.msg).startsWith('cluster: a session of a dead node claimed at once'), 'the claim of a\'s session', 8000)
  await sleep(Math.max(0, killedAt + 8000 + 3000 - Date.now()))
  t.equal(count(gotC, 'wills/back'), 0, 'the will was not sent: its client came back within the delay')
  t.notOk(redisCli(redis, '--raw', 'HKEYS', 'culex:session:{back}').split('\n').includes('w:back'), 'the session keeps no will in the store for aedes\' will sweep')
  back.end(true)
})
