/** MQTT.js clients for tests, with promise helpers and cleanup. */
import type { Test } from 'tap'
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket, type Packet } from 'mqtt'

export type Version = 4 | 5

export async function connectClient (t: Test, url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...opts })
  t.teardown(() => { client.end(true) })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  client.removeAllListeners('error')
  client.on('error', () => {})
  return client
}

/** Collects messages; `next(n)` resolves with the first n received (or rejects on timeout). */
export function collect (client: MqttClient): { messages: IPublishPacket[], next: (n: number, ms?: number) => Promise<IPublishPacket[]> } {
  const messages: IPublishPacket[] = []
  const waiters: Array<() => void> = []
  client.on('message', (_topic, _payload, packet) => {
    messages.push(packet)
    for (const w of waiters.splice(0)) w()
  })
  return {
    messages,
    next (n, ms = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} messages, got ${messages.length}`)), ms)
        const check = (): void => {
          if (messages.length >= n) { clearTimeout(timer); resolve(messages.slice(0, n)) } else waiters.push(check)
        }
        check()
      })
    }
  }
}

export function waitForPacket (client: MqttClient, cmd: Packet['cmd'], ms = 5000): Promise<Packet> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.removeListener('packetreceive', on); reject(new Error(`no ${cmd} within ${ms} ms`)) }, ms)
    const on = (packet: Packet): void => {
      if (packet.cmd === cmd) { clearTimeout(timer); client.removeListener('packetreceive', on); resolve(packet) }
    }
    client.on('packetreceive', on)
  })
}

/**
 * Connects with a handler pushing each payload to `got` in place before the
 * CONNACK (a resumed queue comes right after it); resolves at the CONNACK.
 */
export async function resumeInto (t: Test, url: string, opts: IClientOptions, got: string[]): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 20000, ...opts })
  t.teardown(() => { client.end(true) })
  client.on('message', (_topic, payload) => { got.push(payload.toString()) })
  client.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  return client
}
