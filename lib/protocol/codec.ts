/**
 * Full decoding and encoding of single packets with mqtt-packet, for the
 * packets the gateway must understand whole (CONNECT, SUBSCRIBE, CONNACK,
 * SUBACK, AUTH, ...). The hot path (PUBLISH, acks) uses `frame.ts` instead.
 */
import mqtt from 'mqtt-packet'
import type { Packet } from 'mqtt-packet'
import { PacketType, type Frame } from './frame.js'

export type ProtocolVersion = 3 | 4 | 5

export function decodeFrame (frame: Frame, protocolVersion: ProtocolVersion | undefined): Packet | Error {
  if (protocolVersion === 3 && frame.flags === 0x0a && (frame.type === PacketType.SUBSCRIBE || frame.type === PacketType.UNSUBSCRIBE)) {
    // MQTT 3.1 sends them again with DUP set (inbound/ack.ts validFixedHeaderFlags);
    // mqtt-packet knows only 0010: decoded without the DUP bit, which changes nothing for them
    const copy = Buffer.from(frame.buf)
    copy[0] = (copy[0] as number) & ~0x08
    return decodeBuffer(copy, protocolVersion)
  }
  return decodeBuffer(frame.buf, protocolVersion)
}

interface CachedParser {
  parser: ReturnType<typeof mqtt.parser>
  packet: Packet | undefined
  error: Error | undefined
}

/**
 * One mqtt-packet parser, reused: making one per packet (with its
 * BufferList stream) was a visible part of the connect path in a CPU
 * profile. Decoding is synchronous, so a single parser serves every
 * connection; it is replaced whenever a decode leaves it in any state but
 * "between packets".
 */
let cached: CachedParser | undefined

/** mqtt-packet's parser step (0: at the start of a packet) */
interface ParserState { _stateCounter: number }

function freshParser (): CachedParser {
  const entry: CachedParser = { parser: mqtt.parser(), packet: undefined, error: undefined }
  entry.parser.on('packet', (p: Packet) => { entry.packet ??= p })
  entry.parser.on('error', (e: Error) => { entry.error ??= e })
  return entry
}

/** Decodes one whole packet. */
export function decodeBuffer (buf: Buffer, protocolVersion: ProtocolVersion | undefined): Packet | Error {
  const entry = cached ?? freshParser()
  cached = undefined
  entry.packet = undefined
  entry.error = undefined
  // the parser replaces its settings with the CONNECT packet it reads, so set them each time
  ;(entry.parser as unknown as { settings: object }).settings = { protocolVersion: protocolVersion ?? 4 }
  const left = entry.parser.parse(buf)
  const { packet, error } = entry
  entry.packet = undefined
  // kept only "between packets": a stray byte after the packet is already
  // read as the start of the next one, though parse() reports nothing left
  if (error === undefined && packet !== undefined && left === 0 && (entry.parser as unknown as ParserState)._stateCounter === 0) cached = entry
  if (error) return error
  if (!packet) return new Error('incomplete packet')
  return packet
}

export function encode (packet: Packet, protocolVersion: ProtocolVersion | undefined): Buffer {
  return mqtt.generate(packet, { protocolVersion: protocolVersion ?? 4 })
}
