/**
 * Choosing the member of a group for one message (spec 4.8.2 leaves the
 * choice to the server): the online members, those with room when the
 * message needs it, handed to the MemberSelector as the group's reused
 * candidate list, so a choice per message allocates nothing.
 */
import type { Candidate, MemberSelector } from './strategies.js'
import type { Group, Member } from './group.js'

/** The online members (with room, when `needRoom`), refilled into the group's candidate list. */
export function candidatesOf (group: Group, needRoom: boolean, avoid?: string): Candidate[] {
  const out = group.candidates
  out.length = 0
  let avoided: Candidate | undefined
  for (const m of group.members.values()) {
    if (!m.link) continue
    const room = m.link.room()
    if (needRoom && room <= 0) continue
    const c = m.candidate
    c.room = room
    c.inflight = m.assigned
    if (m.clientId === avoid) avoided = c
    else out.push(c)
  }
  // the member to avoid only when it is the only one
  if (out.length === 0 && avoided !== undefined) out.push(avoided)
  return out
}

/** The member the selector picks, or undefined when none is online (with room) or it keeps the message queued. */
export function chooseMember (selector: MemberSelector, group: Group, topic: string, publisherId: string | undefined, needRoom: boolean, avoid?: string): Member | undefined {
  const candidates = candidatesOf(group, needRoom, avoid)
  if (candidates.length === 0) return undefined
  const input = group.selectInput
  input.topic = topic
  input.publisherId = publisherId
  const choice = selector.select(input, candidates)
  return choice === undefined ? undefined : group.members.get(choice.clientId)
}
