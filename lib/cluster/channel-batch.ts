/**
 * QoS 0 messages between nodes (routes.ts), coalesced: the messages a node
 * routes to another node in one turn of the event loop go out as ONE Redis
 * PUBLISH on that node's channel, their MQTT PUBLISH packets one after the
 * other (each carries its own length, spec 2.1.4), in the order routed. In
 * cluster-fanin-qos0 one PUBLISH per message made Redis' and ioredis' work
 * per message (the command on the publishing node, the Pub/Sub reply on the
 * receiving one) the largest routing cost. At most once, as QoS 0 is: a
 * PUBLISH Redis does not take loses its messages, as it lost one before.
 */
import { readVarInt } from '../protocol/frame.js'

/** bytes sent to one node in one PUBLISH at most (a single larger message goes alone) */
export const MAX_CHANNEL_BYTES = 1 << 20

/** Sends one PUBLISH of `bytes` to `node`'s channel. */
export type ChannelPublish = (node: string, bytes: Buffer) => void

export class ChannelBatcher {
  private readonly pending = new Map<string, { messages: Buffer[], bytes: number }>()
  private scheduled = false
  /** PUBLISH commands sent, for tests */
  publishes = 0

  constructor (private readonly publish: ChannelPublish) {}

  /** Queues `message` (an encoded PUBLISH) for `node`; sent after this turn's I/O. */
  add (node: string, message: Buffer): void {
    let batch = this.pending.get(node)
    if (batch !== undefined && batch.bytes + message.length > MAX_CHANNEL_BYTES) {
      this.send(node, batch.messages, batch.bytes)
      batch = undefined
    }
    if (batch === undefined) this.pending.set(node, batch = { messages: [], bytes: 0 })
    batch.messages.push(message)
    batch.bytes += message.length
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false
    for (const [node, batch] of this.pending) this.send(node, batch.messages, batch.bytes)
    this.pending.clear()
  }

  private send (node: string, messages: Buffer[], bytes: number): void {
    this.pending.delete(node)
    this.publishes++
    this.publish(node, messages.length === 1 ? messages[0] as Buffer : Buffer.concat(messages, bytes))
  }
}

/** The packets one after the other in `bytes`; an Error when they do not end where `bytes` does. */
export function splitPackets (bytes: Buffer): Buffer[] | Error {
  const packets: Buffer[] = []
  let at = 0
  while (at < bytes.length) {
    const length = readVarInt(bytes, at + 1)
    if (length === null) return new Error('truncated fixed header')
    const end = at + 1 + length.bytes + length.value
    if (end > bytes.length) return new Error('truncated packet')
    packets.push(bytes.subarray(at, end))
    at = end
  }
  return packets
}
