/** A real aedes broker on the level store, and MQTT.js v5 clients, for the persistence tests. */
import { createServer, type AddressInfo, type Server } from 'node:net'
import type { Test } from 'tap'
import { Aedes, type AedesOptions } from 'aedes'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { attachSessionExpiry, createPersistence, type CulexPersistence, type SessionExpiryHandle } from '../../lib/persistence/index.js'
import { waitFor } from './wait.js'

export interface Running {
  broker: Aedes
  store: CulexPersistence
  server: Server
  url: string
  /** set when started with `sessionExpiry: true` */
  expiry: SessionExpiryHandle | undefined
  stop (): Promise<void>
}

export async function start (dataDir: string, opts: Partial<AedesOptions> = {}, extra: { sessionExpiry?: boolean, store?: CulexPersistence } = {}): Promise<Running> {
  const store = extra.store ?? createPersistence({ kind: 'level', dataDir })
  const broker = await Aedes.createBroker({ persistence: store, ...opts })
  const expiry = extra.sessionExpiry === true ? await attachSessionExpiry(broker, store) : undefined
  const server = createServer((socket) => { broker.handle(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  let stopped = false
  return {
    broker,
    store,
    server,
    url: `mqtt://127.0.0.1:${port}`,
    expiry,
    async stop () {
      if (stopped) return
      stopped = true
      expiry?.stop()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await store.close()
    }
  }
}

export async function connect (t: Test, url: string, opts: IClientOptions): Promise<MqttClient> {
  return (await connectAck(t, url, opts)).client
}

/** what each client made by connectAck received, from its first packet on */
const received = new WeakMap<MqttClient, IPublishPacket[]>()

/** connects and also returns the CONNACK's Session Present flag */
export async function connectAck (t: Test, url: string, opts: IClientOptions): Promise<{ client: MqttClient, sessionPresent: boolean }> {
  const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  t.teardown(() => { client.end(true) })
  // A resumed session's queue arrives right behind the CONNACK, often in the
  // same read, before the caller's `await` resumes: record from the start
  // (inbox() returns these).
  const messages: IPublishPacket[] = []
  received.set(client, messages)
  client.on('message', (_topic, _payload, packet) => { messages.push(packet) })
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent))
    client.once('error', reject)
  })
  return { client, sessionPresent }
}

/** Everything `client` received since it connected (connectAck), and later messages as they come. */
export function inbox (client: MqttClient): { messages: IPublishPacket[], wait: (n: number, ms?: number) => Promise<IPublishPacket[]> } {
  let messages = received.get(client)
  if (messages === undefined) {
    const own: IPublishPacket[] = []
    client.on('message', (_topic, _payload, packet) => { own.push(packet) })
    messages = own
  }
  return {
    messages,
    async wait (n, ms = 5000) {
      await waitFor(() => messages.length >= n, { timeout: ms, what: () => `expected ${n} messages, got ${messages.length}` })
      return messages
    }
  }
}

export const persistentV5 = (clientId: string, sessionExpiryInterval = 300): IClientOptions => ({ clientId, clean: false, properties: { sessionExpiryInterval } })

/** DISCONNECTs a client and waits until the broker has let go of its session */
export async function endAndWait (running: Running, client: MqttClient): Promise<void> {
  const id = client.options.clientId
  const gone = new Promise<void>((resolve) => {
    const on = (c: { id: string }): void => {
      if (c.id !== id) return
      running.broker.removeListener('clientDisconnect', on)
      resolve()
    }
    running.broker.on('clientDisconnect', on)
  })
  await client.endAsync()
  await gone
}
