import t from 'tap'
import fc from 'fast-check'
import {
  filterCovers,
  isValidTopicFilter,
  isValidTopicName,
  parseSharedSubscription,
  topicMatches
} from '../../lib/auth/topic-match.js'

t.test('topic names: wildcards are not allowed [MQTT-3.3.2-2], length >= 1 [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2]', async (t) => {
  for (const ok of ['a', '/', 'a/b', '/a', 'a//b', '$SYS/x', 'a b', 'ü/ß']) t.ok(isValidTopicName(ok), ok)
  for (const bad of ['', 'a/+', 'a/#', '+', '#', 'a+b', 'a\u0000b']) t.notOk(isValidTopicName(bad), JSON.stringify(bad))
})

t.test('topic names longer than 65535 UTF-8 bytes are invalid [MQTT-4.7.3-3]', async (t) => {
  t.ok(isValidTopicName('a'.repeat(65535)))
  t.notOk(isValidTopicName('a'.repeat(65536)))
  t.notOk(isValidTopicName('é'.repeat(32768)), 'counted in bytes, not characters')
})

t.test("topic filters: '#' alone and last [MQTT-4.7.1-1], '+' a whole level [MQTT-4.7.1-2]", async (t) => {
  for (const ok of ['#', '+', 'a/#', 'a/+/b', '+/+', '/#', '+/', 'a//+', '$SYS/#', 'a/b']) t.ok(isValidTopicFilter(ok), ok)
  for (const bad of ['', 'a#', 'a/#/b', '#/a', 'a/b#', 'a+', 'a/+b', '++', 'a/#/#', 'a\u0000']) t.notOk(isValidTopicFilter(bad), JSON.stringify(bad))
})

t.test('topicMatches: spec examples (§4.7.1)', async (t) => {
  const yes: Array<[string, string]> = [
    ['sport/tennis/player1/#', 'sport/tennis/player1'],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking'],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon'],
    ['sport/#', 'sport'],
    ['#', 'anything/at/all'],
    ['sport/tennis/+', 'sport/tennis/player1'],
    ['sport/+', 'sport/'],
    ['+/+', '/finance'],
    ['/+', '/finance'],
    ['a//b', 'a//b'],
    ['+/+/+', 'a//b']
  ]
  const no: Array<[string, string]> = [
    ['sport/tennis/+', 'sport/tennis/player1/ranking'],
    ['sport/+', 'sport'],
    ['+', '/finance'],
    ['a/b', 'a/b/c'],
    ['a/b/c', 'a/b'],
    ['A', 'a']
  ]
  for (const [f, n] of yes) t.ok(topicMatches(f, n), `${f} matches ${n}`)
  for (const [f, n] of no) t.notOk(topicMatches(f, n), `${f} does not match ${n}`)
})

t.test('topicMatches: wildcards at the start do not match $ topics [MQTT-4.7.2-1]', async (t) => {
  t.notOk(topicMatches('#', '$SYS/broker/uptime'))
  t.notOk(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients'))
  t.ok(topicMatches('$SYS/#', '$SYS/monitor/Clients'))
  t.ok(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients'))
  t.ok(topicMatches('a/+', 'a/$b'), 'only the first level is special')
})

t.test('filterCovers: filter-in-filter examples', async (t) => {
  const yes: Array<[string, string]> = [
    ['a/#', 'a/+/c'], ['a/#', 'a'], ['a/#', 'a/#'], ['#', '#'], ['#', '+/x'],
    ['a/+', 'a/b'], ['a/+/#', 'a/b/#'], ['+/+', 'a/+'], ['$SYS/#', '$SYS/+/x'], ['a/b', 'a/b']
  ]
  const no: Array<[string, string]> = [
    ['a/b', 'a/+'], ['a/+', 'a/#'], ['a/+', 'a'], ['a/+/#', 'a/#'], ['a/b', 'a/b/c'],
    ['a/b/c', 'a/b'], ['#', '$SYS/#'], ['+/x', '$SYS/x'], ['a/#', 'b/#'], ['+', '#']
  ]
  for (const [o, i] of yes) t.ok(filterCovers(o, i), `${o} covers ${i}`)
  for (const [o, i] of no) t.notOk(filterCovers(o, i), `${o} does not cover ${i}`)
})

t.test('parseSharedSubscription [MQTT-4.8.2-1] [MQTT-4.8.2-2]', async (t) => {
  t.same(parseSharedSubscription('$share/g/a/+'), { group: 'g', filter: 'a/+' })
  t.same(parseSharedSubscription('$share/g/#'), { group: 'g', filter: '#' })
  t.equal(parseSharedSubscription('a/b'), undefined)
  t.equal(parseSharedSubscription('$SYS/x'), undefined)
  for (const bad of ['$share/', '$share//a', '$share/g', '$share/g/', '$share/g+/a', '$share/g#/a', '$share/g/a#']) {
    t.equal(parseSharedSubscription(bad), null, bad)
  }
})

/** `npm run fuzz` style: CULEX_FUZZ_RUNS raises the number of random cases. */
const RUNS = Number(process.env.CULEX_FUZZ_RUNS ?? 2000)

// Property tests against an independent reference: a small universe of
// levels, where a filter's meaning is computed by brute-force enumeration.
const LEVELS = ['a', 'b', '', '$s']
const level = fc.constantFrom(...LEVELS)
const filterLevel = fc.constantFrom(...LEVELS, '+')
const topicArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((s) => s.length > 0)
const filterArb = fc.tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels.slice(0, -1), '#'] : levels).join('/'))
  .filter((s) => s.length > 0)

/** Matching by regular expression, written directly from §4.7. */
function referenceMatch (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const source = filter.split('/').map((l, i, all) => {
    if (l === '+') return '[^/]*'
    if (l === '#') return i === 0 ? '.*' : null
    return l.replace(/[$]/g, '\\$')
  })
  let re: string
  if (source[source.length - 1] === null) re = source.slice(0, -1).join('/') + '(/.*)?'
  else re = source.join('/')
  return new RegExp(`^${re}$`).test(topic)
}

// Every topic up to depth 5 over LEVELS plus a level no filter mentions.
const UNIVERSE: string[] = []
{
  let frontier = ['']
  const all = [...LEVELS, 'z']
  for (let depth = 1; depth <= 5; depth++) {
    frontier = frontier.flatMap((prefix) => all.map((l) => (depth === 1 ? l : `${prefix}/${l}`)))
    UNIVERSE.push(...frontier.filter((s) => s.length > 0))
  }
}

t.test('property: topicMatches agrees with a regular-expression reference', async (t) => {
  fc.assert(fc.property(filterArb, topicArb, (f, n) => topicMatches(f, n) === referenceMatch(f, n)), { numRuns: RUNS })
  t.pass(`${RUNS} random pairs agree`)
})

t.test('property: filterCovers(o, i) iff every topic i matches is matched by o', async (t) => {
  fc.assert(fc.property(filterArb, filterArb, (o, i) => {
    const brute = UNIVERSE.every((n) => !topicMatches(i, n) || topicMatches(o, n))
    return filterCovers(o, i) === brute
  }), { numRuns: RUNS })
  t.pass(`${RUNS} random filter pairs agree with enumeration`)
})

t.test('property: a filter covers a topic name exactly when it matches it', async (t) => {
  fc.assert(fc.property(filterArb, topicArb, (f, n) => filterCovers(f, n) === topicMatches(f, n)), { numRuns: RUNS })
  t.pass(`${RUNS} random pairs agree`)
})
