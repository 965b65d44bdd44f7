/**
 * Worker pools of real clients on a shared subscription: mosquitto_sub
 * (MQTT 5) and Paho (MQTT 5 and 3.1.1) workers on `$share/workers/jobs/#`,
 * fed QoS 1 jobs. Like most worker clients they send PINGREQ only when they
 * have sent nothing for a keep-alive period, and a busy worker always has a
 * PUBACK to send; culex sends these clean-session members their jobs itself
 * (lib/shared, the gateway's `sendShared`) and takes their PUBACKs itself.
 */
import t from 'tap'
import type { Client } from 'aedes'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub, type SubProcess } from '../../helpers/mosquitto.js'
import { findPython, pahoWorker } from '../../helpers/paho.js'
import { waitForMembers, shareId } from '../../helpers/share.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const FILTER = '$share/workers/jobs/#'

t.test('[MQTT-3.1.2-22] workers that send nothing but PUBACKs stay connected well past 1.5 x keep-alive, and get every job once', async (t) => {
  if (!await hasMosquittoClients()) { t.fail('mosquitto-clients is not installed'); return }
  const python = await findPython()
  if (python === undefined) { t.fail('python3-paho-mqtt is not installed'); return }
  const server = await startTestServer(t)
  const port = tcpPort(server)
  const dropped: string[] = []
  server.broker.aedes.on('keepaliveTimeout', (client: Client) => { dropped.push(client.id) })
  const gone: string[] = []
  server.broker.aedes.on('clientDisconnect', (client: Client) => { gone.push(client.id) })

  // mosquitto_sub takes keep-alives of 5 s or more: dropped at 7.5 s before the fix; jobs run for 12 s
  const JOBS = 120
  const workers: Array<{ name: string, proc: SubProcess, messages: () => string[] }> = []
  for (let i = 0; i < 3; i++) {
    const id = shareId(`mosq-worker-${i}`)
    const proc = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(port), '-V', '5', '-k', '5', '-q', '1', '-i', id, '-t', FILTER])
    workers.push({ name: id, proc, messages: () => proc.lines })
  }
  for (const version of [5, 4] as const) {
    const id = shareId(`paho-worker-v${version}`)
    // Paho takes any keep-alive: 2 s, so it would be dropped at 3 s
    const proc = pahoWorker(t, python, { port, version, clientId: id, keepalive: 2, seconds: 20, filter: FILTER })
    workers.push({ name: id, proc, messages: () => proc.lines.filter(l => l.startsWith('message ')).map(l => l.slice(8)) })
  }
  await waitForMembers(server, FILTER, workers.length, 10000)

  const publisher = await connectClient(t, tcpUrl(server), { keepalive: 30 })
  const started = Date.now()
  for (let i = 0; i < JOBS; i++) {
    // 10 jobs a second
    const due = started + i * 100
    const wait = due - Date.now()
    if (wait > 0) await sleep(wait)
    await publisher.publishAsync(`jobs/batch/${i}`, String(i), { qos: 1 })
  }
  t.ok(Date.now() - started >= 11500, `jobs ran for ${Date.now() - started} ms: more than twice the longest 1.5 x keep-alive`)

  const received = (): string[] => workers.flatMap(w => w.messages())
  await waitFor(() => received().length >= JOBS, { timeout: 10000, what: () => `${received().length} of ${JOBS} jobs received` })
  t.same(dropped, [], 'no worker was dropped for keep-alive')
  t.same(gone.filter(id => workers.some(w => w.name === id)), [], 'no worker disconnected')
  for (const w of workers) {
    t.ok(w.messages().length > 0, `${w.name} worked: ${w.messages().length} jobs`)
    t.equal(w.proc.child.exitCode, null, `${w.name} is still running`)
    t.notOk(w.proc.lines.some(l => l.startsWith('disconnected')), `${w.name} saw no disconnection`)
  }
  const all = received().map(Number).sort((a, b) => a - b)
  t.same(all, Array.from({ length: JOBS }, (_, i) => i), '[MQTT-4.8.2-2] every job once, to one worker')
})
