/**
 * Full decoding and encoding of single packets with mqtt-packet, for the
 * packets the gateway must understand whole (CONNECT, SUBSCRIBE, CONNACK,
 * SUBACK, AUTH, ...). The hot path (PUBLISH, acks) uses `frame.ts` instead.
 */
import mqtt from 'mqtt-packet'
import type { Packet } from 'mqtt-packet'
import type { Frame } from './frame.js'

export type ProtocolVersion = 3 | 4 | 5

export function decodeFrame (frame: Frame, protocolVersion: ProtocolVersion | undefined): Packet | Error {
  return decodeBuffer(frame.buf, protocolVersion)
}

/** Decodes one whole packet. */
export function decodeBuffer (buf: Buffer, protocolVersion: ProtocolVersion | undefined): Packet | Error {
  const parser = mqtt.parser({ protocolVersion: protocolVersion ?? 4 })
  let packet: Packet | undefined
  let error: Error | undefined
  parser.on('packet', (p: Packet) => { packet ??= p })
  parser.on('error', (e: Error) => { error ??= e })
  parser.parse(buf)
  if (error) return error
  if (!packet) return new Error('incomplete packet')
  return packet
}

export function encode (packet: Packet, protocolVersion: ProtocolVersion | undefined): Buffer {
  return mqtt.generate(packet, { protocolVersion: protocolVersion ?? 4 })
}
