/**
 * Client lifecycle events (config `lifecycleEvents`): connected,
 * disconnected, subscribed, unsubscribed and session expired, published by
 * the broker to `$events/client/{clientId}/{event}` as CloudEvents 1.0 in the
 * binary content mode of the CloudEvents MQTT protocol binding (MQTT 5):
 * - the payload is the event data, JSON;
 * - `datacontenttype` is the MQTT 5 Content Type property (`application/json`);
 * - every other attribute (`specversion`, `id`, `source`, `type`, `time`,
 *   `subject`) is an MQTT 5 User Property of the same name.
 * Binary mode exists in MQTT 5 only: a 3.1.1 subscriber receives the JSON
 * data without the attributes (the PUBLISH of 3.1.1 has no properties).
 *
 * QoS 0, not retained. Events are about clients only: the broker's own
 * publications (no client) never produce one, so there is no event about an
 * event. Topics start with `$`, so `#` subscribers do not see them
 * [MQTT-4.7.2-1]; subscribe to `$events/#` or `$events/client/+/connected`.
 */
import { randomUUID } from 'node:crypto'
import type { Client, Subscription } from 'aedes'
import type { Logger } from 'pino'
import type { CulexBroker } from '../broker.js'
import { describeReasonCode } from '../protocol/reason-codes.js'
import { topicLevel } from './topic.js'

export const EVENTS_PREFIX = '$events/client/'
export const EVENT_TYPE_PREFIX = 'io.culex.client.'

export type LifecycleEventName = 'connected' | 'disconnected' | 'subscribed' | 'unsubscribed' | 'session-expired'

export interface ConnectedData {
  clientId: string
  transport: string | null
  protocolVersion: number | null
  /** MQTT 5 negotiated Session Expiry Interval, seconds (0 for a clean 3.1.1 session) */
  sessionExpiryInterval: number
  remoteAddress: string | null
}

export interface DisconnectedData {
  clientId: string
  transport: string | null
  protocolVersion: number | null
  /** the reason code of the DISCONNECT that ended the connection, either side; null when none is known */
  reasonCode: number | null
  /** its name, e.g. `0x8e SessionTakenOver` */
  reason: string | null
  /** who sent the DISCONNECT, when the gateway reports it */
  by?: 'client' | 'server' | 'network'
}

export interface SubscriptionData {
  topic: string
  qos?: number
  noLocal?: boolean
  retainAsPublished?: boolean
  retainHandling?: number
}

export interface SubscriptionsData {
  clientId: string
  subscriptions: SubscriptionData[]
}

export interface SessionExpiredData {
  clientId: string
}

/** The CloudEvents context attributes carried as MQTT 5 User Properties. */
export interface CloudEventAttributes {
  specversion: '1.0'
  id: string
  source: string
  type: string
  time: string
  subject: string
}

/**
 * What the protocol gateway may report about how a connection ended
 * (`broker.connectionOf(client)`); read defensively, both optional.
 */
interface GatewayView {
  readonly meta: { readonly transport: string, readonly remoteAddress: string | undefined }
  readonly version: number | undefined
  readonly disconnectReasonCode?: number | undefined
  readonly disconnectedBy?: 'client' | 'server' | undefined
}

export interface LifecycleEvents {
  detach (): void
}

export function attachLifecycleEvents (broker: CulexBroker, logger: Logger): LifecycleEvents {
  const aedes = broker.aedes
  const source = `/culex/${aedes.id}`

  const emit = (name: LifecycleEventName, clientId: string, data: object): void => {
    if (aedes.closed) return
    const attributes: CloudEventAttributes = {
      specversion: '1.0',
      id: randomUUID(),
      source,
      type: EVENT_TYPE_PREFIX + name,
      time: new Date().toISOString(),
      subject: clientId
    }
    const topic = `${EVENTS_PREFIX}${topicLevel(clientId)}/${name}`
    aedes.publish({
      cmd: 'publish',
      topic,
      payload: Buffer.from(JSON.stringify(data)),
      qos: 0,
      retain: false,
      dup: false,
      properties: {
        // CloudEvents MQTT binding 3.1.3.1: datacontenttype is the Content Type
        contentType: 'application/json',
        // spec 3.3.2.3.2: the payload is UTF-8
        payloadFormatIndicator: true,
        // CloudEvents MQTT binding 3.1.3.2: every other attribute is a User Property
        userProperties: { ...attributes }
      }
    }, (err) => {
      if (err) logger.debug({ err, topic }, 'lifecycle event not published')
    })
  }

  const gatewayOf = (client: Client): GatewayView | undefined => broker.connectionOf(client)

  const onReady = (client: Client): void => {
    if (!hasId(client)) return
    const conn = gatewayOf(client)
    const data: ConnectedData = {
      clientId: client.id,
      transport: conn?.meta.transport ?? null,
      protocolVersion: conn?.version ?? client.version ?? null,
      sessionExpiryInterval: client.sessionExpiryInterval ?? 0,
      remoteAddress: conn?.meta.remoteAddress ?? null
    }
    emit('connected', client.id, data)
  }

  const onDisconnect = (client: Client): void => {
    if (!hasId(client)) return
    const conn = gatewayOf(client)
    // the gateway sees DISCONNECTs from both sides; aedes records only those it sent itself (v5)
    const code = conn?.disconnectReasonCode ?? client.disconnectReasonCode ?? null
    const data: DisconnectedData = {
      clientId: client.id,
      transport: conn?.meta.transport ?? null,
      protocolVersion: conn?.version ?? client.version ?? null,
      reasonCode: code,
      reason: code === null ? null : describeReasonCode(code)
    }
    if (conn !== undefined && 'disconnectedBy' in conn) data.by = conn.disconnectedBy ?? 'network'
    emit('disconnected', client.id, data)
  }

  const onSubscribe = (subs: Subscription[], client: Client): void => {
    if (!hasId(client)) return
    // aedes reports refused filters too, with a failure code as their QoS [MQTT-3.9.3-2]
    const granted = subs.filter(s => s.qos < 0x80)
    if (granted.length === 0) return
    const data: SubscriptionsData = { clientId: client.id, subscriptions: granted.map(subscriptionData) }
    emit('subscribed', client.id, data)
  }

  const onUnsubscribe = (topics: string[], client: Client): void => {
    if (!hasId(client)) return
    const data: SubscriptionsData = { clientId: client.id, subscriptions: topics.map(topic => ({ topic })) }
    emit('unsubscribed', client.id, data)
  }

  const onSessionExpired = (client: Client): void => {
    if (!hasId(client)) return
    const data: SessionExpiredData = { clientId: client.id }
    emit('session-expired', client.id, data)
  }

  aedes.on('clientReady', onReady)
  aedes.on('clientDisconnect', onDisconnect)
  aedes.on('subscribe', onSubscribe)
  aedes.on('unsubscribe', onUnsubscribe)
  aedes.on('sessionExpired', onSessionExpired)

  return {
    detach () {
      aedes.removeListener('clientReady', onReady)
      aedes.removeListener('clientDisconnect', onDisconnect)
      aedes.removeListener('subscribe', onSubscribe)
      aedes.removeListener('unsubscribe', onUnsubscribe)
      aedes.removeListener('sessionExpired', onSessionExpired)
    }
  }
}

/** Events are about clients; a broker-side publication or subscription has none. */
function hasId (client: Client | null | undefined): client is Client {
  return client !== null && client !== undefined && typeof client.id === 'string' && client.id.length > 0
}

function subscriptionData (sub: Subscription): SubscriptionData {
  const out: SubscriptionData = { topic: sub.topic, qos: sub.qos }
  if (sub.nl !== undefined) out.noLocal = Boolean(sub.nl)
  if (sub.rap !== undefined) out.retainAsPublished = Boolean(sub.rap)
  if (sub.rh !== undefined) out.retainHandling = sub.rh
  return out
}
