/**
 * Topic names and filters (spec 4.7). Pure functions shared by the protocol
 * gateway, shared subscriptions and authorization.
 */

/** Largest UTF-8 Encoded String MQTT can carry (spec 1.5.4: a two-byte length prefix). */
const MAX_STRING_BYTES = 65535

/** [MQTT-4.7.3-1] not empty, [MQTT-4.7.3-2] no U+0000, [MQTT-4.7.3-3] at most 65,535 bytes. */
function isEncodable (s: string): boolean {
  return s.length > 0 && !s.includes('\u0000') && (s.length <= MAX_STRING_BYTES / 3 || Buffer.byteLength(s, 'utf8') <= MAX_STRING_BYTES)
}

/** A valid topic filter: '#' alone and last [MQTT-4.7.1-1], '+' a whole level [MQTT-4.7.1-2]. */
export function isValidTopicFilter (filter: string): boolean {
  if (!isEncodable(filter)) return false
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#')) {
      if (level !== '#' || i !== levels.length - 1) return false
    } else if (level.includes('+') && level !== '+') {
      return false
    }
  }
  return true
}

/** [MQTT-3.3.2-2] a valid topic name: encodable, no wildcards. */
export function isValidTopicName (topic: string): boolean {
  return isEncodable(topic) && !topic.includes('+') && !topic.includes('#')
}

export function hasWildcard (filter: string): boolean {
  return filter.includes('+') || filter.includes('#')
}

/**
 * Does `filter` match the topic name `topic` (spec 4.7)? [MQTT-4.7.2-1] a
 * filter starting with a wildcard does not match a topic starting with '$'.
 * [MQTT-4.7.1-2] 'sport/#' also matches 'sport'. Walks both strings once,
 * without allocating: it runs for every delivery.
 */
export function topicMatches (filter: string, topic: string): boolean {
  if (filter === topic) return true
  const fl = filter.length
  const tl = topic.length
  if (tl > 0 && topic.charCodeAt(0) === 0x24 /* $ */ && fl > 0) {
    const f0 = filter.charCodeAt(0)
    if (f0 === 0x2b || f0 === 0x23) return false
  }
  let fi = 0
  let ti = 0
  while (fi < fl) {
    const fc = filter.charCodeAt(fi)
    if (fc === 0x23 /* # */) return true
    if (fc === 0x2b /* + */) {
      // one whole level of the topic
      while (ti < tl && topic.charCodeAt(ti) !== 0x2f) ti++
      fi++
    } else {
      if (ti >= tl || topic.charCodeAt(ti) !== fc) {
        // 'a/#' matches 'a': the topic ended where the filter has '/#'
        return ti === tl && fc === 0x2f && fi + 2 === fl && filter.charCodeAt(fi + 1) === 0x23
      }
      fi++
      ti++
    }
  }
  return ti === tl
}

export function topicLevels (topic: string): number {
  let n = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) n++
  return n
}

export const SHARE_PREFIX = '$share/'

export interface SharedFilter { group: string, filter: string }

/**
 * Splits `$share/{group}/{filter}` (spec 4.8.2). Returns null for a filter
 * that is not shared, and `'invalid'` for a malformed shared filter
 * [MQTT-4.8.2-1] [MQTT-4.8.2-2].
 */
export function parseSharedFilter (topic: string): SharedFilter | null | 'invalid' {
  if (!topic.startsWith(SHARE_PREFIX)) return null
  const rest = topic.slice(SHARE_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return 'invalid'
  const group = rest.slice(0, slash)
  const filter = rest.slice(slash + 1)
  if (group.includes('+') || group.includes('#')) return 'invalid' // [MQTT-4.8.2-2]
  if (!isValidTopicFilter(filter)) return 'invalid'
  return { group, filter }
}

/** Where each cluster node publishes its own `$SYS` values; the only `$` topics routed between nodes. */
export const NODE_SYS_TOPICS = '$SYS/brokers/'
export const nodeSysPrefix = (nodeId: string): string => `${NODE_SYS_TOPICS}${nodeId}/`

/** The node a `$SYS/brokers/{node}/...` topic belongs to, or undefined for any other topic. */
export function sysTopicNode (topic: string): string | undefined {
  if (!topic.startsWith(NODE_SYS_TOPICS)) return undefined
  const end = topic.indexOf('/', NODE_SYS_TOPICS.length)
  return end <= NODE_SYS_TOPICS.length ? undefined : topic.slice(NODE_SYS_TOPICS.length, end)
}
