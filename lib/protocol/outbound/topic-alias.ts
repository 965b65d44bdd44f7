/**
 * Outbound topic aliases (spec 3.3.2.3.4): culex assigns aliases from 1 up to
 * the Topic Alias Maximum the client sent, never above it and never 0
 * [MQTT-3.3.2-8] [MQTT-3.3.2-11] [MQTT-3.1.2-26] [MQTT-3.1.2-27]. The first PUBLISH on a topic carries the
 * topic and the new alias; later ones carry the alias and an empty topic.
 * Aliases live as long as the network connection [MQTT-3.3.2-7].
 */
export type AliasUse =
  | { kind: 'none' }
  | { kind: 'assign', alias: number }
  | { kind: 'reuse', alias: number }

export class OutboundAliases {
  private readonly byTopic = new Map<string, number>()
  private readonly free: number[] = []
  private next = 1

  constructor (readonly maximum: number) {}

  /** Gives back the alias of a topic whose first aliased PUBLISH was not sent. */
  forget (topic: string): void {
    const alias = this.byTopic.get(topic)
    if (alias === undefined) return
    this.byTopic.delete(topic)
    this.free.push(alias)
  }

  /** Topics get aliases first come, first served, until the client's maximum is reached. */
  use (topic: string): AliasUse {
    const known = this.byTopic.get(topic)
    if (known !== undefined) return { kind: 'reuse', alias: known }
    const alias = this.free.pop() ?? (this.next <= this.maximum ? this.next++ : undefined)
    if (alias === undefined) return { kind: 'none' }
    this.byTopic.set(topic, alias)
    return { kind: 'assign', alias }
  }
}
