/**
 * Outbound flow control (spec 4.9): never more unacknowledged QoS 1 and 2
 * PUBLISH packets in flight to a client than the Receive Maximum it sent
 * [MQTT-3.3.4-9] (a configurable window for 3.1.1 clients); the rest wait
 * here, in order (spec 4.9 allows sending QoS 0 meanwhile; culex keeps
 * order). A client that never acknowledges cannot make this grow without
 * bound: past `maxQueued`, QoS 0 messages are dropped first, then the oldest.
 */
import type { Frame } from '../frame.js'

export interface HeldPublish {
  frame: Frame
  qos: number
  packetId: number | undefined
  /** when it started waiting (ms), for Message Expiry */
  heldAt?: number
}

export class OutboundWindow {
  /** packet ids of QoS 1/2 PUBLISH sent and not yet completed */
  private _inflight: Set<number> | undefined
  /** made on first use: most connections never have a QoS 1/2 message in flight */
  get inflight (): Set<number> { return (this._inflight ??= new Set()) }
  private readonly held: HeldPublish[] = []
  private heldHead = 0

  constructor (public limit: number, public maxQueued: number) {}

  get queued (): number { return this.held.length - this.heldHead }

  /** May this PUBLISH go out now? A retransmission of an id in flight always may. */
  admit (p: HeldPublish): boolean {
    if (p.qos === 0) return this.queued === 0
    const id = p.packetId as number
    if (this.inflight.has(id)) return true
    if (this.queued === 0 && this.inflight.size < this.limit) {
      this.inflight.add(id)
      return true
    }
    return false
  }

  /** Queues a PUBLISH that may not go out yet; with `evict`, returns what overflowed, to be dropped. */
  hold (p: HeldPublish, evict: boolean): HeldPublish[] {
    this.held.push(p)
    return evict ? this.trim() : []
  }

  /** Drops what is over `maxQueued`, QoS 0 first; returns it. */
  trim (): HeldPublish[] {
    const dropped: HeldPublish[] = []
    while (this.queued > this.maxQueued) {
      const victim = this.evict()
      if (victim) dropped.push(victim)
    }
    return dropped
  }

  private evict (): HeldPublish | undefined {
    // the oldest QoS 0 message first, else the oldest message
    for (let i = this.heldHead; i < this.held.length; i++) {
      if ((this.held[i] as HeldPublish).qos === 0) return this.held.splice(i, 1)[0]
    }
    const victim = this.held[this.heldHead]
    this.heldHead++
    this.compact()
    return victim
  }

  /** The client completed `packetId` (PUBACK, PUBCOMP, or a failed PUBREC). */
  complete (packetId: number): boolean {
    return this.inflight.delete(packetId)
  }

  /** Releases what may go out now, in order. */
  release (): HeldPublish[] {
    const out: HeldPublish[] = []
    while (this.heldHead < this.held.length) {
      const next = this.held[this.heldHead] as HeldPublish
      if (next.qos > 0) {
        const id = next.packetId as number
        if (!this.inflight.has(id)) {
          if (this.inflight.size >= this.limit) break
          this.inflight.add(id)
        }
      }
      out.push(next)
      this.heldHead++
    }
    this.compact()
    return out
  }

  private compact (): void {
    if (this.heldHead > 1024 && this.heldHead * 2 > this.held.length) {
      this.held.splice(0, this.heldHead)
      this.heldHead = 0
    } else if (this.heldHead === this.held.length) {
      this.held.length = 0
      this.heldHead = 0
    }
  }
}
