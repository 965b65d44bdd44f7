/**
 * The broker's side of wills cluster-wide (lib/cluster/wills.ts): the will
 * of each live connection is kept in Redis, so the survivors publish it if
 * this node dies; a will whose Will Delay Interval runs after its connection
 * ended is timed by the cluster (one node), not by aedes here, so that a
 * reconnect on any node cancels it [MQTT-3.1.3-9] and a node that dies
 * during the delay does not lose it; due wills are published here when this
 * node holds the cluster's timer lock.
 */
import type { Aedes, Client, PublishPacket } from 'aedes'
import { cancelDelayedWill, clientWill, delayedWillTimer, discardWill, type AedesWill } from '../aedes-internals.js'
import type { ClusterWill } from '../cluster/index.js'
import type { BrokerContext } from './context.js'
import { isReservedTopic } from './hooks/publish.js'
import { isCulexStore } from './store.js'

type Context = Pick<BrokerContext, 'cluster' | 'logger' | 'security' | 'gatewayOf' | 'store' | 'clientById'>

/**
 * The delay of a will once its connection ends: the Will Delay Interval,
 * capped by the Session Expiry Interval, as the will is sent no later than
 * the session ends [MQTT-3.1.2-8]; 3.1.1 has no delay.
 */
export function willDelayMs (client: Pick<Client, 'version' | 'sessionExpiryInterval'>, will: AedesWill): number {
  if (client.version !== 5) return 0
  const delay = will.properties?.willDelayInterval ?? 0
  return Math.max(0, Math.min(delay, client.sessionExpiryInterval)) * 1000
}

function toClusterWill (will: AedesWill): ClusterWill {
  const out: ClusterWill = { topic: will.topic, payload: will.payload, qos: will.qos === 2 ? 2 : will.qos === 1 ? 1 : 0, retain: will.retain }
  if (will.properties !== undefined) out.properties = will.properties as ClusterWill['properties']
  return out
}

/**
 * A session adopted from a dead node (lib/cluster/adoption.ts, orphans.ts)
 * brings the will of its dead connection in the store. The cluster publishes
 * a dead node's wills (REAP, then TAKE on the timer holder: routed to every
 * node), so the store's copy goes: aedes' will sweep would publish it again,
 * on this node only. One the cluster has no record of (its node died after
 * the store had it, before holding it in Redis) goes to the cluster's due
 * set, due after its Will Delay [MQTT-3.1.3-9]. When the session is claimed
 * by its client's own reconnect (`reconnect`), a will with a Will Delay is
 * not sent: nobody timed it, and a reconnect within the delay forbids it
 * [MQTT-3.1.3-9] (one whose delay ran out before the reconnect is then not
 * sent either: README "Not yet"); one without a delay was due when the dead
 * node's connection ended, before this reconnect, and is sent [MQTT-3.1.2-8].
 */
export async function adoptStoredWill (ctx: Pick<Context, 'cluster' | 'store' | 'logger'>, clientId: string, epoch: number, reconnect = false): Promise<void> {
  const store = ctx.store()
  const cluster = ctx.cluster
  if (cluster === undefined || !isCulexStore(store)) return
  const stored = await store.getWill({ id: clientId })
  if (stored === undefined || typeof stored.topic !== 'string') return
  if (!isReservedTopic(stored.topic)) {
    const payload = stored.payload === undefined ? Buffer.alloc(0) : Buffer.from(stored.payload)
    const will: ClusterWill = { topic: stored.topic, payload, qos: stored.qos === 2 ? 2 : stored.qos === 1 ? 1 : 0, retain: stored.retain === true }
    if (stored.properties !== undefined) will.properties = stored.properties as ClusterWill['properties']
    const delayMs = Math.max(0, Number(stored.properties?.willDelayInterval ?? 0)) * 1000
    if (reconnect && delayMs > 0) ctx.logger.info({ clientId, topic: will.topic }, 'cluster: an adopted session\'s delayed will the cluster did not hold is cancelled by its client\'s reconnect')
    else if (await cluster.adoptStoredWill(clientId, epoch, will, delayMs)) ctx.logger.info({ clientId, topic: will.topic }, 'cluster: an adopted session\'s will the cluster did not hold is now timed by it')
  }
  await store.delWill({ id: clientId })
}

export function wireClusterWills (aedes: Aedes, ctx: Context, epochOf: (client: Client) => number | undefined): void {
  const cluster = ctx.cluster
  if (cluster === undefined) return
  /** per held connection: the epoch and the will it became live with */
  const held = new WeakMap<Client, { epoch: number, will: AedesWill }>()

  /** this node's store must not publish a will the cluster has taken care of (after a restart) */
  const forgetStored = (id: string): void => {
    const store = ctx.store()
    if (isCulexStore(store)) store.delWill({ id }).catch(() => {})
  }

  const publish = async (clientId: string, will: ClusterWill): Promise<void> => {
    const packet = { cmd: 'publish' as const, topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, dup: false, ...(will.properties !== undefined ? { properties: will.properties } : {}) }
    // as aedes' own will sweep does: authorized with no client (the ACL was checked when it was held), then published
    const sent = await new Promise<boolean>((resolve, reject) => {
      aedes.authorizePublish(null, packet as PublishPacket, (err) => {
        if (err) { ctx.logger.warn({ clientId, err }, 'cluster: a will was not authorized; dropped'); resolve(false); return }
        // QoS 1/2: in the other nodes' inboxes first, as a client's message (cluster-qos.ts)
        const routed = packet.qos === 0 ? Promise.resolve() : cluster.routeDurable(packet)
        routed.then(() => { aedes.publish(packet as PublishPacket, (perr) => { if (perr) reject(perr); else resolve(true) }) }, reject)
      })
    })
    // published with no client, so aedes' 'publish' event does not route a QoS 0 one (broker/cluster.ts)
    if (sent && packet.qos === 0) cluster.route(packet)
  }
  cluster.attachWills({
    publish,
    publishedElsewhere (clientId, epoch) {
      const client = ctx.clientById(clientId)
      if (client === undefined || held.get(client)?.epoch !== epoch) return
      held.delete(client)
      discardWill(client)
      forgetStored(clientId)
    }
  })

  /** a will this node would refuse to publish is not handed to the survivors either */
  const mayPublish = (client: Client, will: AedesWill): boolean => {
    if (isReservedTopic(will.topic)) return false
    const security = ctx.security
    return security?.hasAcl !== true || security.mayPublish({ clientId: client.id, username: ctx.gatewayOf(client)?.authenticatedAs }, will.topic)
  }

  aedes.on('clientReady', (client) => {
    const will = clientWill(client)
    const epoch = epochOf(client)
    if (epoch === undefined) return
    if (will === undefined || !mayPublish(client, will)) {
      // a will left by an earlier connection of the id here (one aedes took over without a clientDisconnect) is stale
      cluster.dropWill(client.id, epoch)
      return
    }
    held.set(client, { epoch, will })
    cluster.holdWill(client.id, epoch, toClusterWill(will), willDelayMs(client, will))
  })

  aedes.on('clientDisconnect', (client) => {
    const entry = held.get(client)
    if (entry === undefined) return
    held.delete(client)
    const id = client.id
    // aedes ran the will's fate just before: published at once, discarded, or timed
    const timer = delayedWillTimer(aedes, id)
    if (timer === undefined) {
      cluster.dropWill(id, entry.epoch)
      return
    }
    cluster.deferWill(id, entry.epoch, willDelayMs(client, entry.will)).then((moved) => {
      // not moved: aedes times it here, as on a single node
      if (!moved || !cancelDelayedWill(aedes, id, timer)) return
      forgetStored(id)
    }, (err: unknown) => {
      ctx.logger.warn({ clientId: id, err }, 'cluster: handing a delayed will to the cluster failed; this node times it')
    })
  })
}
