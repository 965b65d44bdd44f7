/**
 * Small helpers over RawClient for the MQTT 5 protocol tests: a CONNECT that
 * returns the CONNACK whatever its code, SUBSCRIBE/PUBLISH shorthands, and
 * "nothing arrives" checks. Every client opened here is destroyed at teardown.
 */
import type { Test } from 'tap'
import type mqtt from 'mqtt-packet'
import { RawClient } from './raw.js'
import { sleep } from './wait.js'

export type RawVersion = 4 | 5

let counter = 0
export function uniqueId (prefix: string): string {
  counter++
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(16).slice(2, 8)}`
}

/** Opens a raw client, sends CONNECT and returns the CONNACK, accepted or not. */
export async function rawConnect (
  t: Test,
  port: number,
  version: RawVersion = 5,
  connect: Partial<mqtt.IConnectPacket> = {}
): Promise<{ client: RawClient, connack: mqtt.IConnackPacket }> {
  const client = await RawClient.open(port, version)
  t.teardown(() => client.destroy())
  client.send({ cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: uniqueId('raw'), clean: true, keepalive: 60, ...connect } as mqtt.IConnectPacket)
  const connack = await client.next('connack') as mqtt.IConnackPacket
  return { client, connack }
}

/** Like rawConnect, but fails the caller unless the connection is accepted. */
export async function rawClient (t: Test, port: number, version: RawVersion = 5, connect: Partial<mqtt.IConnectPacket> = {}): Promise<RawClient> {
  const { client, connack } = await rawConnect(t, port, version, connect)
  const code = version === 5 ? connack.reasonCode : connack.returnCode
  if (code) throw new Error(`CONNECT refused with ${code}`)
  return client
}

let nextId = 1
export function packetId (): number {
  nextId = nextId >= 0xfff0 ? 1 : nextId + 1
  return nextId
}

/** SUBSCRIBE and wait for the SUBACK; returns its codes. */
export async function rawSubscribe (
  c: RawClient,
  subscriptions: mqtt.ISubscription[],
  properties?: mqtt.ISubscribePacket['properties']
): Promise<number[]> {
  const messageId = packetId()
  const packet: mqtt.ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions }
  if (properties) packet.properties = properties
  c.send(packet)
  const suback = await c.next('suback') as mqtt.ISubackPacket
  if (suback.messageId !== messageId) throw new Error(`SUBACK for ${suback.messageId}, expected ${messageId}`)
  return suback.granted as number[]
}

export interface RawPublish {
  qos?: 0 | 1 | 2
  retain?: boolean
  messageId?: number
  properties?: mqtt.IPublishPacket['properties']
}

/** Sends a PUBLISH; returns its packet id (QoS 1/2). */
export function rawPublish (c: RawClient, topic: string, payload: string | Buffer, opts: RawPublish = {}): number | undefined {
  const qos = opts.qos ?? 0
  const packet: mqtt.IPublishPacket = {
    cmd: 'publish',
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos,
    retain: opts.retain ?? false,
    dup: false
  }
  let id: number | undefined
  if (qos > 0) packet.messageId = id = opts.messageId ?? packetId()
  if (opts.properties) packet.properties = opts.properties
  c.send(packet)
  return id
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

/**
 * The server's close after a violation: MQTT 5 sends DISCONNECT `code` first
 * (spec 4.13.2), 3.1.1 closes the connection alone (spec 4.13.1).
 */
export async function expectServerClose (t: Test, c: RawClient, version: RawVersion, code: number): Promise<void> {
  if (version === 5) {
    const d = await c.next('disconnect') as mqtt.IDisconnectPacket
    t.equal(d.reasonCode, code, `DISCONNECT 0x${code.toString(16)}`)
  }
  await c.waitClose()
}

/** Resolves after `ms` if no packet of type `cmd` arrived meanwhile; rejects with it otherwise. */
export async function expectNone (c: RawClient, cmd: mqtt.Packet['cmd'], ms: number): Promise<void> {
  await sleep(ms)
  const found = c.packets.find(p => p.cmd === cmd)
  if (found) throw new Error(`unexpected ${cmd}: ${describe(found)}`)
}

/** A packet as JSON, Buffers as text, for failure messages. */
export function describe (p: unknown): string {
  return JSON.stringify(p, (_k, v: unknown) => {
    const b = v as { type?: unknown, data?: unknown }
    return b !== null && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString() : v
  })
}

/** The payload as a string. */
export function text (p: { payload: string | Buffer }): string {
  return typeof p.payload === 'string' ? p.payload : p.payload.toString()
}

/** Subscription identifiers of a PUBLISH as a sorted array. */
export function subscriptionIds (p: mqtt.IPublishPacket): number[] {
  const si = p.properties?.subscriptionIdentifier
  if (si === undefined) return []
  return (Array.isArray(si) ? si : [si]).slice().sort((a, b) => a - b)
}
