/**
 * One aedes subscription per filter that shared groups use, whatever the
 * number of groups on it: its listener hands each message to the groups and
 * tells aedes (which then lets the publisher's PUBACK go) once the message
 * is durable in their logs.
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { topicMatches } from '../protocol/topic.js'
import type { Group } from './group.js'

/** A message as aedes' emitter hands it to listeners. */
export interface MqPacket {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain?: boolean
  properties?: object
  messageExpiry?: number
  clientId?: string
}

/** Gives one message to the groups; a promise when it is not yet durable in their logs. */
export type Route = (groups: ReadonlySet<Group>, packet: MqPacket) => Promise<void> | undefined

type Listener = (packet: MqPacket, cb: () => void) => void

export class FilterSubscriptions {
  private readonly filters = new Map<string, { groups: Set<Group>, listener: Listener }>()

  constructor (private readonly aedes: Aedes, private readonly route: Route, private readonly log: Logger) {}

  /** The group's filter is subscribed to (once for all its groups). */
  add (group: Group): void {
    let f = this.filters.get(group.filter)
    if (!f) {
      const groups = new Set<Group>()
      const wildcardFirst = group.filter.startsWith('+') || group.filter.startsWith('#')
      const route = this.route
      const listener: Listener = (packet, cb) => {
        // [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics
        if (wildcardFirst && packet.topic.startsWith('$')) { cb(); return }
        let durable: Promise<void> | undefined
        try {
          durable = route(groups, packet)
        } catch (err) {
          this.routeFailed(err, cb)
          return
        }
        if (durable === undefined) cb()
        else durable.then(cb, (err: unknown) => this.routeFailed(err, cb))
      }
      f = { groups, listener }
      this.filters.set(group.filter, f)
      this.aedes.subscribe(group.filter, listener as never, () => {})
    }
    f.groups.add(group)
  }

  /** The group is gone; its filter is unsubscribed when no other group uses it. */
  remove (group: Group): void {
    const f = this.filters.get(group.filter)
    if (!f) return
    f.groups.delete(group)
    if (f.groups.size === 0) {
      this.filters.delete(group.filter)
      this.aedes.unsubscribe(group.filter, f.listener as never, () => {})
    }
  }

  /** Is there a group whose filter matches `topic`? */
  matches (topic: string): boolean {
    for (const filter of this.filters.keys()) if (topicMatches(filter, topic)) return true
    return false
  }

  close (): void {
    for (const [filter, f] of this.filters) this.aedes.unsubscribe(filter, f.listener as never, () => {})
    this.filters.clear()
  }

  private routeFailed (err: unknown, cb: () => void): void {
    this.log.error({ err }, 'shared subscription routing failed')
    cb()
  }
}
