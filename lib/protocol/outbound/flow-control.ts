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

/** What an outbound packet id in flight waits for (spec 4.3.2, 4.3.3). */
export const OutboundFlow = {
  /** not in flight */
  None: 0,
  /** a QoS 1 PUBLISH: PUBACK */
  QoS1: 1,
  /** a QoS 2 PUBLISH: PUBREC */
  QoS2Published: 2,
  /** a QoS 2 flow after the server's PUBREL: PUBCOMP */
  QoS2Released: 3
} as const
export type OutboundFlow = typeof OutboundFlow[keyof typeof OutboundFlow]

const NONE_HELD: HeldPublish[] = Object.freeze([]) as unknown as HeldPublish[]

export class OutboundWindow {
  /** packet ids of QoS 1/2 PUBLISH sent and not yet completed */
  private _inflight: Set<number> | undefined
  /** made on first use: most connections never have a QoS 1/2 message in flight */
  get inflight (): Set<number> { return (this._inflight ??= new Set()) }
  /** the QoS 2 ids in `inflight`, true once PUBREL went out; made on first use (most clients use QoS 1) */
  private _qos2: Map<number, boolean> | undefined
  /** messages waiting for room, from `heldHead` on; `NONE_HELD` (shared, never pushed to) until the first */
  private held: HeldPublish[] = NONE_HELD
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
      if (p.qos === 2) (this._qos2 ??= new Map()).set(id, false)
      return true
    }
    return false
  }

  /** Queues a PUBLISH that may not go out yet; with `evict`, returns what overflowed, to be dropped. */
  hold (p: HeldPublish, evict: boolean): HeldPublish[] {
    if (this.held === NONE_HELD) this.held = [p]
    else this.held.push(p)
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
    this._qos2?.delete(packetId)
    return this.inflight.delete(packetId)
  }

  /** The acknowledgement `packetId` waits for. */
  flowOf (packetId: number): OutboundFlow {
    if (this._inflight === undefined || !this._inflight.has(packetId)) return OutboundFlow.None
    const released = this._qos2?.get(packetId)
    if (released === undefined) return OutboundFlow.QoS1
    return released ? OutboundFlow.QoS2Released : OutboundFlow.QoS2Published
  }

  /** The server sent PUBREL for `packetId`: PUBCOMP completes it now. */
  released (packetId: number): void {
    if (this._qos2?.has(packetId) === true) this._qos2.set(packetId, true)
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
          if (next.qos === 2) (this._qos2 ??= new Map()).set(id, false)
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
      this.held = NONE_HELD
      this.heldHead = 0
    }
  }
}
