// Sends a pre-encoded run of PUBLISH packets over one connection: as fast as
// the socket accepts them (QoS 0), within an in-flight window (QoS 1/2), and
// optionally paced to a fixed rate (latency runs).
import type { MqttConn } from './conn.js'
import { stampSendTime, type EncodedPublishes } from './encode.js'
import type { QoS } from './jobs.js'

/** Bytes per write: big enough to amortise syscalls, small enough to interleave publishers. */
const WRITE_CHUNK_BYTES = 64 * 1024
const PACE_TICK_MS = 1

export interface PublisherOptions {
  readonly qos: QoS
  readonly inflight: number
  /** Messages per second for this publisher; null = unpaced. */
  readonly ratePerSecond: number | null
  readonly stampTime: boolean
  /** Called whenever the publisher may have become done. */
  readonly onProgress: () => void
  /** Called when the broker refuses a PUBLISH (reason code ≥ 0x80). */
  readonly onRefused: (messages: number) => void
}

export class Publisher {
  private next = 0
  private completedCount = 0
  private nackedCount = 0
  readonly nackReasons: Record<string, number> = {}
  private blocked = false
  private stopped = false
  private pumpQueued = false
  private paceTimer: NodeJS.Timeout | null = null
  private startNs = 0n
  lastAckNs = 0n
  private readonly chunkPackets: number

  constructor (private readonly conn: MqttConn, private readonly encoded: EncodedPublishes, private readonly options: PublisherOptions) {
    this.chunkPackets = Math.max(1, Math.floor(WRITE_CHUNK_BYTES / encoded.packetBytes))
    conn.handlers.published = (_messageId, reasonCode) => {
      this.completedCount++
      if (reasonCode >= 0x80) {
        this.nackedCount++
        const key = `0x${reasonCode.toString(16)}`
        this.nackReasons[key] = (this.nackReasons[key] ?? 0) + 1
        options.onRefused(1)
      }
      this.lastAckNs = process.hrtime.bigint()
      this.schedulePump()
      if (this.done) options.onProgress()
    }
  }

  start (): void {
    this.startNs = process.hrtime.bigint()
    this.pump()
  }

  stop (): void {
    this.stopped = true
    if (this.paceTimer !== null) clearTimeout(this.paceTimer)
  }

  get sent (): number {
    return this.next
  }

  get completed (): number {
    return this.options.qos === 0 ? this.next : this.completedCount
  }

  get nacked (): number {
    return this.nackedCount
  }

  get done (): boolean {
    return this.next === this.encoded.count && (this.options.qos === 0 || this.completedCount >= this.encoded.count)
  }

  /** Acks arrive in bursts; refill the window once per burst, not once per ack. */
  private schedulePump (): void {
    if (this.pumpQueued) return
    this.pumpQueued = true
    process.nextTick(() => { this.pumpQueued = false; this.pump() })
  }

  private allowedByRate (): number {
    const rate = this.options.ratePerSecond
    if (rate === null) return this.encoded.count
    const elapsedS = Number(process.hrtime.bigint() - this.startNs) / 1e9
    return Math.min(this.encoded.count, Math.floor(elapsedS * rate) + 1)
  }

  private pump (): void {
    if (this.blocked || this.stopped) return
    let limit = this.allowedByRate()
    if (this.options.qos > 0) limit = Math.min(limit, this.completedCount + this.options.inflight)
    const { data, packetBytes } = this.encoded
    while (this.next < limit) {
      const end = Math.min(limit, this.next + this.chunkPackets)
      if (this.options.stampTime) {
        const now = process.hrtime.bigint()
        for (let i = this.next; i < end; i++) stampSendTime(this.encoded, i, now)
      }
      const writable = this.conn.write(data.subarray(this.next * packetBytes, end * packetBytes))
      this.next = end
      if (!writable) {
        // Respect back-pressure: the broker reads as fast as it can process.
        this.blocked = true
        void this.conn.drained().then(() => { this.blocked = false; this.pump() })
        return
      }
    }
    if (this.options.qos === 0 && this.done) this.options.onProgress()
    if (this.options.ratePerSecond !== null && this.next < this.encoded.count && this.paceTimer === null) {
      this.paceTimer = setTimeout(() => { this.paceTimer = null; this.pump() }, PACE_TICK_MS)
    }
  }
}
