/**
 * An inbox entry's messages, for every reader of an inbox: the node's own
 * reads (inbox.ts), a dead node's adoption (adoption.ts) and a claim of one
 * of its sessions (orphans.ts). Two kinds of entry:
 * - **packed**, written by ROUTE (route-batch.ts), one per target inbox and
 *   call: `i`, the call's id, then for each group of the call that went to
 *   this inbox `n`, the number of the group's first message in the call,
 *   and `p`, the group's messages as the ROUTE argument carried them (each
 *   after its length, 4 bytes big-endian). The k-th message of a `p` (from
 *   0) has the id `{i}.{n + k}`. Redis stores, and a reader decodes, a few
 *   strings per call rather than four per message (ioredis' decoder works
 *   per string: lib/cluster/README.md, "QoS 1/2: what a message costs").
 * - **one field per message**: FORWARD's (forward.ts: `m`, `c`, `u`), and
 *   those of an older node (`m` then `u` per message; `m` alone before ids).
 */
import type { Logger } from 'pino'
import type { IPublishPacket } from 'mqtt-packet'
import { decodeRouted } from './wire.js'
import { ID_FIELD, TARGET_FIELD, type EntryMeta } from './forward.js'

/** the field of a packed entry with its call's id */
export const CALL_FIELD = 'i'
/** the field of a packed entry with the number in the call of the next `p`'s first message */
export const FIRST_FIELD = 'n'
/** the field of a packed entry with a group's messages, each after its length */
export const PACKED_FIELD = 'p'

/** A message of an inbox entry, with what the entry says of it (its id, the one session it was forwarded for). */
export interface EntryMessage extends EntryMeta {
  packet: IPublishPacket
}

/**
 * `messages` as one Buffer, each after its length (4 bytes, big-endian):
 * a ROUTE argument and a packed entry's `p`.
 */
export function packMessages (messages: readonly Buffer[], bytes = messages.reduce((sum, m) => sum + m.length, 0)): Buffer {
  const blob = Buffer.allocUnsafe(bytes + 4 * messages.length)
  let at = 0
  // byte stores and TypedArray set: Buffer's writeUInt32BE and copy (argument checks per call) were a few per cent of a publishing node
  for (const message of messages) {
    const length = message.length
    blob[at] = length >>> 24
    blob[at + 1] = (length >>> 16) & 0xff
    blob[at + 2] = (length >>> 8) & 0xff
    blob[at + 3] = length & 0xff
    blob.set(message, at + 4)
    at += 4 + length
  }
  return blob
}

const M = 0x6d
const ID = ID_FIELD.charCodeAt(0)
const TARGET = TARGET_FIELD.charCodeAt(0)
const CALL = CALL_FIELD.charCodeAt(0)
const FIRST = FIRST_FIELD.charCodeAt(0)
const PACKED = PACKED_FIELD.charCodeAt(0)

/** What decoding one entry keeps between its fields. */
class EntryReader {
  readonly messages: EntryMessage[] = []
  /** seconds the entry spent in the inbox (its id's first part is Redis' clock, ms, when it was added) */
  private inboxSeconds: number | undefined
  /** the message the fields after its `m` describe; undefined after one left out */
  current: EntryMessage | undefined
  callId: string | undefined
  first = Number.NaN
  /** whether a message field (`m` or `p`) was seen */
  found = false

  constructor (private readonly id: Buffer, private readonly logger: Logger) {}

  /** The message in `bytes` with the id `messageId`, kept unless expired; undefined when left out. */
  add (bytes: Buffer, messageId: string): EntryMessage | undefined {
    const packet = decodeRouted(bytes)
    if (packet instanceof Error) {
      this.warn(packet.message, 'a message of an inbox entry could not be decoded; dropped')
      return undefined
    }
    const expiry = packet.properties?.messageExpiryInterval
    if (expiry !== undefined && packet.properties !== undefined) {
      this.inboxSeconds ??= Math.floor(Math.max(0, Date.now() - Number(this.id.toString().split('-')[0])) / 1000)
      const left = expiry - this.inboxSeconds
      if (left <= 0) return undefined
      packet.properties.messageExpiryInterval = left
    }
    const message: EntryMessage = { packet, id: messageId }
    this.messages.push(message)
    return message
  }

  /** A packed `p`: its messages, numbered from the `n` before it; what follows a bad length is left out. */
  addPacked (blob: Buffer): void {
    const callId = this.callId
    const first = this.first
    if (callId === undefined || !Number.isSafeInteger(first)) {
      this.warn('packed messages without their call id or first number', 'an inbox entry could not be decoded; dropped')
      return
    }
    const size = blob.length
    let at = 0
    let n = first
    while (at < size) {
      const end = at + 4 + (at + 4 <= size ? blob.readUInt32BE(at) : 0)
      if (at + 4 > size || end > size) {
        this.warn(`packed messages truncated at byte ${at} of ${size}`, 'the rest of an inbox entry could not be decoded; dropped')
        return
      }
      this.add(blob.subarray(at + 4, end), callId + '.' + String(n++))
      at = end
    }
  }

  warn (err: string, msg: string): void {
    this.logger.warn({ id: this.id.toString(), err }, `cluster: ${msg}`)
  }
}

/**
 * The entry's PUBLISH packets in the order they were routed, their Message
 * Expiry Interval lessened by their time in the inbox; those expired or
 * undecodable are left out (logged). In an entry of one field per message,
 * a field `u` (the message's id) or `c` (the one session it was forwarded
 * for) belongs to the `m` before it; an `m` without `u` gets the id ''.
 */
export function decodeEntry (id: Buffer, fields: Buffer[], logger: Logger): EntryMessage[] {
  const entry = new EntryReader(id, logger)
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]
    const bytes = fields[i + 1]
    if (bytes === undefined || name === undefined || name.length !== 1) continue
    switch (name[0]) {
      case PACKED:
        entry.found = true
        entry.current = undefined
        entry.addPacked(bytes)
        break
      case CALL:
        entry.callId = bytes.toString()
        break
      case FIRST:
        entry.first = Number(bytes.toString())
        break
      case M:
        entry.found = true
        entry.current = entry.add(bytes, '')
        break
      case ID:
        if (entry.current !== undefined) entry.current.id = bytes.toString()
        break
      case TARGET:
        if (entry.current !== undefined) entry.current.forClient = bytes.toString()
        break
    }
  }
  if (!entry.found) entry.warn('no message field', 'an inbox entry could not be decoded; dropped')
  return entry.messages
}
