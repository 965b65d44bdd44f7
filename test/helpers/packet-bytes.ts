/**
 * Byte builders for the packets client libraries refuse to send: repeated
 * properties, ill-formed UTF-8, fields their flags do not announce. Each
 * field is given as raw bytes, so a test writes exactly what it means. And
 * the reverse: what mqtt-packet's parser, independent of culex's decoders,
 * reads from bytes culex wrote.
 */
import mqtt, { type Packet } from 'mqtt-packet'

/** A Variable Byte Integer (spec 1.5.5). */
export function varint (n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}

/** Raw bytes given as a Buffer or an array of byte values. */
export type Bytes = Buffer | readonly number[]

const bytesOf = (b: Bytes): Buffer => Buffer.isBuffer(b) ? b : Buffer.from(b)

/** A two-byte length and the bytes (a UTF-8 string or binary data, spec 1.5.4, 1.5.6); text is UTF-8 encoded, bytes are taken as they are. */
export function str (value: string | Bytes): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : bytesOf(value)
  const length = Buffer.alloc(2)
  // a field over 65,535 bytes gets a length that lies (its low 16 bits), as a broken client would send
  length.writeUInt16BE(bytes.length & 0xffff)
  return Buffer.concat([length, bytes])
}

/** Property builders: identifier then value, by data type. */
export const prop = {
  byte: (id: number, v: number): Buffer => Buffer.from([id, v]),
  two: (id: number, v: number): Buffer => { const b = Buffer.alloc(3); b[0] = id; b.writeUInt16BE(v, 1); return b },
  four: (id: number, v: number): Buffer => { const b = Buffer.alloc(5); b[0] = id; b.writeUInt32BE(v, 1); return b },
  string: (id: number, v: string | Buffer): Buffer => Buffer.concat([Buffer.from([id]), str(v)]),
  pair: (id: number, k: string | Buffer, v: string | Buffer): Buffer => Buffer.concat([Buffer.from([id]), str(k), str(v)])
}

/** A property block: its length, then the properties. */
export function properties (...props: Buffer[]): Buffer {
  const body = Buffer.concat(props)
  return Buffer.concat([varint(body.length), body])
}

/** A whole packet: first byte, Remaining Length, body. */
export function packet (first: number, ...body: Bytes[]): Buffer {
  const rest = Buffer.concat(body.map(bytesOf))
  return Buffer.concat([Buffer.from([first]), varint(rest.length), rest])
}

export interface ConnectBytes {
  /** 5, 4, or 3 (MQIsdp) */
  version?: 3 | 4 | 5
  /** the Protocol Name; by default the one of `version` */
  protocolName?: string
  /** Connect Flags; by default Clean Start and the flags of the fields given */
  flags?: number
  keepalive?: number
  /** the CONNECT property block (v5), e.g. properties(prop.four(0x11, 10)) */
  properties?: Buffer
  clientId?: string | Buffer
  will?: { properties?: Buffer, topic: string | Buffer, payload: string | Buffer, qos?: number, retain?: boolean }
  username?: string | Buffer
  password?: string | Buffer
  /** bytes after the last field */
  trailing?: Buffer
}

/** A CONNECT written field by field; flags follow the fields unless `flags` is given. */
export function connectBytes (c: ConnectBytes): Buffer {
  const version = c.version ?? 5
  let flags = 0x02
  if (c.will) flags |= 0x04 | ((c.will.qos ?? 0) << 3) | (c.will.retain === true ? 0x20 : 0)
  if (c.username !== undefined) flags |= 0x80
  if (c.password !== undefined) flags |= 0x40
  const keepalive = Buffer.alloc(2)
  keepalive.writeUInt16BE(c.keepalive ?? 30)
  const parts = [
    str(c.protocolName ?? (version === 3 ? 'MQIsdp' : 'MQTT')),
    Buffer.from([version, c.flags ?? flags]),
    keepalive
  ]
  if (version === 5) parts.push(c.properties ?? properties())
  parts.push(str(c.clientId ?? 'raw-' + Math.random().toString(16).slice(2, 10)))
  if (c.will) {
    if (version === 5) parts.push(c.will.properties ?? properties())
    parts.push(str(c.will.topic), str(c.will.payload))
  }
  if (c.username !== undefined) parts.push(str(c.username))
  if (c.password !== undefined) parts.push(str(c.password))
  if (c.trailing) parts.push(c.trailing)
  return packet(0x10, ...parts)
}

/** The first packet mqtt-packet's parser reads from `buf` at `version`. */
export function parsePacket (buf: Buffer, version: 3 | 4 | 5 = 5): Packet {
  const parser = mqtt.parser({ protocolVersion: version })
  let packet: Packet | undefined
  parser.on('packet', (p: Packet) => { packet ??= p })
  parser.parse(buf)
  if (packet === undefined) throw new Error('no packet')
  return packet
}
