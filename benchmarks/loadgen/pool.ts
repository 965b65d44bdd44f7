// Bounded concurrency for opening many connections: thousands of
// simultaneous SYNs would overflow the listen backlog and measure the
// kernel's SYN retry timer instead of the broker.

export async function mapPool<T> (count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<Array<PromiseSettledResult<T>>> {
  const results = new Array<PromiseSettledResult<T>>(count)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++
      try {
        results[index] = { status: 'fulfilled', value: await task(index) }
      } catch (reason) {
        results[index] = { status: 'rejected', reason }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker))
  return results
}

/** Like mapPool, but the first failure rejects (after all started tasks settle). */
export async function mapPoolStrict<T> (count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const settled = await mapPool(count, concurrency, task)
  const values: T[] = []
  for (const result of settled) {
    if (result.status === 'rejected') throw result.reason instanceof Error ? result.reason : new Error(String(result.reason))
    values.push(result.value)
  }
  return values
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Collects the first few distinct error messages of a run. */
export class ErrorLog {
  private readonly messages: string[] = []
  constructor (private readonly max = 5) {}
  add (message: string): void {
    if (this.messages.length < this.max && !this.messages.includes(message)) this.messages.push(message)
  }

  list (): string[] {
    return [...this.messages]
  }
}
