/**
 * aedes' hooks on a message entering the broker: authorizePublish (every
 * message, wills included, before it is routed) and published (after it was
 * routed and stored).
 */
import type { AedesPublishPacket, Client, PublishPacket } from 'aedes'
import type { SecurityPolicy } from '../../auth/policy.js'
import type { Connection } from '../../protocol/connection.js'
import { stripWillProperties } from '../../protocol/delivery.js'

/** Topics only the broker publishes to. */
export function isReservedTopic (topic: string): boolean {
  return topic.startsWith('$SYS') || topic.startsWith('$events/') || topic.startsWith('$dlq/')
}

export interface AuthorizePublishContext {
  readonly security: Pick<SecurityPolicy, 'hasAcl' | 'mayPublish'> | undefined
  gatewayOf (client: { conn: unknown }): Pick<Connection, 'authenticatedAs' | 'retainedRouted'> | undefined
}

/**
 * 1. a will loses its Will Delay Interval, a CONNECT property (delivery.ts);
 * 2. with an ACL, the client may publish to the topic (the gateway checks the
 *    client's own PUBLISHes; this checks its will);
 * 3. [MQTT-4.7.2-1] $SYS (and culex's $events, $dlq) are the broker's:
 *    clients may not publish there.
 */
export function authorizePublish (ctx: AuthorizePublishContext, client: Client | null, packet: PublishPacket, callback: (err: Error | null) => void): void {
  stripWillProperties(packet)
  const conn = client ? ctx.gatewayOf(client) : undefined
  const refuse = (err: Error): void => {
    // refused, so never routed: a SUBSCRIBE waiting for it goes on (protocol/inbound/retained-order.ts)
    if (packet.retain && packet.qos < 2) conn?.retainedRouted()
    callback(err)
  }
  const security = ctx.security
  if (security?.hasAcl && client) {
    if (!security.mayPublish({ clientId: client.id, username: conn?.authenticatedAs }, packet.topic)) {
      refuse(new Error('not authorized'))
      return
    }
  }
  if (client && isReservedTopic(packet.topic)) {
    refuse(new Error(`${packet.topic.split('/')[0] ?? ''} topics are reserved`))
    return
  }
  callback(null)
}

export interface PublishedContext {
  gatewayOf (client: { conn: unknown }): Pick<Connection, 'onPublished' | 'retainedRouted'> | undefined
  /** in a cluster: Redis did not take the message for its shared groups (lib/broker/cluster-shared.ts) */
  readonly clusterShared?: { refused (payload: unknown): Error | undefined }
}

/**
 * The message is in the store for every persistent session: its PUBACK may
 * go, and a SUBSCRIBE of the client may wait for its retained message
 * (protocol/inbound/retained-order.ts).
 */
export function published (ctx: PublishedContext, packet: AedesPublishPacket, client: Client | null, callback: (err: Error | null) => void): void {
  const refused = client !== null && packet.qos > 0 ? ctx.clusterShared?.refused(packet.payload) : undefined
  if (refused !== undefined) {
    // the publisher's answer says it (broker/publish-refusal.ts): MQTT 5 PUBACK 0x80, 3.1.1 closed
    callback(refused)
    return
  }
  const conn = client ? ctx.gatewayOf(client) : undefined
  if (conn !== undefined) {
    if (packet.qos === 1 && packet.messageId !== undefined) conn.onPublished(packet.messageId)
    if (packet.retain && packet.qos < 2) conn.retainedRouted()
  }
  callback(null)
}
