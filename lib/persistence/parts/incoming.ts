// Inbound QoS 2: a PUBLISH received and answered with PUBREC, kept per
// session and packet id until its PUBREL arrives (spec 4.3.3).
import { clonePacket, encodePacket, packetFromBody, queuedBody } from '../codec.js'
import type { StoredPacket } from '../types.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface IncomingQoS2 {
  /** packets held, over every session */
  readonly count: number
  put (clientId: string, messageId: number, packet: StoredPacket): Promise<void> | undefined
  /** a copy of the packet, or undefined */
  get (clientId: string, messageId: number): StoredPacket | undefined
  /** removes the packet; undefined when there was none */
  delete (clientId: string, messageId: number): { written: Promise<void> | undefined } | undefined
  /** drops every packet of a session (Clean Start, session end) */
  clear (clientId: string): Promise<void> | undefined
  /** in-memory part of a packet loaded from disk */
  restore (clientId: string, messageId: number, packet: StoredPacket): void
}

export class MemoryIncoming implements IncomingQoS2 {
  readonly #incoming = new Map<string, Map<number, StoredPacket>>()
  #count = 0

  constructor (private readonly io: WriteThrough) {}

  get count (): number {
    return this.#count
  }

  put (clientId: string, messageId: number, packet: StoredPacket): Promise<void> | undefined {
    const stored = packetFromBody(queuedBody(packet), messageId)
    stored.messageId = messageId
    this.restore(clientId, messageId, stored)
    return this.io.put(KEY.incoming(clientId, messageId), encodePacket(stored))
  }

  get (clientId: string, messageId: number): StoredPacket | undefined {
    const found = this.#incoming.get(clientId)?.get(messageId)
    return found === undefined ? undefined : clonePacket(found)
  }

  delete (clientId: string, messageId: number): { written: Promise<void> | undefined } | undefined {
    const store = this.#incoming.get(clientId)
    if (store === undefined || !store.delete(messageId)) return undefined
    this.#count--
    if (store.size === 0) this.#incoming.delete(clientId)
    return { written: this.io.del(KEY.incoming(clientId, messageId)) }
  }

  clear (clientId: string): Promise<void> | undefined {
    const store = this.#incoming.get(clientId)
    if (store === undefined) return undefined
    let write: Promise<void> | undefined
    for (const messageId of store.keys()) write = this.io.del(KEY.incoming(clientId, messageId)) ?? write
    this.#count -= store.size
    this.#incoming.delete(clientId)
    return write
  }

  restore (clientId: string, messageId: number, packet: StoredPacket): void {
    let store = this.#incoming.get(clientId)
    if (store === undefined) {
      store = new Map()
      this.#incoming.set(clientId, store)
    }
    if (!store.has(messageId)) this.#count++
    store.set(messageId, packet)
  }
}
