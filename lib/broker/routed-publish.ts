/**
 * Messages from other nodes (QoS 0 from the node's channel, QoS 1/2 from
 * its inbox) enter aedes a window at a time, in their order. They come in
 * bursts of thousands (one Redis read), and aedes' emitter queues what is
 * published beyond its concurrency (100) in an array it takes from the
 * front with shift(), which costs the whole queue's length each time: in a
 * cluster-fanin-qos0 profile that was half of the receiving node's time.
 * Kept below that concurrency, a burst waits here instead, in a queue taken
 * by index.
 */
import type { Aedes, PublishPacket } from 'aedes'

/** messages from other nodes in aedes at once: below aedes' default concurrency (100), room left for local clients */
export const ROUTED_WINDOW = 64

export type Done = (err?: Error | null) => void

/** Publishes through aedes, in the order called, with at most `window` not yet completed. */
export function windowedPublish (aedes: Pick<Aedes, 'publish'>, window = ROUTED_WINDOW): (packet: PublishPacket, done: Done) => void {
  let inFlight = 0
  let queue: Array<[PublishPacket, Done]> = []
  let head = 0
  const start = (packet: PublishPacket, done: Done): void => {
    inFlight++
    aedes.publish(packet, (err) => {
      inFlight--
      next()
      done(err)
    })
  }
  // a publish that completes at once calls next() from within next(): the outer loop goes on instead (no recursion per message)
  let draining = false
  const next = (): void => {
    if (draining) return
    draining = true
    while (inFlight < window && head < queue.length) {
      const [packet, done] = queue[head] as [PublishPacket, Done]
      queue[head++] = undefined as unknown as [PublishPacket, Done]
      start(packet, done)
    }
    draining = false
    if (head === queue.length && head > 0) {
      queue = []
      head = 0
    }
  }
  return (packet, done) => {
    if (inFlight < window && head === queue.length) start(packet, done)
    else queue.push([packet, done])
  }
}
