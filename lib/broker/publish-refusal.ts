/**
 * A client's PUBLISH whose cluster write Redis refused (out of memory, a
 * read-only replica, no answer): the publisher gets a clear answer, not a
 * hang (lib/cluster/refusal.ts decides which): MQTT 5 its PUBACK with 0x80
 * and the reason, and the connection goes on; 3.1.1 is closed, as any other
 * failed publish. The message reached no subscriber: aedes stops publishing
 * it at the first failed step.
 */
import type { Aedes } from 'aedes'
import { interceptPublishErrors } from '../aedes-internals.js'
import { publishRefusal } from '../cluster/refusal.js'
import type { BrokerContext } from './context.js'

export function wirePublishRefusals (aedes: Aedes, ctx: Pick<BrokerContext, 'gatewayOf'>): void {
  interceptPublishErrors(aedes, (err, packet, client) => {
    const conn = ctx.gatewayOf(client)
    if (conn === undefined || packet.qos !== 1 || packet.messageId === undefined) return false
    const answer = publishRefusal(err, conn.version ?? 4)
    if (answer?.kind !== 'ack' || !conn.publishFailed(packet.messageId, answer.reasonCode, answer.reason)) return false
    // not routed, as a refused one: a SUBSCRIBE waiting for it goes on (protocol/inbound/retained-order.ts)
    if (packet.retain) conn.retainedRouted()
    return true
  })
}
