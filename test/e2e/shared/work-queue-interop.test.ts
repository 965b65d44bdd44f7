/**
 * Real worker clients in a work-queue group (README "Work queues"):
 * mosquitto_sub -V 5 and Paho (MQTT 5 and 3.1.1) workers cannot abandon, but
 * the group's policy applies to them: a job a stuck member held past the
 * ack timeout reaches them as a new delivery with its count, and a poison
 * job is dead-lettered after maxDeliveries.
 */
import t from 'tap'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { collect, connectClient } from '../../helpers/mqtt.js'
import { hasMosquittoClients, mosquittoSub, type SubProcess } from '../../helpers/mosquitto.js'
import { findPython, pahoWorker } from '../../helpers/paho.js'
import { nextPublishes, takePublishes, rawMember, rawSubscribe, shareId, waitForGroup, waitForMembers } from '../../helpers/share.js'
import { waitFor } from '../../helpers/wait.js'

const KEY = '$share/jobs/jobs/#'

t.test('mosquitto_sub -V 5 and Paho workers in a group with an ack timeout: jobs a stuck member held reach them with culex-delivery-count 2, each job completes once', async (t) => {
  if (!await hasMosquittoClients()) { t.fail('mosquitto-clients is not installed'); return }
  const python = await findPython()
  if (python === undefined) { t.fail('python3-paho-mqtt is not installed'); return }
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', ackTimeout: 400, maxDeliveries: 3 }] })
  const port = tcpPort(server)
  const stuck = await rawMember(t, port, { clientId: shareId('a-stuck') })
  await rawSubscribe(stuck, [{ topic: KEY, qos: 1 }])
  const workers: Array<{ name: string, proc: SubProcess, jobs: () => string[], counted: () => string[] }> = []
  const mosq = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(port), '-V', '5', '-q', '1', '-i', shareId('b-mosq'), '-t', KEY, '-F', '%p %P'])
  workers.push({
    name: 'mosquitto_sub',
    proc: mosq,
    jobs: () => mosq.lines.map(l => l.split(' ')[0] as string),
    counted: () => mosq.lines.filter(l => l.includes('culex-delivery-count:2')).map(l => l.split(' ')[0] as string)
  })
  for (const version of [5, 4] as const) {
    const proc = pahoWorker(t, python, { port, version, clientId: shareId(`c-paho-v${version}`), keepalive: 30, seconds: 20, filter: KEY })
    workers.push({
      name: `paho v${version}`,
      proc,
      jobs: () => proc.lines.filter(l => l.startsWith('message ')).map(l => l.slice(8)),
      counted: () => proc.lines.filter(l => l.startsWith('count ') && l.endsWith(' 2')).map(l => l.split(' ')[1] as string)
    })
  }
  await waitForMembers(server, KEY, 4, 10000)
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  const JOBS = 24
  for (let i = 0; i < JOBS; i++) await pub.publishAsync(`jobs/${i}`, `job${i}`, { qos: 1 })
  const held = await nextPublishes(stuck, 1, 3000)
  const all = (): string[] => workers.flatMap(w => w.jobs())
  await waitFor(() => all().length >= JOBS, { timeout: 8000, what: () => `${all().length} of ${JOBS} jobs at the workers` })
  t.same(all().sort(), Array.from({ length: JOBS }, (_, i) => `job${i}`).sort(), 'every job once, the stuck member\'s ones included')
  const s = await waitForGroup(server, KEY, s => s?.delivered === JOBS && s.inflight === 0, 'all completed')
  t.ok((s?.timedOut ?? 0) >= held.length, `timed out at the stuck member: ${s?.timedOut}`)
  held.push(...takePublishes(stuck))
  const countedAtV5 = [...workers[0]?.counted() ?? [], ...workers[1]?.counted() ?? []]
  const movedToV5 = held.map(p => p.payload.toString()).filter(job => workers.slice(0, 2).some(w => w.jobs().includes(job)))
  t.same(countedAtV5.sort(), movedToV5.sort(), 'MQTT 5 workers (mosquitto_sub, Paho) see culex-delivery-count 2 on the moved jobs')
  t.same(workers[2]?.counted(), [], 'the 3.1.1 worker sees no count (no properties in 3.1.1)')
})

t.test('a poison job with mosquitto_sub and Paho workers in the group: after maxDeliveries it is dead-lettered, never handed to them', async (t) => {
  if (!await hasMosquittoClients()) { t.fail('mosquitto-clients is not installed'); return }
  const python = await findPython()
  if (python === undefined) { t.fail('python3-paho-mqtt is not installed'); return }
  const server = await startTestServer(t, { sharedGroups: [{ pattern: 'jobs', maxDeliveries: 2, deadLetterTopic: '$dlq/{group}' }] })
  const port = tcpPort(server)
  const watcher = await connectClient(t, tcpUrl(server), { clientId: shareId('dlq'), protocolVersion: 5 })
  const dead = collect(watcher)
  await watcher.subscribeAsync('$dlq/#', { qos: 1 })
  const pub = await connectClient(t, tcpUrl(server), { clientId: shareId('pub'), protocolVersion: 5 })
  // two workers die with the job in turn (they never acknowledge)
  const first = await rawMember(t, port, { clientId: shareId('a-first') })
  await rawSubscribe(first, [{ topic: KEY, qos: 1 }])
  await pub.publishAsync('jobs/poison', 'poison', { qos: 1 })
  await nextPublishes(first, 1)
  const secondId = shareId('a-second')
  const second = await rawMember(t, port, { clientId: secondId })
  await rawSubscribe(second, [{ topic: KEY, qos: 1 }])
  first.destroy()
  const [p2] = await nextPublishes(second, 1)
  t.equal((p2?.properties?.userProperties as Record<string, string> | undefined)?.['culex-delivery-count'], '2')
  // the real workers join, then the second dies with the job too
  const mosq = mosquittoSub(t, ['-h', '127.0.0.1', '-p', String(port), '-V', '5', '-q', '1', '-i', shareId('b-mosq'), '-t', KEY, '-F', '%p'])
  const paho = pahoWorker(t, python, { port, version: 5, clientId: shareId('c-paho'), keepalive: 30, seconds: 20, filter: KEY })
  await waitForMembers(server, KEY, 3, 10000)
  second.destroy()
  const [d] = await dead.next(1)
  const up = (d?.properties?.userProperties ?? {}) as Record<string, string>
  t.equal(up['culex-reason'], 'max-deliveries')
  t.equal(up['culex-delivery-count'], '2')
  t.equal(up['culex-client-id'], secondId, 'the last member that got it')
  const s = await waitForGroup(server, KEY, s => s?.poison === 1, 'poison counted')
  t.equal(s?.inflight, 0)
  await pub.publishAsync('jobs/ok', 'fine', { qos: 1 })
  await waitFor(() => mosq.lines.includes('fine') || paho.lines.includes('message fine'), { what: 'a good job at a real worker' })
  t.notOk(mosq.lines.includes('poison') || paho.lines.includes('message poison'), 'the poison job never reached mosquitto_sub or Paho')
})
