/**
 * The order of the acknowledgements of a client's PUBLISHes: PUBACK and
 * PUBREC go out in the order the PUBLISHes were received [MQTT-4.6.0-2]
 * [MQTT-4.6.0-3], whoever answers them. A PUBLISH handed to aedes takes its
 * place when the gateway forwards it (`expect`) and aedes' acknowledgement
 * fills that place later (`fromBroker`), after the store write for a
 * persistent subscriber; an acknowledgement the gateway answers itself (a
 * refusal) is ready at once (`own`) but waits behind the places before it.
 */
import type { Frame } from '../frame.js'

const NONE = Buffer.alloc(0)

/** One acknowledgement: a class (one shape, no closures per ack). */
export class PendingAck {
  /** may go out once every acknowledgement before it went */
  ready = false
  /** forwarded to aedes, which has not written its acknowledgement yet */
  expected: boolean
  buf: Buffer = NONE
  /** aedes' frame (undefined for an acknowledgement the gateway built) */
  frame: Frame | undefined
  /** a QoS 1 PUBACK waiting for aedes' `published` of its message */
  waiting = false
  /** MQTT 5 success: the message's topic, to answer 0x10 when no subscription matches it */
  topic: string | undefined

  constructor (readonly packetId: number, expected: boolean) {
    this.expected = expected
  }
}

export class AckOrder {
  private readonly entries: PendingAck[] = []

  /** A QoS 1/2 PUBLISH went to aedes: its acknowledgement goes out at this place. */
  expect (packetId: number): void {
    this.entries.push(new PendingAck(packetId, true))
  }

  /**
   * aedes wrote the acknowledgement of `packetId`: the oldest place expecting
   * it (a client may repeat a packet id), or a new place at the end.
   */
  fromBroker (packetId: number, frame: Frame): PendingAck {
    let entry = this.entries.find(e => e.expected && e.packetId === packetId)
    if (entry === undefined) {
      entry = new PendingAck(packetId, false)
      this.entries.push(entry)
    }
    entry.expected = false
    entry.frame = frame
    entry.buf = frame.buf
    return entry
  }

  /** An acknowledgement the gateway built: ready, behind the ones before it. */
  own (packetId: number, buf: Buffer): void {
    const entry = new PendingAck(packetId, false)
    entry.buf = buf
    entry.ready = true
    this.entries.push(entry)
  }

  /** The oldest PUBACK of `packetId` waiting for aedes' `published`. */
  waitingFor (packetId: number): PendingAck | undefined {
    return this.entries.find(e => e.waiting && e.packetId === packetId)
  }

  /** The next acknowledgement if it may go now, taken from the queue. */
  takeReady (): Buffer | undefined {
    const first = this.entries[0]
    if (first === undefined || !first.ready) return undefined
    this.entries.shift()
    return first.buf
  }
}
