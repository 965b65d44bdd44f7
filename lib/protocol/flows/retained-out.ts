/**
 * The retained messages a SUBSCRIBE brings (spec 3.3.1.3), sent by the
 * gateway itself instead of by aedes. aedes' way takes two event-loop turns,
 * two Packet copies, a Transform stream step and a stream write per message
 * (about 9 µs of broker CPU each, 100k retained messages to one `#`
 * subscriber); here they are read from the store in batches, uncopied
 * (`retainedBatches`: no stream step per message), encoded, and go through
 * the outbound steps in batches.
 *
 * aedes still decides which filters get retained messages (the SUBACK's
 * grants, Retain Handling [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]) and
 * reads the store (aedes-internals.ts `claimRetainedAtSubscribe`). Each
 * message takes aedes' steps for it (handlers/subscribe.js sendRetained,
 * then client.deliverQoS):
 * 1. [MQTT-3.3.2-5] an expired retained message is not sent, and is removed;
 *    otherwise [MQTT-3.3.2-6] its Message Expiry Interval is what remains;
 * 2. [MQTT-3.3.1-8] RETAIN set, and the SUBSCRIBE's Subscription Identifier
 *    [MQTT-3.3.4-3];
 * 3. the broker's authorizeForward (lib/broker/hooks/forward.ts: ACL read
 *    right, [MQTT-3.8.4-8] the QoS of the client's matching subscriptions);
 * 4. the outbound steps of every PUBLISH (flows/publish-out.ts: Maximum
 *    Packet Size, topic alias, metrics), with aedes' back-pressure: the next
 *    batch waits while the client is behind, until it is shed.
 * The gateway sends QoS 0 deliveries only: from the first message that goes
 * out at QoS 1 or 2 (a client that also holds such a subscription), the rest
 * go through aedes (packet ids, acknowledgements, persistence), in order.
 * It takes them only when the client holds QoS 0 subscriptions alone, and
 * the messages start once what aedes wrote before (the SUBACK) has reached
 * the writer; with aedes' writes still held for a congested client, aedes
 * sends them all, behind those.
 */
import type { AedesPublishPacket, Client } from 'aedes'
import type { GrantedSubscription, RetainedLookup } from '../../aedes-internals.js'
import { clientSubscriptions, deliverRetainedByBroker } from '../../aedes-internals.js'
import { expiryIntervalLeft } from '../delivery.js'
import { frameOf, type Frame } from '../frame.js'
import { encodePublish } from '../outbound/encode-publish.js'
import { afterBrokerWrite, congested } from './client-writer.js'
import type { FastPathHost } from './fast-paths.js'
import { sendOwnPublishes } from './publish-out.js'

/** messages per batch through the outbound steps and between back-pressure checks */
const BATCH = 64

export interface RetainedOutHost extends FastPathHost {
  readonly log: FastPathHost['log'] & { error: (obj: object, msg: string) => void }
  /** resolves at the socket's next 'drain' or 'close', or after `ms` */
  writableAgain (ms: number): Promise<void>
}

/** What the store yields: a stored retained PUBLISH. */
interface StoredRetained {
  topic: string
  payload: Buffer | string
  qos: 0 | 1 | 2
  properties?: Record<string, unknown> | undefined
  /** absolute expiry (ms since the epoch), from the Message Expiry Interval */
  messageExpiry?: number | undefined
}

/** Takes a SUBSCRIBE's retained messages (true), or leaves them to aedes (false). */
export function claimRetained (host: RetainedOutHost, subscriptions: readonly GrantedSubscription[], lookup: () => RetainedLookup): boolean {
  if (host.version === undefined || !host.isAccepted || host.isClosed || !onlyQoS0(host.client)) return false
  const identifier = subscriptions[0]?.subscriptionIdentifier
  const retained = lookup()
  // after the SUBACK aedes just wrote, which reaches the writer on the next tick
  setImmediate(() => {
    // a throw ends the store's iteration (for await calls its return)
    sendRetained(host, retained, subscriptions, identifier).catch((err: unknown) => {
      host.log.error({ err }, 'sending retained messages failed')
    })
  })
  return true
}

function onlyQoS0 (client: Client): boolean {
  const subs = clientSubscriptions(client)
  for (const filter in subs) if ((subs[filter]?.qos ?? 0) > 0) return false
  return true
}

/**
 * [MQTT-3.8.4-8] a retained message goes out at the lower of its QoS and the
 * highest granted among the client's subscriptions that match its topic
 * (protocol/delivery.ts, matched per message). Known to be 0 for every
 * message of the lookup, without matching, while every filter the client
 * holds is QoS 0 and this SUBSCRIBE's filters, which the store matched each
 * message against, are still held.
 */
function knownQoS0 (client: Client, granted: readonly GrantedSubscription[]): boolean {
  const subs = clientSubscriptions(client)
  for (const filter in subs) if ((subs[filter]?.qos ?? 0) > 0) return false
  for (const g of granted) if (subs[g.topic] === undefined) return false
  return true
}

async function sendRetained (host: RetainedOutHost, lookup: RetainedLookup, granted: readonly GrantedSubscription[], identifier: number | undefined): Promise<void> {
  let byBroker = host.side.writableLength > 0
  let frames: Frame[] = []
  for await (const batch of lookup.messages as AsyncIterable<readonly StoredRetained[]>) {
    // one clock reading and one look at the subscriptions per batch and after each wait: nothing else runs in between
    let now = Date.now()
    let atQoS0 = knownQoS0(host.client, granted)
    for (const stored of batch) {
      if (host.isClosed || host.socket.destroyed) return
      // step 1
      if (stored.messageExpiry !== undefined && stored.messageExpiry <= now) {
        await lookup.removeExpired(stored.topic).catch(() => {})
        now = Date.now()
        atQoS0 = knownQoS0(host.client, granted)
        continue
      }
      if (byBroker) {
        await deliverByBroker(host.client, retainedPacket(stored, identifier, now))
        now = Date.now()
        continue
      }
      // step 3
      const packet = host.ctx.broker.authorizeForward(host.client, retainedPacket(stored, identifier, now, atQoS0 ? 0 : stored.qos))
      if (packet === null || packet === undefined) continue
      if (packet.qos > 0) {
        frames = sendBatch(host, frames, now)
        byBroker = true
        await deliverByBroker(host.client, retainedPacket(stored, identifier, now))
        now = Date.now()
        continue
      }
      frames.push(frameOf(encodePublish({ topic: packet.topic, payload: packet.payload, qos: 0, retain: packet.retain, dup: false, properties: packet.properties }, host.version ?? 4)))
      if (frames.length >= BATCH) {
        frames = sendBatch(host, frames, now)
        await room(host)
        now = Date.now()
        atQoS0 = knownQoS0(host.client, granted)
      }
    }
  }
  if (!host.isClosed) sendBatch(host, frames, Date.now())
}

/** Step 4 for a batch; returns the next (empty) batch. */
function sendBatch (host: RetainedOutHost, frames: Frame[], now: number): Frame[] {
  if (frames.length > 0 && !host.isClosed && !host.socket.destroyed) sendOwnPublishes(host, frames, now)
  return frames.length > 0 ? [] : frames
}

/**
 * aedes' back-pressure for its own writes (flows/client-writer.ts): a client
 * that is behind is waited for, as long as it makes progress; once shed
 * (slowConsumerTimeout without progress), the queue limits apply instead.
 */
async function room (host: RetainedOutHost): Promise<void> {
  while (!host.isClosed && !host.socket.destroyed && congested(host) && host.pressure !== 'shedding') {
    if (host.pressure === 'flowing') afterBrokerWrite(host)
    await host.writableAgain(host.settings.slowConsumerTimeout)
  }
}

/** Steps 1-2: the packet aedes' sendRetained makes of a stored retained message (`qos`: its own, or the one known for it). */
function retainedPacket (stored: StoredRetained, identifier: number | undefined, now: number, qos: 0 | 1 | 2 = stored.qos): AedesPublishPacket {
  const packet = { cmd: 'publish', brokerId: null, brokerCounter: 0, topic: stored.topic, payload: stored.payload, qos, retain: true, dup: false } as unknown as AedesPublishPacket & { properties?: Record<string, unknown> }
  if (stored.properties !== undefined || stored.messageExpiry !== undefined || identifier !== undefined) {
    const properties: Record<string, unknown> = { ...stored.properties }
    if (stored.messageExpiry !== undefined) properties.messageExpiryInterval = expiryIntervalLeft(stored.messageExpiry, now)
    if (identifier !== undefined) properties.subscriptionIdentifier = identifier
    packet.properties = properties
  }
  return packet
}

async function deliverByBroker (client: Client, packet: AedesPublishPacket): Promise<void> {
  await new Promise<void>((resolve) => { deliverRetainedByBroker(client, packet, resolve) })
}
