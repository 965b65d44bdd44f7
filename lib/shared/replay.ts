/**
 * Replaying dead letters: those waiting in a group that holds a dead-letter
 * topic (e.g. a durable `$share/dlq/$dlq/#` whose members are offline) go
 * back into the groups they came from, as first published (delivery count
 * reset). Each is put into every group of its `culex-group` name whose
 * filter matches its original topic, then taken out of the holding group.
 * Skipped (left where they are): messages that are no dead letters of
 * culex's, or whose group is gone.
 */
import type { Logger } from 'pino'
import { topicMatches } from '../protocol/topic.js'
import { replayable } from './dead-letters.js'
import type { Entry, Group } from './group.js'
import type { StoredMessage } from './store.js'
import { groupName } from './strategies.js'

export interface ReplayResult { replayed: number, skipped: number }

/** What a replay needs of the dispatcher. */
export interface ReplayHost {
  group (key: string): Group | undefined
  groups (): Iterable<Group>
  /** one message more in the group's log, for a member */
  enqueue (group: Group, message: StoredMessage): Promise<void>
  /** finished for the group (and gone from its log) */
  complete (group: Group, entry: Entry): Promise<void>
}

/** Undefined when there is no group `from`; at most `limit` messages are looked at. */
export async function replayDeadLetters (host: ReplayHost, from: string, limit: number = Number.MAX_SAFE_INTEGER, log: Logger): Promise<ReplayResult | undefined> {
  const source = host.group(from)
  if (!source) return undefined
  const result: ReplayResult = { replayed: 0, skipped: 0 }
  // the messages waiting for a member, not those a member holds now
  for (const entry of [...source.pending]) {
    if (result.replayed + result.skipped >= limit) break
    const dead = replayable(entry.message)
    const targets = dead === undefined ? [] : [...host.groups()].filter(g => g !== source && groupName(g.key) === dead.group && topicMatches(g.filter, dead.message.topic))
    if (dead === undefined || targets.length === 0) { result.skipped++; continue }
    for (const g of targets) await host.enqueue(g, { ...dead.message })
    result.replayed++
    await host.complete(source, entry)
  }
  if (result.replayed > 0) log.info({ from, ...result }, 'dead letters replayed')
  return result
}
