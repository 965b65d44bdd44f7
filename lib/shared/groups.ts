/** The shared groups by key, and which of them a client is a member of. */
import { Group, type Member } from './group.js'

/** A client's membership of one group, as it subscribed. */
export interface Membership { group: string, qos: 0 | 1 | 2, subscriptionIdentifier: number | undefined, retainAsPublished: boolean, assigned: number }

export class Groups {
  private readonly byKey = new Map<string, Group>()

  /** `made` runs once per group, when it is made (the dispatcher subscribes its filter). */
  constructor (private readonly made: (group: Group) => void) {}

  get size (): number { return this.byKey.size }

  get (key: string): Group | undefined {
    return this.byKey.get(key)
  }

  /** The group of `key` (`$share/{name}/{filter}`), made on first use. */
  ensure (key: string, filter?: string): Group {
    let group = this.byKey.get(key)
    if (!group) {
      group = new Group(key, filter ?? filterOf(key))
      this.byKey.set(key, group)
      this.made(group)
    }
    return group
  }

  delete (group: Group): void {
    this.byKey.delete(group.key)
  }

  values (): IterableIterator<Group> {
    return this.byKey.values()
  }

  /** The groups the client is a member of. */
  of (clientId: string): Group[] {
    const out: Group[] = []
    for (const g of this.byKey.values()) if (g.members.has(clientId)) out.push(g)
    return out
  }

  /** The groups the client belongs to, with what it subscribed with (for the admin API). */
  memberships (clientId: string): Membership[] {
    return this.of(clientId).map((g) => {
      const m = g.members.get(clientId) as Member
      return { group: g.key, qos: m.qos, subscriptionIdentifier: m.si, retainAsPublished: m.rap, assigned: m.assigned }
    })
  }

  /** How many groups the client is a member of. */
  count (clientId: string): number {
    let n = 0
    for (const g of this.byKey.values()) if (g.members.has(clientId)) n++
    return n
  }

  /** Is the client a member of any group? */
  hasMember (clientId: string): boolean {
    for (const g of this.byKey.values()) if (g.members.has(clientId)) return true
    return false
  }
}

/** The filter of a `$share/{name}/{filter}` key. */
export function filterOf (key: string): string {
  return key.slice(key.indexOf('/', 7) + 1)
}
