/**
 * Access control lists in mosquitto's acl_file syntax.
 *
 *   # comment
 *   topic read $SYS/#              <- before any `user`: anonymous clients
 *   user alice
 *   topic readwrite sensors/#      <- alice only
 *   topic deny sensors/secret
 *   pattern write devices/%c/#     <- every client, %c = client id
 *   pattern read users/%u/#        <-                %u = username
 *
 * - `user <name>`: the following `topic` lines apply to that username (the
 *   rest of the line, spaces included). Repeated sections for a name merge.
 * - `topic [read|write|readwrite|deny] <filter>`: no keyword means readwrite.
 *   The filter is the rest of the line. (So `topic read` alone is an error,
 *   not a rule for a topic named "read": write `topic readwrite read`.)
 * - `pattern [read|write|readwrite|deny] <filter>`: applies to all clients,
 *   wherever it appears, with %c and %u substituted.
 * - Lines before the first `user` apply to anonymous clients (no username).
 *   A client with a username that has no `user` section gets patterns only.
 *
 * Decisions (see check()):
 * - Deny rules take precedence over allow rules, whatever their order
 *   (mosquitto iterates denials first).
 * - $-topics are matched only by filters that start with '$' [MQTT-4.7.2-1].
 * - A SUBSCRIBE is allowed when some read rule covers the whole filter and no
 *   deny rule covers it. A deny rule that covers only part of a subscription
 *   does not refuse it; the broker MUST also call check(..., 'read') for every
 *   delivery, which filters those messages out.
 * - %c/%u substitution is refused for values that are empty, contain '+',
 *   '#', '/' or U+0000, or that would turn the filter into a $-filter: such
 *   values would widen the rule (client id "+" in `devices/%c/#`). For such a
 *   client an allowing pattern grants nothing and a deny pattern denies
 *   everything (fail closed: we cannot tell what it was meant to exclude).
 *   A %u pattern does not apply to an anonymous client.
 */
import { readFile } from 'node:fs/promises'
import { CulexError } from '../errors.js'
import {
  filterCovers,
  isValidTopicFilter,
  isValidTopicName,
  parseSharedSubscription,
  topicMatches
} from './topic-match.js'

/** What is being asked. */
export type AclAccess = 'read' | 'write' | 'subscribe'
/** What a rule grants (or, for deny, refuses). */
export type AclRuleAccess = 'read' | 'write' | 'readwrite' | 'deny'

export interface AclClient {
  clientId: string
  /** undefined for a client that connected without a username. */
  username?: string | undefined
}

export interface AclRule {
  kind: 'topic' | 'pattern'
  access: AclRuleAccess
  filter: string
  /** For `topic` rules: the user section (undefined = anonymous). Unset for patterns. */
  user?: string
  /** 1-based line in the source text. */
  line: number
}

export interface Acl {
  readonly rules: readonly AclRule[]
  /**
   * - 'write': may the client PUBLISH to topic name `topic`?
   * - 'read': may the client receive a message published to topic name `topic`?
   * - 'subscribe': may the client SUBSCRIBE to filter `topic` (wildcards and
   *   `$share/<group>/<filter>` allowed)?
   * Invalid names/filters are refused.
   */
  check (client: AclClient, topic: string, access: AclAccess): boolean
}

type Expanded = { kind: 'rule', filter: string } | { kind: 'skip' } | { kind: 'unsafe' }

function isSafeSubstitution (value: string): boolean {
  return value.length > 0 && !/[+#/\u0000]/.test(value)
}

/** Substitutes %c and %u in a pattern filter for one client. */
function expandPattern (filter: string, client: AclClient): Expanded {
  const { clientId, username } = client
  const usesClient = filter.includes('%c')
  const usesUser = filter.includes('%u')
  if (usesUser && username === undefined) return { kind: 'skip' }
  if (usesClient && !isSafeSubstitution(clientId)) return { kind: 'unsafe' }
  if (usesUser && !isSafeSubstitution(username ?? '')) return { kind: 'unsafe' }
  // One pass, so a client id containing "%u" is not expanded a second time.
  const expanded = filter.replace(/%[cu]/g, (m) => (m === '%c' ? clientId : username ?? ''))
  // "%c/#" with client id "$SYS" must not become a $-filter [MQTT-4.7.2-1].
  if (expanded.startsWith('$') && !filter.startsWith('$')) return { kind: 'unsafe' }
  if (!isValidTopicFilter(expanded)) return { kind: 'unsafe' }
  return { kind: 'rule', filter: expanded }
}

function grants (rule: AclRuleAccess, access: AclAccess): boolean {
  if (rule === 'readwrite') return true
  if (rule === 'read') return access === 'read' || access === 'subscribe'
  if (rule === 'write') return access === 'write'
  return false
}

class AclImpl implements Acl {
  readonly rules: readonly AclRule[]
  private readonly anonymous: AclRule[] = []
  private readonly byUser = new Map<string, AclRule[]>()
  private readonly patterns: AclRule[] = []

  constructor (rules: AclRule[]) {
    this.rules = rules
    for (const rule of rules) {
      if (rule.kind === 'pattern') {
        this.patterns.push(rule)
      } else if (rule.user === undefined) {
        this.anonymous.push(rule)
      } else {
        const list = this.byUser.get(rule.user)
        if (list === undefined) this.byUser.set(rule.user, [rule])
        else list.push(rule)
      }
    }
  }

  check (client: AclClient, topic: string, access: AclAccess): boolean {
    // Step 1: what is being checked. For a subscription, the filter without
    // its $share/<group>/ prefix [MQTT-4.8.2-1] [MQTT-4.8.2-2].
    let target = topic
    if (access === 'subscribe') {
      const shared = parseSharedSubscription(topic)
      if (shared === null) return false
      if (shared !== undefined) target = shared.filter
      if (!isValidTopicFilter(target)) return false
    } else if (!isValidTopicName(topic)) {
      return false
    }
    // A rule applies when its filter matches the topic name, or for a
    // subscription when it covers every topic the filter can match.
    const applies = access === 'subscribe'
      ? (filter: string) => filterCovers(filter, target)
      : (filter: string) => topicMatches(filter, target)

    // Step 2: the rules for this client, patterns expanded.
    const own = client.username === undefined ? this.anonymous : (this.byUser.get(client.username) ?? [])
    const candidates: Array<{ access: AclRuleAccess, filter: string }> = [...own]
    for (const pattern of this.patterns) {
      const expanded = expandPattern(pattern.filter, client)
      if (expanded.kind === 'rule') candidates.push({ access: pattern.access, filter: expanded.filter })
      // Fail closed: a deny pattern we cannot expand safely denies everything.
      else if (expanded.kind === 'unsafe' && pattern.access === 'deny') return false
    }

    // Step 3: any applicable deny refuses, whatever the order of the lines.
    for (const rule of candidates) {
      if (rule.access === 'deny' && applies(rule.filter)) return false
    }
    // Step 4: otherwise some applicable rule must grant the access.
    for (const rule of candidates) {
      if (grants(rule.access, access) && applies(rule.filter)) return true
    }
    return false
  }
}

const ACCESS_KEYWORD = /^(read|write|readwrite|deny)(?:[ \t]+(.*))?$/

/** Parses ACL text; `source` names the file in error messages. */
export function parseAcl (text: string, source = 'ACL'): Acl {
  const rules: AclRule[] = []
  let user: string | undefined
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1
    const fail = (why: string): never => {
      throw new CulexError('CULEX_ERR_ACL_SYNTAX', [`${source}: line ${lineNo}: ${why}`], { line: lineNo })
    }
    const line = (lines[i] as string).trim()
    if (line === '' || line.startsWith('#')) continue

    const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(line)
    const keyword = m?.[1] ?? ''
    const rest = m?.[2] ?? ''
    if (keyword === 'user') {
      if (rest === '') fail('`user` needs a username')
      user = rest
      continue
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      fail(`unknown keyword ${JSON.stringify(keyword)} (expected user, topic or pattern)`)
    }

    const a = ACCESS_KEYWORD.exec(rest)
    let access: AclRuleAccess = 'readwrite'
    let filter = rest
    if (a !== null) {
      access = a[1] as AclRuleAccess
      filter = a[2] ?? ''
      if (filter === '') fail(`\`${keyword} ${access}\` needs a topic filter`)
    }
    if (filter === '') fail(`\`${keyword}\` needs a topic filter`)
    // Patterns are validated with placeholders standing for a safe value.
    const checked = keyword === 'pattern' ? filter.replaceAll('%c', 'c').replaceAll('%u', 'u') : filter
    if (!isValidTopicFilter(checked)) {
      fail(`invalid topic filter ${JSON.stringify(filter)} ('#' only as a whole last level [MQTT-4.7.1-1], '+' only as a whole level [MQTT-4.7.1-2])`)
    }

    if (keyword === 'pattern') rules.push({ kind: 'pattern', access, filter, line: lineNo })
    else rules.push(user === undefined ? { kind: 'topic', access, filter, line: lineNo } : { kind: 'topic', access, filter, user, line: lineNo })
  }
  return new AclImpl(rules)
}

/** Reads and parses an ACL file; errors name the file and line. */
export async function loadAclFile (path: string): Promise<Acl> {
  const raw = await readFile(path)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw)
  } catch {
    throw new CulexError('CULEX_ERR_ACL_SYNTAX', [`${path}: not valid UTF-8`])
  }
  return parseAcl(text, path)
}
