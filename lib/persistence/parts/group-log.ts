// The shared-group log part: what shared subscriptions (lib/shared) keep
// across a restart, i.e. group memberships of persistent sessions and each
// group's QoS 1/2 messages not yet acknowledged by a member. The interface
// lives here, in persistence, so that lib/shared (a higher layer) depends on
// the store and not the other way round.

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
