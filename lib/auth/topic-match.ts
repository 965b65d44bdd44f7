/**
 * Topic name / topic filter helpers used by the ACL (MQTT 5.0 §4.7).
 *
 * Spec ids below use the MQTT 5.0 numbering (3.1.1 numbers the wildcard
 * statements one higher).
 */

// Names, filters and matching live in one place, lib/protocol/topic.ts (the
// delivery hot path uses the same matcher); the ACL adds filter-in-filter.
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../protocol/topic.js'

export { isValidTopicFilter, isValidTopicName, topicMatches }

function isWildcard (level: string | undefined): boolean {
  return level === '+' || level === '#'
}

/**
 * True when every topic name matched by `inner` is also matched by `outer`
 * ("filter-in-filter" matching): `a/#` covers `a/+/c`, `a/b` does not cover
 * `a/+`. Both must be valid topic filters.
 */
export function filterCovers (outer: string, inner: string): boolean {
  const o = outer.split('/')
  const n = inner.split('/')
  // `inner` can only match $-topics if its first level is a literal starting
  // with '$'; such topics are never matched by an outer filter that starts
  // with a wildcard [MQTT-4.7.2-1]. (An inner filter starting with a wildcard
  // matches no $-topics, so it is unaffected.)
  if (inner.startsWith('$') && isWildcard(o[0])) return false
  for (let i = 0; i < o.length; i++) {
    const ol = o[i] as string
    if (ol === '#') return true
    if (i >= n.length) return false
    const nl = n[i] as string
    if (nl === '#') {
      // inner '#' matches its parent level and any depth below it [MQTT-4.7.1-1];
      // only an outer '#' covers the parent too. Except when the parent is
      // not a valid topic name because it would be empty [MQTT-4.7.3-1]: "#"
      // and "/#" have no parent, so "+/#" covers "#" and "/+/#" covers "/#".
      const parentIsEmpty = i === 0 || (i === 1 && n[0] === '')
      return parentIsEmpty && ol === '+' && o.length === i + 2 && o[i + 1] === '#'
    }
    if (ol === '+') continue
    // A literal outer level covers only the same literal, never '+'.
    if (nl !== ol) return false
  }
  return o.length === n.length
}

export interface SharedSubscription {
  group: string
  filter: string
}

/**
 * Splits `$share/<group>/<filter>`. Returns undefined when `filter` is not a
 * shared subscription, and null when it is one but is malformed: the ShareName
 * MUST be at least one character [MQTT-4.8.2-1], MUST NOT contain '/', '+' or
 * '#', and MUST be followed by '/' and a Topic Filter [MQTT-4.8.2-2].
 */
export function parseSharedSubscription (filter: string): SharedSubscription | null | undefined {
  if (!filter.startsWith('$share/')) return undefined
  const rest = filter.slice('$share/'.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return null
  const group = rest.slice(0, slash)
  const inner = rest.slice(slash + 1)
  if (group.includes('+') || group.includes('#')) return null
  if (!isValidTopicFilter(inner)) return null
  return { group, filter: inner }
}
