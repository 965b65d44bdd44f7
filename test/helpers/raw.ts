/**
 * A raw MQTT client on a TCP socket, built on mqtt-packet, for the behaviour
 * MQTT.js hides: malformed input, exact reason codes, unacknowledged flows.
 */
import net from 'node:net'
import mqtt, { type Packet } from 'mqtt-packet'

export class RawClient {
  readonly packets: Packet[] = []
  closed = false
  private readonly parser
  private waiters: Array<() => void> = []
  private readonly closedPromise: Promise<void>

  private constructor (readonly socket: net.Socket, readonly protocolVersion: 3 | 4 | 5) {
    this.parser = mqtt.parser({ protocolVersion })
    this.parser.on('packet', (p: Packet) => { this.packets.push(p); this.wake() })
    this.parser.on('error', () => { /* a test reads what parsed */ })
    socket.on('data', (d: Buffer) => this.parser.parse(d))
    this.closedPromise = new Promise((resolve) => socket.once('close', () => { this.closed = true; this.wake(); resolve() }))
    socket.on('error', () => {})
  }

  static async open (port: number, protocolVersion: 3 | 4 | 5 = 5): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    return new RawClient(socket, protocolVersion)
  }

  /** Opens a socket and completes CONNECT/CONNACK. */
  static async connect (port: number, protocolVersion: 3 | 4 | 5 = 5, connect: Partial<mqtt.IConnectPacket> = {}): Promise<RawClient> {
    const c = await RawClient.open(port, protocolVersion)
    c.send({ cmd: 'connect', protocolVersion, protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', clientId: 'raw-' + Math.random().toString(16).slice(2), clean: true, keepalive: 60, ...connect } as mqtt.IConnectPacket)
    const connack = await c.next('connack')
    if ((connack as mqtt.IConnackPacket).reasonCode || (connack as mqtt.IConnackPacket).returnCode) throw new Error('connection refused')
    return c
  }

  private wake (): void { for (const w of this.waiters.splice(0)) w() }

  send (packet: Packet): void {
    this.socket.write(mqtt.generate(packet, { protocolVersion: this.protocolVersion }))
  }

  sendRaw (bytes: Buffer): void { this.socket.write(bytes) }

  /** The next packet of type `cmd` not yet taken (any type when omitted). */
  next (cmd?: Packet['cmd'], ms = 3000): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${cmd ?? 'packet'} within ${ms} ms (have ${this.packets.map(p => p.cmd).join(',')})`)), ms)
      const check = (): void => {
        const i = this.packets.findIndex(p => cmd === undefined || p.cmd === cmd)
        if (i >= 0) { clearTimeout(timer); resolve(this.packets.splice(i, 1)[0] as Packet); return }
        if (this.closed) { clearTimeout(timer); reject(new Error(`closed without ${cmd ?? 'packet'}`)); return }
        this.waiters.push(check)
      }
      check()
    })
  }

  /** Resolves when the server closes the connection; rejects after `ms`. */
  async waitClose (ms = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.closedPromise,
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms) })
    ])
    clearTimeout(timer)
  }

  destroy (): void { this.socket.destroy() }
}
