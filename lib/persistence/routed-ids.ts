// The ids of the routed QoS 2 messages each session held here got
// (lib/cluster/routed-id.ts), so that a second copy of one is not queued or
// delivered to it again [MQTT-4.3.3-10]: a copy a node publishes again (an
// inbox batch read again after a Redis reconnect, a dead node's inbox
// re-published by its adopter or by a claim of one of its sessions, a
// FORWARD of a message during a move, or the message sent on by the node a
// session just left). Each id is a field `u:{client id}:{id}` of the
// session's hash, written in the same WRITE call as the queued message
// (redis-sessions.ts), loaded with the session by the node that claims it,
// deleted with the session.
//
// Bounds: the ids of the last ROUTED_ID_MS, at most ROUTED_ID_MAX per session
// (the oldest go first). A copy comes again within seconds (a re-read), the
// lease plus the adoption's grace (3 s + 5 s), or a move's forwarding window
// (35 s, broker/cluster-moves.ts): five minutes leave a margin of several
// times the longest. The count bounds what a session that takes many QoS 2
// messages holds (memory here, its hash in Redis, the claim's load): 10,000
// ids of about 30 bytes each, some 0.5 MB, at a rate of 33 messages a second
// for five minutes; above that rate the window is shorter.

/** milliseconds a session remembers a routed message id */
export const ROUTED_ID_MS = 5 * 60_000
/** ids a session remembers at most */
export const ROUTED_ID_MAX = 10_000

export const ROUTED_ID_KIND = 'u:'

export function routedIdKey (clientId: string, id: string): string {
  return ROUTED_ID_KIND + encodeURIComponent(clientId) + ':' + id
}

export interface RoutedIdWrites {
  put (key: string, value: Uint8Array): unknown
  del (key: string): unknown
}

export class RoutedIds {
  /** per session, its ids in the order they came, with when */
  readonly #bySession = new Map<string, Map<string, number>>()

  constructor (private readonly maxIds = ROUTED_ID_MAX, private readonly keepMs = ROUTED_ID_MS) {}

  has (clientId: string, id: string): boolean {
    return this.#bySession.get(clientId)?.has(id) === true
  }

  /** Records `id` for the session (written through `io`, with the ids it no longer keeps deleted). */
  add (clientId: string, id: string, now: number, io: RoutedIdWrites): void {
    let ids = this.#bySession.get(clientId)
    if (ids === undefined) this.#bySession.set(clientId, ids = new Map())
    ids.set(id, now)
    io.put(routedIdKey(clientId, id), Buffer.from(String(now)))
    for (const old of this.#expired(ids, now)) io.del(routedIdKey(clientId, old))
  }

  /** An id of a session loaded from its hash; false when it is past the bounds (the caller deletes it). */
  restore (clientId: string, id: string, at: number, now: number): boolean {
    if (!Number.isFinite(at) || now - at > this.keepMs) return false
    let ids = this.#bySession.get(clientId)
    if (ids === undefined) this.#bySession.set(clientId, ids = new Map())
    ids.set(id, at)
    return true
  }

  /** After a session's load: its ids in time order, the surplus over the count returned (to delete). */
  settle (clientId: string, now: number): string[] {
    const ids = this.#bySession.get(clientId)
    if (ids === undefined) return []
    const sorted = new Map([...ids].sort((x, y) => x[1] - y[1]))
    this.#bySession.set(clientId, sorted)
    return [...this.#expired(sorted, now)]
  }

  /** Forgets the session's ids; returns their keys. */
  forget (clientId: string): string[] {
    const ids = this.#bySession.get(clientId)
    this.#bySession.delete(clientId)
    return ids === undefined ? [] : [...ids.keys()].map((id) => routedIdKey(clientId, id))
  }

  /** ids remembered for the session, for tests */
  count (clientId: string): number {
    return this.#bySession.get(clientId)?.size ?? 0
  }

  * #expired (ids: Map<string, number>, now: number): Generator<string> {
    for (const [id, at] of ids) {
      if (ids.size <= this.maxIds && now - at <= this.keepMs) return
      ids.delete(id)
      yield id
    }
  }
}
