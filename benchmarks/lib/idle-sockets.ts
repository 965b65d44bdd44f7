// Silent MQTT connections for the memory tools (idle-memory.ts,
// heap-per-connection.ts): each sends one CONNECT, waits for its CONNACK and
// then says nothing. Loopback only; every opening is bounded by a deadline.
import net from 'node:net'
import tls from 'node:tls'
import mqtt from 'mqtt-packet'
import WebSocket, { createWebSocketStream } from 'ws'
import { LOOPBACK } from './net.js'

export type Transport = 'tcp' | 'tls' | 'ws'

export interface Socketish { write: (b: Buffer) => unknown, once: (e: string, l: (...a: unknown[]) => void) => unknown, on: (e: string, l: (...a: unknown[]) => void) => unknown, destroy: () => void }

export interface SilentClient {
  readonly transport: Transport
  readonly protocolVersion: 4 | 5
  /** 0 (none) for the idle-memory table; the harness's load generator asks for 60 s. */
  readonly keepalive: number
}

/** One connection that stays silent once it has its CONNACK. */
export async function openOne (client: SilentClient, ports: Partial<Record<Transport, number>>, id: number): Promise<Socketish> {
  const port = ports[client.transport]
  if (port === undefined) throw new Error(`no ${client.transport} port`)
  const socket: Socketish = await new Promise((resolve, reject) => {
    if (client.transport === 'ws') {
      const ws = new WebSocket(`ws://${LOOPBACK}:${port}/mqtt`, 'mqtt')
      ws.once('error', reject)
      ws.once('open', () => resolve(createWebSocketStream(ws)))
    } else if (client.transport === 'tls') {
      const s = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false }, () => resolve(s))
      s.once('error', reject)
    } else {
      const s = net.connect({ host: LOOPBACK, port }, () => resolve(s))
      s.once('error', reject)
    }
  })
  // a distinct client id of the same length for each connection
  const connect = mqtt.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: client.protocolVersion,
    clean: true,
    clientId: `m${String(id).padStart(7, '0')}`,
    keepalive: client.keepalive
  } as mqtt.IConnectPacket, { protocolVersion: client.protocolVersion })
  await new Promise<void>((resolve, reject) => {
    socket.once('data', (chunk) => { (chunk as Buffer)[0] === 0x20 ? resolve() : reject(new Error('no CONNACK')) })
    socket.once('error', reject)
    socket.write(connect)
  })
  socket.on('error', () => {})
  return socket
}

/** `count` connections, 50 at a time, ids from `offset`; throws past the deadline. */
export async function openMany (client: SilentClient, ports: Partial<Record<Transport, number>>, count: number, offset: number, deadline: number): Promise<Socketish[]> {
  const sockets: Socketish[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) {
      const id = offset + next++
      sockets.push(await openOne(client, ports, id))
    }
  }
  await Promise.all(Array.from({ length: 50 }, worker))
  if (sockets.length < count) throw new Error(`time bound: ${sockets.length} of ${count} ${client.transport} connections opened`)
  return sockets
}
