/**
 * aedes' events that concern the gateway of a client, and the broker's own
 * errors, which are logged.
 */
import type { Aedes } from 'aedes'
import type { BrokerContext } from './context.js'

export function wireGatewayEvents (aedes: Aedes, ctx: Pick<BrokerContext, 'gatewayOf' | 'logger'>): void {
  // after aedes re-sent the session's queued messages: the gateway writes them
  // out, and shared groups may deliver (so they are not taken twice)
  aedes.on('clientReady', (client) => { ctx.gatewayOf(client)?.ready() })
  // what the client sent behind its CONNECT waited for the CONNACK (inbound/connack-gate.ts)
  aedes.on('connackSent', (_packet, client) => { ctx.gatewayOf(client)?.brokerSentConnack() })
  aedes.on('clientError', (client, err) => {
    (ctx.gatewayOf(client)?.log ?? ctx.logger).debug({ err: err.message }, 'client error')
  })
  aedes.on('connectionError', (client, err) => {
    (ctx.gatewayOf(client)?.log ?? ctx.logger).debug({ err: err.message }, 'connection error')
  })
  ;(aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) => ctx.logger.error({ err }, 'broker error'))
}
