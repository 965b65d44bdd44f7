/**
 * The flag and environment names of each setting, derived from its key in
 * one place, and the nearest valid name for a misspelt one.
 */

/**
 * Words a camelCase split would cut apart: `maximumQoS` is `maximum-qos`,
 * not `maximum-qo-s`. Each is spelt here as one capitalised word before the
 * split.
 */
const ACRONYMS: ReadonlyArray<[RegExp, string]> = [[/QoS/g, 'Qos']]

function words (key: string): string[] {
  let k = key
  for (const [pattern, word] of ACRONYMS) k = k.replace(pattern, word)
  return k.replace(/[A-Z]/g, (c) => ' ' + c).toLowerCase().split(' ')
}

/** `wsPort` -> `--ws-port`, `maximumQoS` -> `--maximum-qos` */
export function flagName (key: string): string {
  return '--' + words(key).join('-')
}

/** `wsPort` -> `CULEX_WS_PORT`, `maximumQoS` -> `CULEX_MAXIMUM_QOS` */
export function envName (key: string): string {
  return 'CULEX_' + words(key).join('_').toUpperCase()
}

function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length] ?? 0
}

/**
 * The candidate nearest to `name` (case ignored), if it is near enough to be
 * a likely misspelling: at most a quarter of its letters differ. `prefix`,
 * common to all, is left out of the comparison (`CULEX_`).
 */
export function closest (name: string, candidates: Iterable<string>, prefix = ''): string | undefined {
  const wanted = name.slice(prefix.length).toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = distance(wanted, candidate.slice(prefix.length).toLowerCase())
    if (d < bestDistance) { best = candidate; bestDistance = d }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(wanted.length / 4)) ? best : undefined
}
