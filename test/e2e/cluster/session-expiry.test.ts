/**
 * Session Expiry cluster-wide: the sessions a killed node held (offline, or
 * connected when it died) end once their interval has passed, on exactly one
 * surviving node; a session whose client came back on another node before
 * then is not touched (its epoch moved on); one that never expires stays.
 */
import t from 'tap'
import mqtt, { type MqttClient } from 'mqtt'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { redisCli, startCluster } from '../../helpers/redis.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const exists = (redis: { port: number }, clientId: string): boolean => redisCli(redis, '--raw', 'EXISTS', `culex:session:{${clientId}}`) === '1'

async function sessionPresent (url: string, opts: mqtt.IClientOptions): Promise<{ client: MqttClient, present: boolean }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  const present = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent))
    client.once('error', reject)
  })
  return { client, present }
}

t.test('[MQTT-3.1.2-23] the sessions of a killed node end after their Session Expiry Interval, on one survivor, fenced by epoch', async (t) => {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const v5 = (clientId: string, expiry: number): mqtt.IClientOptions => ({ clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: expiry } })

  // a watcher on each survivor: the will (QoS 1) reaches both, whichever publishes it
  const watchers = await Promise.all([b, c].map(async (node, i) => {
    const watcher = await connectClient(t, node.url, { clientId: `watcher-${i}`, protocolVersion: 5 })
    await watcher.subscribeAsync('will/#', { qos: 1 })
    return collect(watcher)
  }))

  // offline on node A when it dies
  for (const [id, expiry] of [['offline-4s', 4], ['kept', 3600], ['moved', 4]] as const) {
    const client = await connectClient(t, a.url, v5(id, expiry))
    await client.subscribeAsync(`s/${id}`, { qos: 1 })
    await client.endAsync()
  }
  // connected to node A when it dies: its session's clock starts then; its will (delay 30 s) is due when its session ends [MQTT-3.1.3-9]
  const live = await connectClient(t, a.url, { ...v5('live-4s', 4), will: { topic: 'will/live-4s', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 30 } } })
  await live.subscribeAsync('s/live', { qos: 1 })
  const clean = await connectClient(t, a.url, { clientId: 'clean-311', clean: true, protocolVersion: 4 })
  await clean.subscribeAsync('s/clean', { qos: 1 })
  for (const id of ['offline-4s', 'kept', 'moved', 'live-4s', 'clean-311']) t.ok(exists(redis, id), `${id}: its session is in Redis`)

  a.child.kill('SIGKILL')
  const killedAt = Date.now()
  // back on node B before its deadline: a later claim, so the clock started on A no longer applies
  const back = await sessionPresent(b.url, v5('moved', 3600))
  t.equal(back.present, true, 'moved: resumed on node B before its session ended')
  await new Promise<void>((resolve) => { back.client.end(false, {}, () => resolve()) })

  await sleep(Math.max(0, killedAt + 3500 - Date.now()))
  t.ok(exists(redis, 'live-4s'), 'live-4s: 3.5 s after the kill its session is still there (its 4 s start once the lease is gone)')

  await waitFor(() => !exists(redis, 'offline-4s') && !exists(redis, 'live-4s') && !exists(redis, 'clean-311'),
    { timeout: 25000, what: () => `the expired sessions deleted (offline-4s ${exists(redis, 'offline-4s')}, live-4s ${exists(redis, 'live-4s')}, clean-311 ${exists(redis, 'clean-311')})` })
  await waitFor(() => watchers.every((w) => w.messages.length > 0), { timeout: 5000, what: 'the will of live-4s on both survivors' })
  await sleep(300)
  t.strictSame(watchers.map((w) => w.messages.map((m) => m.topic)), [['will/live-4s'], ['will/live-4s']], 'the will of live-4s was published once, when its session ended, before its delay')
  t.ok(exists(redis, 'kept'), 'kept: a session with an hour to go stays')
  t.ok(exists(redis, 'moved'), 'moved: untouched, its epoch had moved on')
  const due = redisCli(redis, '--raw', 'ZRANGE', '{culex}:expiry:due', '0', '-1').split('\n').filter((m) => m !== '').sort()
  const epochOf = (id: string): string => redisCli(redis, '--raw', 'HGET', `{culex}:client:${id}`, 'epoch')
  const current = due.filter((m) => m.split(' ')[0] === epochOf(m.split(' ')[1] ?? ''))
  t.strictSame(current, [`${epochOf('kept')} kept`, `${epochOf('moved')} moved`], 'still due: the hour-long sessions, moved at its claim on node B')
  t.notOk(due.includes('1 moved'), 'the clock started on A for moved was dropped')
  // the survivor that adopted A's sessions (at once once A's lease ended) started kept's clock again at the adoption's epoch
  t.ok(due.every((m) => current.includes(m) || Number(m.split(' ')[0]) < Number(epochOf(m.split(' ')[1] ?? ''))), `any other entry is of an earlier epoch, dropped when due (${due.join(', ')})`)

  const ended = (node: typeof b): string[] => node.logs.flatMap((l) => typeof l.clientId === 'string' && typeof l.msg === 'string' && l.msg.includes('expired [MQTT-3.1.2-23]') ? [l.clientId] : [])
  // the log line follows the script's answer
  await waitFor(() => ended(b).length + ended(c).length >= 3, { timeout: 5000, what: 'the survivors\' log lines of ended sessions' })
  t.strictSame([...ended(b), ...ended(c)].sort(), ['clean-311', 'live-4s', 'offline-4s'], 'each session ended once, by one surviving node')

  for (const [id, expected] of [['offline-4s', false], ['live-4s', false], ['kept', true], ['moved', true]] as const) {
    const again = await sessionPresent(c.url, v5(id, 60))
    t.equal(again.present, expected, `[MQTT-3.2.2-3] ${id}: Session Present ${expected ? 1 : 0} on node C`)
    again.client.end(true)
  }
})
