/**
 * Outbound topic aliases (spec 3.3.2.3.4): culex assigns aliases from 1 up to
 * the Topic Alias Maximum the client sent, never above it and never 0
 * [MQTT-3.3.2-8] [MQTT-3.3.2-9]. The first PUBLISH on a topic carries the
 * topic and the new alias; later ones carry the alias and an empty topic.
 * Aliases live as long as the network connection [MQTT-3.3.2-7].
 */
export type AliasUse =
  | { kind: 'none' }
  | { kind: 'assign', alias: number }
  | { kind: 'reuse', alias: number }

export class OutboundAliases {
  private readonly byTopic = new Map<string, number>()

  constructor (readonly maximum: number) {}

  /** Topics get aliases first come, first served, until the client's maximum is reached. */
  use (topic: string): AliasUse {
    const known = this.byTopic.get(topic)
    if (known !== undefined) return { kind: 'reuse', alias: known }
    if (this.byTopic.size >= this.maximum) return { kind: 'none' }
    const alias = this.byTopic.size + 1
    this.byTopic.set(topic, alias)
    return { kind: 'assign', alias }
  }
}
