/**
 * Packet identifier -> value, for the messages in flight to one client.
 *
 * A Map here rebuilt its hash table every few dozen acknowledgements (the
 * deleted slots fill it up, and an emptying table is shrunk), once per
 * delivery on the shared-subscription path; those tables outlived
 * young-generation collections and were most of what that path promoted to
 * the old generation. This table is open addressing with linear probing
 * and backward-shift deletion: a steady number of ids in flight never
 * reallocates it. Packet identifiers are non-zero [MQTT-2.2.1-3], so 0
 * marks a free slot, and aedes hands them out in sequence, so `id & mask`
 * spreads them without hashing.
 */
export class PacketIdTable<T> {
  private keys: Uint16Array
  private values: Array<T | undefined>
  private mask: number
  private count = 0

  constructor (capacity = 16) {
    let size = 8
    while (size < capacity) size *= 2
    this.keys = new Uint16Array(size)
    this.values = new Array<T | undefined>(size).fill(undefined)
    this.mask = size - 1
  }

  get size (): number { return this.count }

  get (id: number): T | undefined {
    const keys = this.keys
    for (let i = id & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]
      if (k === id) return this.values[i]
      if (k === 0) return undefined
    }
  }

  set (id: number, value: T): void {
    // at most half full, so a probe always reaches a free slot quickly
    if ((this.count + 1) * 2 > this.keys.length) this.grow()
    const keys = this.keys
    for (let i = id & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]
      if (k === id) { this.values[i] = value; return }
      if (k === 0) {
        keys[i] = id
        this.values[i] = value
        this.count++
        return
      }
    }
  }

  delete (id: number): boolean {
    const keys = this.keys
    const mask = this.mask
    let i = id & mask
    for (;; i = (i + 1) & mask) {
      const k = keys[i]
      if (k === id) break
      if (k === 0) return false
    }
    this.count--
    // backward shift: move up every later key of the run that may live at i
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j] as number
      if (k === 0) break
      const home = k & mask
      // k stays where it is when its home lies cyclically in (i, j]
      const stays = i <= j ? (home > i && home <= j) : (home > i || home <= j)
      if (stays) continue
      keys[i] = k
      this.values[i] = this.values[j]
      i = j
    }
    keys[i] = 0
    this.values[i] = undefined
    return true
  }

  forEach (fn: (value: T, id: number) => void): void {
    const keys = this.keys
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as number
      if (k !== 0) fn(this.values[i] as T, k)
    }
  }

  private grow (): void {
    const oldKeys = this.keys
    const oldValues = this.values
    const size = oldKeys.length * 2
    this.keys = new Uint16Array(size)
    this.values = new Array<T | undefined>(size).fill(undefined)
    this.mask = size - 1
    this.count = 0
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i] as number
      if (k !== 0) this.set(k, oldValues[i] as T)
    }
  }
}
