/**
 * A routed QoS 2 message's id (`u`, given by ROUTE: route-batch.ts; the same
 * in every inbox it went to and in a FORWARD of it) travels with the message
 * into a session as part of its broker id, which the stores keep with a
 * queued message (`persistence/codec.ts`). The Redis store remembers the ids
 * a session got (`persistence/routed-ids.ts`) and queues or delivers a
 * second copy of one to that session no more [MQTT-4.3.3-10]. The broker id
 * keeps its base (a node's aedes id, or the routed prefix that tells the
 * shared groups a message was added to their streams where it was published,
 * `broker/cluster-shared.ts`), so nothing else that reads it changes.
 */

/** between a broker id's base and the message id: NUL never occurs in an aedes id, and a shared delivery's NUL is followed by a stream id (digits) */
const ID_MARK = '\u0000$u:'
/** the broker counter of a message named by its routed id (aedes keeps a counter that is set: aedes-packet) */
export const ROUTED_ID_COUNTER = 1

/** The routed message id a broker id carries; undefined when it carries none. */
export function routedIdOf (brokerId: unknown): string | undefined {
  if (typeof brokerId !== 'string') return undefined
  const at = brokerId.indexOf(ID_MARK)
  return at < 0 ? undefined : brokerId.slice(at + ID_MARK.length)
}

let copies = 0

/**
 * Names `packet` (a QoS 2 message; a QoS 0/1 one or an empty id is left as
 * it is) by its routed id `id`, on the broker id `base`. Each copy gets a
 * broker id of its own (a counter after the base): a copy a session had
 * already is told apart from the one the session holds, whose delivery
 * from its queue goes on (persistence/redis.ts `routedDuplicate`).
 */
export function nameByRoutedId (packet: { qos: number, brokerId?: string, brokerCounter?: number }, base: string, id: string): void {
  if (packet.qos !== 2 || id === '') return
  packet.brokerId = base + ':' + String(++copies) + ID_MARK + id
  packet.brokerCounter = ROUTED_ID_COUNTER
}
