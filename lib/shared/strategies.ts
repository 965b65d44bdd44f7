/**
 * Choosing the member of a shared subscription group that gets a message
 * (spec 4.8.2 leaves the choice to the server). Every strategy sits behind
 * `MemberSelector`, so a cluster-wide selector (e.g. on Redis) can replace
 * the local ones without touching the rest.
 */
import { createHash, randomInt } from 'node:crypto'
import { STRATEGIES, type Strategy } from './strategy-names.js'
import { patternRegExp } from './policy.js'

export { STRATEGIES, type Strategy }

/** What a selector sees of an online member. */
export interface Candidate {
  readonly clientId: string
  /** free places in its Receive Maximum / in-flight window */
  readonly room: number
  /** messages of this group given to it and not yet acknowledged */
  readonly inflight: number
}

export interface SelectInput {
  /** the group's name, `$share/{name}/{filter}` */
  readonly group: string
  readonly topic: string
  /** client id of the publisher, if a client published it */
  readonly publisherId: string | undefined
}

export interface MemberSelector {
  /**
   * One of `candidates` (all online, all with room), or undefined to keep the
   * message queued. The dispatcher reuses `input`, `candidates` and their
   * objects from one call to the next (one call per message): a selector
   * keeps what it needs of them (a client id), never the objects.
   */
  select (input: SelectInput, candidates: readonly Candidate[]): Candidate | undefined
  /** the member went away (sticky and round-robin forget it) */
  forget (group: string, clientId: string): void
}

function hash (value: string): number {
  return createHash('sha1').update(value).digest().readUInt32BE(0)
}

/** Picks by a stable hash over the member ids, sorted, so the choice does not depend on join order. */
function byHash (key: string, candidates: readonly Candidate[]): Candidate | undefined {
  if (candidates.length === 0) return undefined
  const sorted = [...candidates].sort((a, b) => (a.clientId < b.clientId ? -1 : 1))
  return sorted[hash(key) % sorted.length]
}

export class LocalSelector implements MemberSelector {
  private readonly cursor = new Map<string, string>()
  private readonly stuck = new Map<string, string>()
  private readonly turns = new Map<string, number>()

  constructor (private readonly strategyOf: (group: string) => Strategy) {}

  select (input: SelectInput, candidates: readonly Candidate[]): Candidate | undefined {
    if (candidates.length === 0) return undefined
    switch (this.strategyOf(input.group)) {
      case 'round-robin': return this.roundRobin(input.group, candidates)
      case 'random': return candidates[randomInt(candidates.length)]
      case 'sticky': {
        const current = this.stuck.get(input.group)
        const same = candidates.find(c => c.clientId === current)
        if (same) return same
        const chosen = candidates[randomInt(candidates.length)] as Candidate
        this.stuck.set(input.group, chosen.clientId)
        return chosen
      }
      case 'hash-clientid': return byHash(input.publisherId ?? '', candidates)
      // hash-topic keeps the messages of one topic on one member, so in order
      case 'hash-topic': return byHash(input.topic, candidates)
      case 'least-inflight': {
        // the fewest unacknowledged messages; among equals, the most room
        let best = candidates[0] as Candidate
        for (const c of candidates) {
          if (c.inflight < best.inflight || (c.inflight === best.inflight && c.room > best.room)) best = c
        }
        return best
      }
    }
  }

  /**
   * One message to each member in turn, in the order of `candidates` (join
   * order); members without room are not candidates, so they are skipped.
   */
  private roundRobin (group: string, candidates: readonly Candidate[]): Candidate {
    const last = this.cursor.get(group)
    let next = candidates[0] as Candidate
    if (last !== undefined) {
      const i = candidates.findIndex(c => c.clientId === last)
      if (i >= 0) next = candidates[(i + 1) % candidates.length] as Candidate
      else {
        // the last one is full or gone: rotate by a turn counter instead
        const turn = (this.turns.get(group) ?? 0) + 1
        this.turns.set(group, turn)
        next = candidates[turn % candidates.length] as Candidate
      }
    }
    this.cursor.set(group, next.clientId)
    return next
  }

  forget (group: string, clientId: string): void {
    if (this.stuck.get(group) === clientId) this.stuck.delete(group)
  }
}

export interface StrategyRule {
  /** group name pattern: `*` matches any characters */
  pattern: string
  /** unset: the default strategy (the rule sets only a queue policy, policy.ts) */
  strategy?: Strategy | undefined
}

/** The strategy of a group: that of the first rule whose pattern matches its name, else the default. */
export function strategyResolver (defaultStrategy: Strategy, rules: readonly StrategyRule[]): (group: string) => Strategy {
  const compiled = rules.map(r => ({ re: patternRegExp(r.pattern), strategy: r.strategy }))
  const cache = new Map<string, Strategy>()
  return (groupKey: string) => {
    let s = cache.get(groupKey)
    if (s === undefined) {
      const name = groupName(groupKey)
      s = compiled.find(r => r.re.test(name))?.strategy ?? defaultStrategy
      cache.set(groupKey, s)
    }
    return s
  }
}

/** `$share/{name}/{filter}` -> `{name}` */
export function groupName (key: string): string {
  const rest = key.startsWith('$share/') ? key.slice(7) : key
  const slash = rest.indexOf('/')
  return slash < 0 ? rest : rest.slice(0, slash)
}
