/**
 * The QoS 0 PUBLISHes culex sends one client in one turn of the event loop
 * (flows/fast-paths.ts), written straight into one growing buffer: the
 * socket gets it as it is, with no buffer per message and no concatenation
 * of them afterwards. Bytes once written are never written again (a bigger
 * buffer takes a copy), so another client's batch may copy a message from
 * here (outbound/encode-once.ts).
 */
import { frameOf, type Frame } from '../frame.js'

/** a pooled slice for the first few small messages; past it, one buffer of its own */
const FIRST_BYTES = 1024

export class QoS0Batch {
  buf: Buffer
  used = 0
  /** each PUBLISH's length, in order */
  readonly lengths: number[] = []

  constructor () {
    this.buf = Buffer.allocUnsafe(FIRST_BYTES)
  }

  /** Room for one PUBLISH of `size` bytes: where to write it in `buf`. */
  reserve (size: number): number {
    const at = this.used
    if (at + size > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, at + size))
      this.buf.copy(bigger, 0, 0, at)
      this.buf = bigger
    }
    this.used = at + size
    this.lengths.push(size)
    return at
  }

  /** One PUBLISH encoded elsewhere: `bytes[start, start + length)`. */
  append (bytes: Buffer, start = 0, length = bytes.length): void {
    const at = this.reserve(length)
    bytes.copy(this.buf, at, start, start + length)
  }

  /** what goes to the socket */
  bytes (): Buffer { return this.buf.subarray(0, this.used) }

  /** the PUBLISHes one by one, for the outbound steps of every PUBLISH */
  frames (): Frame[] {
    const frames: Frame[] = []
    let at = 0
    for (const n of this.lengths) {
      frames.push(frameOf(this.buf.subarray(at, at + n)))
      at += n
    }
    return frames
  }
}
