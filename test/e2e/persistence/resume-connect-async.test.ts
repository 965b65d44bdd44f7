/**
 * The most common MQTT.js pattern, racy with any broker:
 *
 *   const c = await mqtt.connectAsync(url, { clean: false, ... })
 *   c.on('message', ...)
 *
 * MQTT.js handles every packet of one socket read before the code after the
 * `await` runs, acknowledging messages nobody listens for. culex sends a
 * resumed session's CONNACK in a write of its own and the queue a few turns
 * of the event loop later (lib/protocol/flows/client-writer.ts `write`), so the
 * pattern gets the whole queue (mosquitto 2.0.11, measured by hand with this
 * pattern, delivered 34 to 49 of 50).
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import type { CulexPersistence } from '../../../lib/persistence/index.js'
import { startTestServer, tcpUrl } from '../../helpers/server.js'
import { shareId } from '../../helpers/share.js'
import { waitFor } from '../../helpers/wait.js'

const RUNS = 20
const QUEUED = 50

/** One run: a session subscribed at QoS 1 goes offline, QUEUED messages are published, the session comes back with connectAsync. */
async function run (url: string, settled: (received: () => number) => Promise<void>): Promise<number> {
  const id = shareId('connect-async')
  const topic = `race/${id}`
  const options = { clientId: id, protocolVersion: 5 as const, clean: false, reconnectPeriod: 0, connectTimeout: 5000, properties: { sessionExpiryInterval: 3600 } }
  const first = await mqtt.connectAsync(url, options)
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  const publisher = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 })
  for (let i = 0; i < QUEUED; i++) await publisher.publishAsync(topic, String(i), { qos: 1 })
  await publisher.endAsync()
  let received = 0
  let c: MqttClient | undefined
  try {
    c = await mqtt.connectAsync(url, options)
    c.on('message', () => { received++ })
    await settled(() => received)
    return received
  } finally {
    await c?.endAsync()
  }
}

async function runs (url: string, settled: (received: () => number) => Promise<void>): Promise<number[]> {
  const counts: number[] = []
  for (let i = 0; i < RUNS; i++) counts.push(await run(url, settled))
  return counts
}

for (const persistence of ['memory', 'level'] as const) {
  t.test(`[MQTT-3.2.2-3] ${persistence} store: await connectAsync, then on('message'): all ${QUEUED} queued messages, ${RUNS} runs out of ${RUNS}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'culex-race-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const server = await startTestServer(t, { persistence, dataDir: dir })
    const store = (server.broker.aedes as unknown as { persistence: CulexPersistence }).persistence
    // every queued message acknowledged: the client has handled them all, with or without a listener
    const counts = await runs(tcpUrl(server), (received) => waitFor(() => store.stats().queued === 0 && received() >= 0, { timeout: 10000, what: () => `${store.stats().queued} still queued` }))
    t.comment(`culex (${persistence}): ${counts.join(' ')}`)
    t.same(counts, Array<number>(RUNS).fill(QUEUED), 'every run received the whole queue')
  })
}
