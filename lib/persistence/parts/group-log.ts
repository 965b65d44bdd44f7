// The shared-group log part: what shared subscriptions (lib/shared) keep
// across a restart, i.e. group memberships of persistent sessions and each
// group's QoS 1/2 messages not yet acknowledged by a member. The interface
// lives here, in persistence, so that lib/shared (a higher layer) depends on
// the store and not the other way round.
import { encodePacket, encodeRecord } from '../codec.js'
import type { StoredPacket } from '../types.js'
import { KEY } from './keys.js'
import type { WriteThrough } from './write-through.js'

export interface StoredMember {
  group: string
  clientId: string
  qos: 0 | 1 | 2
  subscriptionIdentifier?: number
  retainAsPublished?: boolean
}

export interface StoredMessage {
  topic: string
  payload: Buffer
  qos: 1 | 2
  retain: boolean
  properties?: Record<string, unknown>
  /** absolute Message Expiry deadline, ms */
  messageExpiry?: number
  publisherId?: string
  /**
   * how often it was delivered (lib/shared/policy.ts): written with every
   * delivery after the first, so a restart does not reset it
   */
  deliveryCount?: number
  /** the member it was delivered to last (for a dead letter's reason) */
  lastMember?: string
  /** absolute ms before which it is not offered again (an abandoned message's backoff) */
  notBefore?: number
}

export interface GroupLog {
  putMember (member: StoredMember): Promise<void>
  delMember (group: string, clientId: string): Promise<void>
  members (): AsyncIterable<StoredMember>
  /**
   * `seq` orders a group's messages. Returns a promise that resolves once the
   * message is durable, or undefined when it already is (a store kept in
   * memory): the dispatcher calls this once per message and group, so a
   * store that has nothing to wait for spares it a promise.
   */
  putMessage (group: string, seq: number, message: StoredMessage): Promise<void> | undefined
  /** As putMessage: a promise when the deletion is still under way, else undefined. */
  delMessage (group: string, seq: number): Promise<void> | undefined
  messages (): AsyncIterable<{ group: string, seq: number, message: StoredMessage }>
}

/** The group log in memory only: lib/shared's fallback when the store has none. */
export class MemoryGroupLog implements GroupLog {
  private readonly memberMap = new Map<string, StoredMember>()
  private readonly messageMap = new Map<string, Map<number, StoredMessage>>()

  async putMember (member: StoredMember): Promise<void> {
    this.memberMap.set(member.group + '\u0000' + member.clientId, member)
  }

  async delMember (group: string, clientId: string): Promise<void> {
    this.memberMap.delete(group + '\u0000' + clientId)
  }

  async * members (): AsyncIterable<StoredMember> {
    yield * this.memberMap.values()
  }

  putMessage (group: string, seq: number, message: StoredMessage): undefined {
    let log = this.messageMap.get(group)
    if (!log) this.messageMap.set(group, log = new Map())
    log.set(seq, message)
    return undefined
  }

  delMessage (group: string, seq: number): undefined {
    const log = this.messageMap.get(group)
    log?.delete(seq)
    if (log?.size === 0) this.messageMap.delete(group)
    return undefined
  }

  async * messages (): AsyncIterable<{ group: string, seq: number, message: StoredMessage }> {
    for (const [group, log] of this.messageMap) {
      for (const [seq, message] of log) yield { group, seq, message }
    }
  }
}

/** The store's group log: in memory, written through to the store's backend. */
export class StoreGroupLog implements GroupLog {
  readonly #members = new Map<string, StoredMember>()
  readonly #messages = new Map<string, Map<number, StoredMessage>>()

  constructor (private readonly io: WriteThrough) {}

  async putMember (member: StoredMember): Promise<void> {
    this.io.checkOpen()
    this.#members.set(member.group + '\u0000' + member.clientId, member)
    if (this.io.durable) await this.io.put(KEY.sharedMember(member.group, member.clientId), encodeRecord(member))
  }

  async delMember (group: string, clientId: string): Promise<void> {
    this.io.checkOpen()
    if (this.#members.delete(group + '\u0000' + clientId)) await this.io.del(KEY.sharedMember(group, clientId))
  }

  members (): AsyncIterable<StoredMember> {
    return iterate([...this.#members.values()])
  }

  // without a backend the log is only this map: nothing to encode or wait for
  putMessage (group: string, seq: number, message: StoredMessage): Promise<void> | undefined {
    this.io.checkOpen()
    let log = this.#messages.get(group)
    if (!log) this.#messages.set(group, log = new Map())
    log.set(seq, message)
    return this.io.durable ? this.io.put(KEY.sharedMessage(group, seq), encodePacket(message as unknown as StoredPacket)) : undefined
  }

  delMessage (group: string, seq: number): Promise<void> | undefined {
    this.io.checkOpen()
    const log = this.#messages.get(group)
    if (!log?.delete(seq)) return undefined
    if (log.size === 0) this.#messages.delete(group)
    return this.io.durable ? this.io.del(KEY.sharedMessage(group, seq)) : undefined
  }

  messages (): AsyncIterable<{ group: string, seq: number, message: StoredMessage }> {
    const all: Array<{ group: string, seq: number, message: StoredMessage }> = []
    for (const [group, log] of this.#messages) for (const [seq, message] of log) all.push({ group, seq, message })
    return iterate(all)
  }

  /** a session that ended leaves its groups; the last write, if any */
  removeClient (clientId: string): Promise<void> | undefined {
    let write: Promise<void> | undefined
    for (const [key, member] of this.#members) {
      if (member.clientId !== clientId) continue
      this.#members.delete(key)
      write = this.io.del(KEY.sharedMember(member.group, clientId)) ?? write
    }
    return write
  }

  /** in-memory part of a member loaded from disk */
  restoreMember (member: StoredMember): void {
    this.#members.set(member.group + '\u0000' + member.clientId, member)
  }

  /** in-memory part of a log entry loaded from disk */
  restoreMessage (group: string, seq: number, body: StoredPacket): void {
    let log = this.#messages.get(group)
    if (!log) this.#messages.set(group, log = new Map())
    const message: StoredMessage = {
      topic: String(body.topic),
      payload: Buffer.isBuffer(body.payload) ? body.payload : Buffer.from(body.payload ?? ''),
      qos: body.qos === 2 ? 2 : 1,
      retain: body.retain === true
    }
    if (body.properties !== undefined) message.properties = body.properties
    if (body.messageExpiry !== undefined) message.messageExpiry = body.messageExpiry
    if (typeof body.publisherId === 'string') message.publisherId = body.publisherId
    if (typeof body.deliveryCount === 'number') message.deliveryCount = body.deliveryCount
    if (typeof body.lastMember === 'string') message.lastMember = body.lastMember
    if (typeof body.notBefore === 'number') message.notBefore = body.notBefore
    log.set(seq, message)
  }
}

async function * iterate<T> (items: T[]): AsyncIterable<T> {
  yield * items
}
