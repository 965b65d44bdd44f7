// Durability: SIGKILL a broker process (aedes + the level store, see
// fixtures/broker-child.mjs) in the middle of a publish stream, restart it on
// the same data directory, and check that every acknowledged message is
// delivered with its properties.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt'
import { DEFAULT_MAX_QUEUED_MESSAGES } from '../../../lib/persistence/parts/limits.js'
import { connect, inbox, persistentV5 } from '../../helpers/level-broker.js'
import { tempDir } from '../../helpers/store.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const fixture = fileURLToPath(new URL('./fixtures/broker-child.mjs', import.meta.url))

interface Child { proc: ChildProcess, url: string }

async function startChild (t: Test, dataDir: string, flags: string[] = []): Promise<Child> {
  const proc = spawn(process.execPath, [fixture, '0', dataDir, ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' }
  })
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /ready (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    proc.once('exit', (code) => reject(new Error(`broker child exited (${code}) before ready`)))
  })
  return { proc, url: `mqtt://127.0.0.1:${port}` }
}

async function kill (child: Child): Promise<void> {
  child.proc.kill('SIGKILL')
  if (child.proc.exitCode === null && child.proc.signalCode === null) await once(child.proc, 'exit')
}

/**
 * Publishes numbered messages with up to `window` in flight until `killAfter`
 * are acknowledged, then SIGKILLs the broker while the rest are in flight.
 * Returns the numbers that were acknowledged (PUBACK, or PUBCOMP for QoS 2).
 */
async function publishAndKill (child: Child, topic: string, qos: 1 | 2, killAfter: number, window = 20): Promise<Set<number>> {
  const acked = new Set<number>()
  const pub: MqttClient = mqtt.connect(child.url, { protocolVersion: 5, clientId: `pub-${topic}`, reconnectPeriod: 0 })
  pub.on('error', () => {})
  await new Promise<void>((resolve) => pub.once('connect', () => resolve()))
  let next = 0
  let killed = false
  await new Promise<void>((resolve) => {
    const send = (): void => {
      if (killed) return
      const n = ++next
      pub.publish(`${topic}/${n}`, `message ${n}`, {
        qos,
        properties: { userProperties: { n: String(n), batch: 'crash' }, contentType: 'text/plain', correlationData: Buffer.from([n & 0xff, n >> 8]) }
      }, (err) => {
        if (err !== undefined && err !== null) return
        if (killed) {
          // an ack that raced the kill signal still counts: the broker sent it
          acked.add(n)
          return
        }
        acked.add(n)
        if (acked.size >= killAfter) {
          killed = true
          child.proc.kill('SIGKILL')
          resolve()
          return
        }
        send()
      })
    }
    for (let i = 0; i < window; i++) send()
  })
  await once(child.proc, 'exit')
  pub.end(true)
  return acked
}

function checkDelivered (t: Test, acked: Set<number>, received: IPublishPacket[], topic: string): void {
  const byN = new Map<number, IPublishPacket>()
  for (const m of received) byN.set(Number(m.topic.slice(topic.length + 1)), m)
  const missing = [...acked].filter((n) => !byN.has(n))
  t.strictSame(missing, [], `every acknowledged message arrives (${acked.size} acknowledged, ${byN.size} delivered)`)
  const bad = [...acked].filter((n) => {
    const m = byN.get(n)
    const p = m?.properties
    return m === undefined || m.payload.toString() !== `message ${n}` || p?.contentType !== 'text/plain' ||
      p.userProperties?.n !== String(n) || p.userProperties?.batch !== 'crash' ||
      !Buffer.from([n & 0xff, n >> 8]).equals(p.correlationData ?? Buffer.alloc(0))
  })
  t.strictSame(bad, [], 'payload, user properties, content type and correlation data intact')
}

/** reconnects the session and returns everything it received, with `early` in front */
async function receiveAll (t: Test, url: string, clientId: string, acked: Set<number>, topic: string, early: IPublishPacket[]): Promise<IPublishPacket[]> {
  const sub = await connect(t, url, persistentV5(clientId))
  const box = inbox(sub)
  const have = (): boolean => {
    const got = new Set([...early, ...box.messages].map((m) => Number(m.topic.slice(topic.length + 1))))
    return [...acked].every((n) => got.has(n))
  }
  // on a timeout the caller's assertions name what is missing
  await waitFor(have, { timeout: 10_000 }).catch(() => {})
  await sleep(200)
  return [...early, ...box.messages]
}

/**
 * Subscribes a persistent session and disconnects it. Returns what that first
 * connection received: the broker may still deliver (and the client
 * acknowledge) the first messages before it has processed the DISCONNECT.
 */
async function offlineSubscriber (t: Test, url: string, clientId: string, filter: string, qos: 1 | 2): Promise<IPublishPacket[]> {
  const sub = await connect(t, url, persistentV5(clientId))
  const early = inbox(sub).messages
  await sub.subscribeAsync(filter, { qos })
  await sub.endAsync()
  return early
}

t.test('QoS 1: every PUBACKed message survives SIGKILL mid-stream (PUBACK after persist)', async (t) => {
  const dir = tempDir(t)
  let child = await startChild(t, dir, ['--ack-after-persist'])
  const early1 = await offlineSubscriber(t, child.url, 'crash-sub-1', 'c1/#', 1)
  const early1b = await offlineSubscriber(t, child.url, 'crash-sub-1b', 'c1/+', 1)
  const acked = await publishAndKill(child, 'c1', 1, 300)
  t.ok(acked.size >= 300, `${acked.size} messages acknowledged before the kill`)
  child = await startChild(t, dir, ['--ack-after-persist'])
  checkDelivered(t, acked, await receiveAll(t, child.url, 'crash-sub-1', acked, 'c1', early1), 'c1')
  checkDelivered(t, acked, await receiveAll(t, child.url, 'crash-sub-1b', acked, 'c1', early1b), 'c1')
  await kill(child)
})

t.test('QoS 2: every PUBCOMPed message survives SIGKILL mid-stream', async (t) => {
  const dir = tempDir(t)
  let child = await startChild(t, dir)
  const early = await offlineSubscriber(t, child.url, 'crash-sub-2', 'c2/#', 2)
  const acked = await publishAndKill(child, 'c2', 2, 200)
  t.ok(acked.size >= 200)
  child = await startChild(t, dir)
  const received = await receiveAll(t, child.url, 'crash-sub-2', acked, 'c2', early)
  checkDelivered(t, acked, received, 'c2')
  t.ok(received.every((m) => m.qos === 2), 'delivered at QoS 2')
  await kill(child)
})

t.test('a PUBACKed retained message survives SIGKILL', async (t) => {
  const dir = tempDir(t)
  let child = await startChild(t, dir, ['--ack-after-persist'])
  const pub = await connect(t, child.url, { clientId: 'crash-retain-pub' })
  await pub.publishAsync('c3/last', 'known value', {
    qos: 1,
    retain: true,
    properties: { contentType: 'application/json', userProperties: { unit: 'C' }, correlationData: Buffer.from('id-1') }
  })
  // killed right after the PUBACK, before anything else happens
  await kill(child)
  child = await startChild(t, dir, ['--ack-after-persist'])
  const sub = await connect(t, child.url, { clientId: 'crash-retain-sub' })
  const box = inbox(sub)
  await sub.subscribeAsync('c3/#', { qos: 1 })
  const [msg] = await box.wait(1)
  t.equal(msg?.payload.toString(), 'known value')
  t.equal(msg?.retain, true)
  t.equal(msg?.properties?.contentType, 'application/json')
  t.strictSame({ ...msg?.properties?.userProperties }, { unit: 'C' })
  t.strictSame(msg?.properties?.correlationData, Buffer.from('id-1'))
  await kill(child)
})

t.test('[MQTT-4.4.0-1] SIGKILL mid-drain: every message not yet acknowledged arrives after the restart, in order; acknowledged ones stay gone once their deletes had their delay', async (t) => {
  const dir = tempDir(t)
  // every message fits the queue: at the default limit
  const total = DEFAULT_MAX_QUEUED_MESSAGES
  const numberOf = (m: IPublishPacket): number => Number(m.topic.slice('d/'.length))
  let child = await startChild(t, dir, ['--ack-after-persist'])
  await offlineSubscriber(t, child.url, 'drain-sub', 'd/#', 1)
  const pub = await connect(t, child.url, { clientId: 'drain-pub' })
  for (let n = 1; n <= total; n += 100) {
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await pub.publishAsync(`d/${n + i}`, `message ${n + i}`, { qos: 1 })))
  }
  await pub.endAsync()

  const first = await connect(t, child.url, persistentV5('drain-sub'))
  const firstBox = inbox(first)
  await waitFor(() => firstBox.messages.length >= 100, { timeout: 10_000 })
  await kill(child)
  first.end(true)
  const received = new Set(firstBox.messages.map(numberOf))
  const unacknowledged = new Set(Array.from({ length: total }, (_, i) => i + 1).filter((n) => !received.has(n)))

  child = await startChild(t, dir, ['--ack-after-persist'])
  const again = (await receiveAll(t, child.url, 'drain-sub', unacknowledged, 'd', [])).map(numberOf)
  t.strictSame([...unacknowledged].filter((n) => !again.includes(n)), [], `none of the ${unacknowledged.size} messages not received before the kill (${received.size} were) is lost`)
  t.strictSame(again, [...again].sort((a, b) => a - b), 'they come in the order they were published')

  // every message is acknowledged now; the deletes wait 100 ms at most
  await sleep(500)
  await kill(child)
  child = await startChild(t, dir, ['--ack-after-persist'])
  const last = await connect(t, child.url, persistentV5('drain-sub'))
  const lastBox = inbox(last)
  await sleep(500)
  t.strictSame(lastBox.messages.map(numberOf), [], 'nothing acknowledged before the quiet kill comes again')
  await kill(child)
})
