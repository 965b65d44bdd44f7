/**
 * The stream aedes reads from and writes to (`broker.handle(stream)`), one
 * per connection: only what aedes uses of a Duplex (aedes-internals.ts
 * `AedesStream`). Packets reach aedes decoded (aedes-internals.ts
 * `injectPacket`), never as bytes, so the readable side is empty; the
 * writable side hands what aedes writes to the gateway with Node Writable's
 * semantics: one hand-over at a time, cork/uncork, write() false past the
 * high-water mark and 'drain' once everything was taken, 'close' on the tick
 * after destroy().
 *
 * Why not a Duplex: its two stream states, listener table and bound write
 * callback were about 470 bytes per idle connection (heap snapshot over 3000
 * connections), and a plain EventEmitter's listener table is a
 * dictionary-mode object of about 240 bytes. Listeners live in fields here,
 * one per event aedes uses.
 */
import type { AedesStream } from '../aedes-internals.js'
import { encodeBrokerWrite, type BrokerPacket } from './outbound/encode-broker-write.js'

/** bytes written and not yet taken by the gateway before write() asks aedes to wait ('drain'), as Node's Writable default */
export const HIGH_WATER_MARK = 16384

/** any listener: called with whatever the event carries */
type Listener = (...args: never[]) => void
type Listeners = Listener | Listener[] | undefined
interface OnceWrapper extends Listener { listener: Listener }

/** What a BrokerSide hands its writes to (the gateway). */
export interface BrokerSideOwner {
  /** Chunks aedes wrote; true when taken now, false when the owner calls `taken()` later (back-pressure). */
  fromBroker (chunks: Buffer[], writtenAt: number): boolean
  /** aedes or the owner destroyed the stream; `err` says why when it was an error. */
  brokerClosed (err: Error | null): void
}

export class BrokerSide implements AedesStream {
  /** aedes sets it to the Client it makes for this stream */
  client: unknown = undefined
  destroyed = false
  /** what Node's finished() reads of a writable stream */
  writable = true
  /** neither 'end' (nothing is ever readable) nor 'error' (the socket's errors are the gateway's) is ever emitted here */
  get quietEnds (): boolean { return true }
  /** bytes written and not yet taken by the owner (Writable's writableLength) */
  writableLength = 0
  private corked = 0
  /** corked by `writePacket` until the next tick */
  private tickCorked = false
  /** a hand-over the owner has not finished with */
  private handing = false
  private handedBytes = 0
  /** written while corked or during a hand-over, handed over together next */
  private queue: Buffer[] | undefined = undefined
  private needDrain = false
  /**
   * when the oldest write not yet handed over was made (writes wait while the
   * client is congested); one clock read per hand-over, not per chunk: aedes
   * writes a packet in several pieces
   */
  private oldestAt: number | undefined = undefined

  private onReadable: Listeners = undefined
  private onError: Listeners = undefined
  private onEnd: Listeners = undefined
  private onDrain: Listeners = undefined
  private onClose: Listeners = undefined
  private onFinish: Listeners = undefined
  private others: Map<string | symbol, Listeners> | undefined = undefined

  constructor (readonly owner: BrokerSideOwner) {}

  // ------------------------------------------------------------ writable

  /** aedes and mqtt-packet write Buffers and strings, without callbacks. */
  write (chunk: Buffer | Uint8Array | string, encoding?: BufferEncoding): boolean {
    if (this.destroyed) return false
    const buf = typeof chunk === 'string'
      ? Buffer.from(chunk, encoding ?? 'utf8')
      : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.oldestAt ??= Date.now()
    this.writableLength += buf.length
    // decided before the hand-over, as Writable does
    const ok = this.writableLength < HIGH_WATER_MARK
    if (!ok) this.needDrain = true
    if (this.corked > 0 || this.handing) (this.queue ??= []).push(buf)
    else this.handOver([buf], buf.length)
    return ok
  }

  /**
   * A PUBLISH or an acknowledgement aedes writes, encoded here in one piece
   * (outbound/encode-broker-write.ts) rather than by mqtt-packet in several
   * (aedes-internals.ts `offerWritesToStreams`). As mqtt-packet does, what
   * is written in one tick is handed over together, on the next; and as it
   * does, an acknowledgement's result is true whatever the stream's
   * (aedes then never waits for 'drain' after one). undefined: not taken.
   */
  writePacket (packet: object, version: number): boolean | undefined {
    if (version !== 3 && version !== 4 && version !== 5) return undefined
    const p = packet as BrokerPacket
    const buf = encodeBrokerWrite(p, version)
    if (buf === undefined) return undefined
    if (!this.tickCorked) {
      this.tickCorked = true
      this.cork()
      process.nextTick(uncorkTick, this)
    }
    const ok = this.write(buf)
    return p.cmd === 'publish' ? ok : true
  }

  /** the cork of `writePacket`'s tick ends */
  uncorkTick (): void {
    this.tickCorked = false
    this.uncork()
  }

  cork (): void {
    this.corked++
  }

  uncork (): void {
    if (this.corked === 0) return
    this.corked--
    if (this.corked === 0 && !this.handing) this.handQueue()
  }

  /** Nothing is ever readable: aedes gets packets, not bytes. */
  read (): null {
    return null
  }

  destroy (err?: Error | null): this {
    if (this.destroyed) return this
    this.destroyed = true
    this.writable = false
    this.queue = undefined
    this.owner.brokerClosed(err ?? null)
    process.nextTick(emitClose, this)
    return this
  }

  /** The owner took the chunks it was last handed: at once (`sync`), or once the client made progress. */
  taken (sync = false): void {
    if (!this.handing) return
    this.handing = false
    this.writableLength -= this.handedBytes
    this.handedBytes = 0
    if (this.corked === 0 && this.queue !== undefined) {
      this.handQueue()
      if (this.handing) return
    }
    if (this.needDrain && this.writableLength === 0 && !this.destroyed) {
      // Writable emits 'drain' on the next tick when the write completed synchronously
      if (sync) process.nextTick(emitDrain, this)
      else emitDrain(this)
    }
  }

  /** Is a 'drain' due? Once per write() that returned false, when nothing is waiting any more. */
  drainDue (): boolean {
    if (!this.needDrain || this.writableLength !== 0 || this.destroyed) return false
    this.needDrain = false
    return true
  }

  private handQueue (): void {
    const queue = this.queue
    if (queue === undefined || this.destroyed) return
    this.queue = undefined
    let bytes = 0
    for (const b of queue) bytes += b.length
    this.handOver(queue, bytes)
  }

  private handOver (chunks: Buffer[], bytes: number): void {
    const at = this.oldestAt ?? Date.now()
    this.oldestAt = undefined
    this.handing = true
    this.handedBytes = bytes
    if (this.owner.fromBroker(chunks, at)) this.taken(true)
  }

  // ------------------------------------------------------------ events (EventEmitter's behaviour, for the events aedes uses)

  on (event: string | symbol, listener: Listener): this {
    this.store(event, add(this.load(event), listener))
    return this
  }

  addListener (event: string | symbol, listener: Listener): this {
    return this.on(event, listener)
  }

  once (event: string | symbol, listener: Listener): this {
    const side = this
    let fired = false
    const wrapper = Object.assign(function (this: unknown, ...args: unknown[]): void {
      if (fired) return
      fired = true
      side.removeListener(event, wrapper)
      Reflect.apply(listener, this, args)
    }, { listener }) as OnceWrapper
    return this.on(event, wrapper)
  }

  /** Removes the last registration of `listener` (or of a once() wrapper of it), as EventEmitter does. */
  removeListener (event: string | symbol, listener: Listener): this {
    const current = this.load(event)
    if (current === undefined) return this
    if (typeof current === 'function') {
      if (current === listener || (current as OnceWrapper).listener === listener) this.store(event, undefined)
      return this
    }
    for (let i = current.length - 1; i >= 0; i--) {
      const l = current[i] as Listener
      if (l === listener || (l as OnceWrapper).listener === listener) {
        // in place: emit() iterates over a copy
        current.splice(i, 1)
        if (current.length === 1) this.store(event, current[0])
        break
      }
    }
    return this
  }

  off (event: string | symbol, listener: Listener): this {
    return this.removeListener(event, listener)
  }

  removeAllListeners (event?: string | symbol): this {
    if (event !== undefined) {
      this.store(event, undefined)
      return this
    }
    this.onReadable = this.onError = this.onEnd = this.onDrain = this.onClose = this.onFinish = undefined
    this.others = undefined
    return this
  }

  emit (event: string | symbol, ...args: unknown[]): boolean {
    const current = this.load(event)
    if (current === undefined) {
      if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error(`unhandled 'error' event: ${String(args[0])}`)
      return false
    }
    if (typeof current === 'function') {
      Reflect.apply(current, this, args)
      return true
    }
    // listeners added or removed while emitting take effect next time, as in EventEmitter
    for (const listener of current.slice()) Reflect.apply(listener, this, args)
    return true
  }

  listeners (event: string | symbol): Listener[] {
    const current = this.load(event)
    const list = current === undefined ? [] : typeof current === 'function' ? [current] : current.slice()
    return list.map(l => (l as OnceWrapper).listener ?? l)
  }

  listenerCount (event: string | symbol): number {
    const current = this.load(event)
    return current === undefined ? 0 : typeof current === 'function' ? 1 : current.length
  }

  /** aedes raises the limit; there is no warning here to silence. */
  setMaxListeners (_n: number): this {
    return this
  }

  private load (event: string | symbol): Listeners {
    switch (event) {
      case 'readable': return this.onReadable
      case 'error': return this.onError
      case 'end': return this.onEnd
      case 'drain': return this.onDrain
      case 'close': return this.onClose
      case 'finish': return this.onFinish
      default: return this.others?.get(event)
    }
  }

  private store (event: string | symbol, listeners: Listeners): void {
    switch (event) {
      case 'readable': this.onReadable = listeners; return
      case 'error': this.onError = listeners; return
      case 'end': this.onEnd = listeners; return
      case 'drain': this.onDrain = listeners; return
      case 'close': this.onClose = listeners; return
      case 'finish': this.onFinish = listeners; return
      default:
        if (listeners === undefined) this.others?.delete(event)
        else (this.others ??= new Map()).set(event, listeners)
    }
  }
}

function add (current: Listeners, listener: Listener): Listener | Listener[] {
  if (current === undefined) return listener
  if (typeof current === 'function') return [current, listener]
  // in place: emit() iterates over a copy
  current.push(listener)
  return current
}

function uncorkTick (side: BrokerSide): void {
  side.uncorkTick()
}

function emitClose (side: BrokerSide): void {
  side.emit('close')
}

function emitDrain (side: BrokerSide): void {
  if (side.drainDue()) side.emit('drain')
}
