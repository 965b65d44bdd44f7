// Topic scheme for the retained-lookup scenario, shared by the scenario
// (which needs the expected match counts) and the load generator.
// Topic i is `ret/<i zero-padded>/<leaf>`; the leaf is `x` for one message in
// RARE_EVERY and `y` otherwise, so `ret/+/x` matches a small fraction. Fixed
// width keeps every packet the same length, which the pre-encoder relies on.
import type { RetainedLookup } from './jobs.js'

export const RARE_EVERY = 1000

function width (count: number): number {
  return String(Math.max(0, count - 1)).length
}

export function retainedTopic (index: number, count: number): string {
  return `ret/${String(index).padStart(width(count), '0')}/${index % RARE_EVERY === 0 ? 'x' : 'y'}`
}

/** Small lookups are repeated to rise above the 10 ms CPU-tick resolution. */
const SMALL_LOOKUP_ROUNDS = 20

export function retainedLookups (count: number): RetainedLookup[] {
  const one = Math.min(7, count - 1)
  return [
    { filter: `ret/${String(one).padStart(width(count), '0')}/+`, expected: 1, rounds: SMALL_LOOKUP_ROUNDS },
    { filter: 'ret/+/x', expected: Math.ceil(count / RARE_EVERY), rounds: SMALL_LOOKUP_ROUNDS },
    { filter: 'ret/#', expected: count, rounds: 1 }
  ]
}
