/**
 * What one event-loop turn asks of Redis for one key, written as one call:
 * the messages a burst of PUBLISH packets brings for a shared group become
 * one script call instead of one command each (Redis' cost, and the node's,
 * is mostly per command and per socket write, not per entry). Every caller
 * of a batch gets the batch's outcome: a batch Redis refused is refused for
 * each of its items. Batches of one key are written in the order they
 * closed, on the caller's one connection, so Redis applies them in order.
 */

interface Open<T> {
  readonly items: T[]
  readonly done: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

export class TurnBatch<T> {
  private readonly open = new Map<string, Open<T>>()
  private scheduled = false

  /**
   * `write` writes one key's batch (resolves once Redis has all of it);
   * `max`: a batch this large is written at once, not at the turn's end.
   */
  constructor (private readonly write: (key: string, items: T[]) => Promise<unknown>, private readonly max = 256) {}

  /** Adds `item` to `key`'s batch of this turn; resolves or rejects with the batch. */
  add (key: string, item: T): Promise<void> {
    let batch = this.open.get(key)
    if (batch === undefined) {
      batch = newBatch<T>()
      this.open.set(key, batch)
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.flush)
      }
    }
    batch.items.push(item)
    const done = batch.done
    if (batch.items.length >= this.max) {
      this.open.delete(key)
      this.send(key, batch)
    }
    return done
  }

  /** Every open batch written now (the turn ended, or the owner stops). */
  readonly flush = (): void => {
    this.scheduled = false
    const batches = [...this.open]
    this.open.clear()
    for (const [key, batch] of batches) this.send(key, batch)
  }

  /** `key`'s open batch written now; settles with it (at once when none is open). */
  flushKey (key: string): Promise<void> {
    const batch = this.open.get(key)
    if (batch === undefined) return Promise.resolve()
    this.open.delete(key)
    this.send(key, batch)
    return batch.done
  }

  private send (key: string, batch: Open<T>): void {
    let written: Promise<unknown>
    try {
      written = this.write(key, batch.items)
    } catch (err) {
      batch.reject(err)
      return
    }
    written.then(() => { batch.resolve() }, batch.reject)
  }
}

function newBatch<T> (): Open<T> {
  let resolve: () => void = () => {}
  let reject: (err: unknown) => void = () => {}
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  // a batch nobody waits on any more (its callers' connections closed) must not crash the process
  done.catch(() => {})
  return { items: [], done, resolve, reject }
}
