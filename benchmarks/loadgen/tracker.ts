// Delivery bookkeeping from the sequence numbers carried in each payload:
// which (subscriber, publisher, seq) arrived, how often, and in what order.
import type { Integrity } from './jobs.js'

export type DeliveryMode = 'every' | 'one'

export class DeliveryTracker {
  /** seen[scope * publishers + publisher][seq]: how often that message arrived. */
  private readonly seen: Uint8Array[]
  /** Highest seq seen so far per (subscriber, publisher) stream, -1 for none. */
  private readonly highest: Int32Array
  private uniqueCount = 0
  private duplicates = 0
  private reorders = 0
  private foreign = 0
  private total = 0
  expected: number
  private refusedCount = 0

  /**
   * mode 'every': each subscriber must receive every message (fan-in/out).
   * mode 'one': the subscribers form one group and each message must reach
   * exactly one of them (shared subscription), so duplicates count across it.
   */
  constructor (
    private readonly subscribers: number,
    private readonly publishers: number,
    private readonly perPublisher: number,
    private readonly mode: DeliveryMode
  ) {
    const scopes = mode === 'every' ? subscribers : 1
    this.seen = Array.from({ length: scopes * publishers }, () => new Uint8Array(perPublisher))
    this.highest = new Int32Array(subscribers * publishers).fill(-1)
    this.expected = scopes * publishers * perPublisher
  }

  /** Records one delivery; returns true when it was the first of its message. */
  record (subscriber: number, publisher: number, seq: number): boolean {
    this.total++
    if (publisher >= this.publishers || seq >= this.perPublisher || subscriber >= this.subscribers) {
      this.foreign++
      return false
    }
    const scope = this.mode === 'every' ? subscriber : 0
    const marks = this.seen[scope * this.publishers + publisher]!
    const stream = subscriber * this.publishers + publisher
    const times = marks[seq]!
    if (times > 0) {
      this.duplicates++
      marks[seq] = Math.min(255, times + 1)
      return false
    }
    marks[seq] = 1
    this.uniqueCount++
    if (seq < this.highest[stream]!) this.reorders++
    else this.highest[stream] = seq
    return true
  }

  /**
   * Messages the broker explicitly refused (PUBACK/PUBREC reason ≥ 0x80, e.g.
   * 0x97 Quota exceeded) are not expected anywhere: the publisher was told.
   */
  excuse (messages: number): void {
    this.refusedCount += messages
    this.expected -= messages
  }

  recordForeign (): void {
    this.total++
    this.foreign++
  }

  get unique (): number {
    return this.uniqueCount
  }

  get deliveries (): number {
    return this.total
  }

  get complete (): boolean {
    return this.uniqueCount >= this.expected
  }

  integrity (): Integrity {
    return {
      expected: this.expected,
      unique: this.uniqueCount,
      lost: this.expected - this.uniqueCount,
      duplicated: this.duplicates,
      reordered: this.reorders,
      unexpected: this.foreign,
      refused: this.refusedCount
    }
  }
}
