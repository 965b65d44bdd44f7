/**
 * Packet Identifier → value, for the QoS 1/2 PUBLISHes a client has in
 * flight (spec 2.2.1, 4.9). Why not a Map: an id is added for every PUBLISH
 * and removed at its acknowledgement, and a Map then keeps reallocating its
 * hash table (deleted entries are only reclaimed by rebuilding it); under
 * load those tables are alive at a scavenge often enough to be promoted,
 * and wait for a full collection. Here ids live in an Int32Array with
 * linear probing; removing an id shifts back the entries after it, so there
 * are no tombstones and the table is only reallocated to grow. Client
 * implementations count ids up one by one, and aedes hands them out in
 * sequence, which the identity hash spreads perfectly over a window of
 * in-flight ids. -1 marks a free slot, so an id of 0 (which a malformed
 * PUBLISH may carry) is held like any other. The gateway keeps a client's
 * inbound flows here, the shared-subscription dispatcher its deliveries.
 */
const EMPTY = -1
const INITIAL_CAPACITY = 16

export class PacketIdTable<V> {
  #ids = new Int32Array(INITIAL_CAPACITY).fill(EMPTY)
  #values: Array<V | undefined> = new Array<V | undefined>(INITIAL_CAPACITY).fill(undefined)
  #mask = INITIAL_CAPACITY - 1
  #size = 0

  get size (): number {
    return this.#size
  }

  get (id: number): V | undefined {
    const at = this.#find(id)
    return at < 0 ? undefined : this.#values[at]
  }

  has (id: number): boolean {
    return this.#find(id) >= 0
  }

  set (id: number, value: V): void {
    const at = this.#find(id)
    if (at >= 0) {
      this.#values[at] = value
      return
    }
    // at most half full: probes stay short
    if ((this.#size + 1) * 2 > this.#ids.length) this.#grow()
    let i = id & this.#mask
    while (this.#ids[i] !== EMPTY) i = (i + 1) & this.#mask
    this.#ids[i] = id
    this.#values[i] = value
    this.#size++
  }

  delete (id: number): boolean {
    let hole = this.#find(id)
    if (hole < 0) return false
    const ids = this.#ids
    const mask = this.#mask
    // backward-shift deletion: an entry after the hole moves into it unless
    // its home slot lies cyclically in (hole, j], where it is still reachable
    for (let j = (hole + 1) & mask; ids[j] !== EMPTY; j = (j + 1) & mask) {
      const home = (ids[j] as number) & mask
      const reachable = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
      if (reachable) continue
      ids[hole] = ids[j] as number
      this.#values[hole] = this.#values[j]
      hole = j
    }
    ids[hole] = EMPTY
    this.#values[hole] = undefined
    this.#size--
    return true
  }

  forEach (fn: (value: V, id: number) => void): void {
    const ids = this.#ids
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number
      if (id !== EMPTY) fn(this.#values[i] as V, id)
    }
  }

  #find (id: number): number {
    const ids = this.#ids
    const mask = this.#mask
    for (let i = id & mask; ; i = (i + 1) & mask) {
      const k = ids[i]
      if (k === id) return i
      if (k === EMPTY) return -1
    }
  }

  #grow (): void {
    const ids = this.#ids
    const values = this.#values
    const capacity = ids.length * 2
    this.#ids = new Int32Array(capacity).fill(EMPTY)
    this.#values = new Array<V | undefined>(capacity).fill(undefined)
    this.#mask = capacity - 1
    this.#size = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number
      if (id !== EMPTY) this.set(id, values[i] as V)
    }
  }
}
