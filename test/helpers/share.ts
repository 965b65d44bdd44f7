/**
 * Helpers for the shared subscription tests (test/e2e/shared/): group figures
 * from `sharedGroups.stats()`, bounded-concurrency publishing, and raw
 * members that never acknowledge unless told to.
 */
import type { Test } from 'tap'
import mqttjs, { type IClientOptions, type IClientPublishOptions, type IConnackPacket, type MqttClient } from 'mqtt'
import type mqtt from 'mqtt-packet'
import type { CulexServer } from '../../lib/server.js'
import type { GroupStats } from '../../lib/shared/dispatcher.js'
import { RawClient } from './raw.js'
import { collect } from './mqtt.js'
import { waitFor } from './wait.js'

let counter = 0
/** a client id unique to this process and call, with a readable prefix (sort order follows the prefix) */
export function shareId (prefix: string): string {
  counter++
  return `${prefix}-${process.pid}-${counter}`
}

export function groupStats (server: CulexServer, key: string): GroupStats | undefined {
  const groups = server.broker.sharedGroups
  if (!groups) throw new Error('shared subscriptions are off')
  return groups.stats().find(g => g.group === key)
}

/** Polls until `check` holds for the group's figures (undefined when the group does not exist). */
export async function waitForGroup (server: CulexServer, key: string, check: (s: GroupStats | undefined) => boolean, what: string, ms = 5000): Promise<GroupStats | undefined> {
  let s: GroupStats | undefined
  await waitFor(() => check(s = groupStats(server, key)), { timeout: ms, what: () => `group ${key}: ${what} (stats: ${JSON.stringify(s)})` })
  return s
}

/** Waits until the group has `n` members online (shared subscriptions emit no aedes 'subscribe' event). */
export function waitForMembers (server: CulexServer, key: string, n: number, ms = 5000): Promise<GroupStats | undefined> {
  return waitForGroup(server, key, s => (s?.membersOnline ?? 0) === n, `${n} members online`, ms)
}

export interface Outgoing { topic: string, payload: string, opts?: IClientPublishOptions }

/**
 * Publishes `count` messages made by `make(i)` (i from 0), at most
 * `concurrency` unacknowledged at a time; resolves when every one is
 * acknowledged (PUBACK / PUBCOMP), rejects on the first error.
 */
export async function publishMany (client: MqttClient, count: number, make: (i: number) => Outgoing, concurrency = 50): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const m = make(next++)
      await client.publishAsync(m.topic, m.payload, { qos: 1, ...m.opts })
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, () => worker()))
}

export interface RawMemberOptions {
  clientId?: string
  version?: 4 | 5
  receiveMaximum?: number
  clean?: boolean
  sessionExpiryInterval?: number
}

/** A raw client (never acknowledges on its own), destroyed at teardown. */
export async function rawMember (t: Test, port: number, o: RawMemberOptions = {}): Promise<RawClient> {
  const version = o.version ?? 5
  const connect: Partial<mqtt.IConnectPacket> = { clientId: o.clientId ?? shareId('raw'), clean: o.clean ?? true }
  if (version === 5) {
    const properties: NonNullable<mqtt.IConnectPacket['properties']> = {}
    if (o.receiveMaximum !== undefined) properties.receiveMaximum = o.receiveMaximum
    if (o.sessionExpiryInterval !== undefined) properties.sessionExpiryInterval = o.sessionExpiryInterval
    connect.properties = properties
  }
  const c = await RawClient.connect(port, version, connect)
  t.teardown(() => c.destroy())
  return c
}

let nextPacketId = 1
function packetId (): number {
  nextPacketId = nextPacketId >= 0xfff0 ? 1 : nextPacketId + 1
  return nextPacketId
}

/** SUBSCRIBE; resolves with the SUBACK's codes. */
export async function rawSubscribe (c: RawClient, subscriptions: mqtt.ISubscription[], properties?: mqtt.ISubscribePacket['properties']): Promise<number[]> {
  const messageId = packetId()
  const packet: mqtt.ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions }
  if (properties) packet.properties = properties
  c.send(packet)
  const suback = await c.next('suback') as mqtt.ISubackPacket
  if (suback.messageId !== messageId) throw new Error(`SUBACK for ${suback.messageId}, expected ${messageId}`)
  return suback.granted as number[]
}

/** UNSUBSCRIBE; resolves with the UNSUBACK's codes. */
export async function rawUnsubscribe (c: RawClient, filters: string[]): Promise<number[]> {
  const messageId = packetId()
  c.send({ cmd: 'unsubscribe', messageId, unsubscriptions: filters })
  const unsuback = await c.next('unsuback') as mqtt.IUnsubackPacket
  if (unsuback.messageId !== messageId) throw new Error(`UNSUBACK for ${unsuback.messageId}, expected ${messageId}`)
  return (unsuback.granted ?? []) as number[]
}

/** PUBLISH packets received and not yet taken, taken now. */
export function takePublishes (c: RawClient): mqtt.IPublishPacket[] {
  const out: mqtt.IPublishPacket[] = []
  for (let i = 0; i < c.packets.length;) {
    const p = c.packets[i] as mqtt.Packet
    if (p.cmd === 'publish') { out.push(p); c.packets.splice(i, 1) } else i++
  }
  return out
}

/** The next `n` PUBLISH packets (rejects after `ms`). */
export async function nextPublishes (c: RawClient, n: number, ms = 5000): Promise<mqtt.IPublishPacket[]> {
  const out: mqtt.IPublishPacket[] = []
  const deadline = Date.now() + ms
  while (out.length < n) {
    const left = deadline - Date.now()
    if (left <= 0) throw new Error(`got ${out.length} of ${n} PUBLISH packets within ${ms} ms`)
    out.push(await c.next('publish', left) as mqtt.IPublishPacket)
  }
  return out
}

export function text (p: { payload: string | Buffer }): string {
  return typeof p.payload === 'string' ? p.payload : p.payload.toString()
}

/** Values that occur more than once. */
export function duplicates<T> (values: readonly T[]): T[] {
  const seen = new Set<T>()
  const dup = new Set<T>()
  for (const v of values) {
    if (seen.has(v)) dup.add(v)
    seen.add(v)
  }
  return [...dup]
}

/** Opens a raw client, sends CONNECT and returns the CONNACK whatever its code; destroyed at teardown. */
export async function rawConnack (t: Test, port: number, version: 4 | 5, connect: Partial<mqtt.IConnectPacket> = {}): Promise<{ client: RawClient, connack: mqtt.IConnackPacket }> {
  const client = await RawClient.open(port, version)
  t.teardown(() => client.destroy())
  client.send({ cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: shareId('raw'), clean: true, keepalive: 60, ...connect } as mqtt.IConnectPacket)
  const connack = await client.next('connack') as mqtt.IConnackPacket
  return { client, connack }
}

/** An MQTT.js client (as connectClient) that also returns its CONNACK, and an inbox collecting from before the CONNACK. */
export async function connectWithConnack (t: Test, url: string, opts: IClientOptions): Promise<{ client: MqttClient, connack: IConnackPacket, inbox: ReturnType<typeof collect> }> {
  const client = mqttjs.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...opts })
  t.teardown(() => { client.end(true) })
  const inbox = collect(client)
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  client.removeAllListeners('error')
  client.on('error', () => {})
  return { client, connack, inbox }
}
