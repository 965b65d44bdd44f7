/**
 * Taking a session by its Client Identifier, after the client authenticated
 * and before aedes touches any session (the verdict itself is
 * lib/protocol/session-claim.ts):
 * 1. a session of another identity is refused: CONNACK 0x87 (3.1.1: 5),
 *    the owner's session and connection untouched;
 * 2. whether a session exists, for Session Present [MQTT-3.2.2-2] [MQTT-3.2.2-3];
 * 3. [MQTT-3.1.2-4] one resumed with Session Expiry 0 keeps its state (its
 *    queue is sent) until it ends at disconnect (keepResumedSession);
 * 4. [MQTT-3.1.2-4] Clean Start discards the previous session, including its
 *    inbound QoS 2 state (aedes 2.0.0-beta.1 keeps it: GHSA-p8r9-qf8w-p73r);
 *    only now, so that a refused client discards nothing;
 * 5. in a cluster, the id is claimed cluster-wide (claimInCluster), and
 *    the session, whichever node had it, is loaded from Redis at the claim's
 *    epoch (the Redis store's hydrate; Clean Start wipes it there), and its
 *    shared memberships with it (cluster-shared.ts); steps 1 and 2 read its
 *    record from Redis.
 */
import type { AedesOptions, Client } from 'aedes'
import { keepResumedSession } from '../../aedes-internals.js'
import type { Connection } from '../../protocol/connection.js'
import { judgeSessionClaim } from '../../protocol/session-claim.js'
import type { BrokerContext } from '../context.js'
import { clusterSessionsOf, isCulexStore } from '../store.js'
import { claimed } from '../cluster.js'

/** aedes' authenticate callback */
export type AuthenticateDone = Parameters<NonNullable<AedesOptions['authenticate']>>[3]

/** The gateway of the client that claims the session. */
export type ClaimingGateway = Pick<Connection, 'authenticatedAs' | 'resumesSession' | 'sessionExisted' | 'log'>

export interface ClaimContext extends Pick<BrokerContext, 'sessionOwnership' | 'store' | 'clientById' | 'clusterShared'> {
  readonly cluster?: BrokerContext['cluster']
  /** the gateway of the client holding the id now, for its identity */
  gatewayOf (client: { conn: unknown }): Pick<Connection, 'authenticatedAs'> | undefined
}

/**
 * 5. in a cluster, the id is claimed cluster-wide last, so that a refused
 *    client takes nothing: its previous owner on another node is told to
 *    close its connection (DISCONNECT 0x8E). A claim Redis does not answer
 *    refuses the CONNECT: 0x88 Server unavailable (3.1.1: 3).
 */
async function claimInCluster (cluster: NonNullable<BrokerContext['cluster']>, conn: ClaimingGateway, client: Client, store: unknown, shared: BrokerContext['clusterShared']): Promise<boolean> {
  try {
    const epoch = await cluster.claim(client.id)
    await clusterSessionsOf(store)?.hydrate(client.id, epoch, { clean: !conn.resumesSession })
    await shared?.adopt(client.id, !conn.resumesSession)
    await claimed(client, epoch)
    return true
  } catch (err) {
    conn.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'connection refused: claiming the client id in the cluster failed')
    return false
  }
}

export function claimSession (ctx: ClaimContext, conn: ClaimingGateway, client: Client, callback: AuthenticateDone): void {
  if (ctx.cluster !== undefined && !ctx.cluster.available()) {
    // a node that cannot reach Redis cannot know who owns the id: CONNACK 0x88 Server unavailable (3.1.1: 3)
    conn.log.warn({ problem: ctx.cluster.problem() }, 'connection refused: the cluster\'s Redis cannot be reached')
    callback(Object.assign(new Error('server unavailable: the cluster cannot be reached'), { returnCode: 3 }) as never, false)
    return
  }
  const store = ctx.store()
  const id = client.id
  const sessions = ctx.cluster !== undefined ? clusterSessionsOf(store) : undefined
  const stored = sessions !== undefined ? sessions.sessionRecord(id) : isCulexStore(store) ? store.getSession(id) : Promise.resolve(undefined)
  stored.then(async (meta) => {
    const other = ctx.clientById(id)
    const otherConn = other === undefined ? undefined : ctx.gatewayOf(other)
    const verdict = judgeSessionClaim(ctx.sessionOwnership, { identity: conn.authenticatedAs ?? null, cleanStart: !conn.resumesSession }, {
      ...(meta !== undefined ? { stored: { owner: meta.owner } } : {}),
      ...(other !== undefined && otherConn !== undefined ? { live: { identity: otherConn.authenticatedAs ?? null, persistent: !other.clean } } : {})
    })
    if (verdict.kind === 'refuse') {
      conn.log.warn({ username: conn.authenticatedAs ?? null, owner: verdict.owner }, 'connection refused: the session of this client id belongs to another user')
      callback(Object.assign(new Error('session belongs to another user'), { returnCode: 5 }) as never, false)
      return
    }
    conn.sessionExisted = verdict.existed
    if (verdict.existed && conn.resumesSession && client.clean && client.version === 5) keepResumedSession(client)
    // in a cluster the session is loaded at the claim, so it is cleaned after it
    if (ctx.cluster !== undefined && !await claimInCluster(ctx.cluster, conn, client, store, ctx.clusterShared)) {
      callback(Object.assign(new Error('server unavailable: the cluster cannot be reached'), { returnCode: 3 }) as never, false)
      return
    }
    if (!conn.resumesSession && id && typeof store?.cleanIncoming === 'function') await store.cleanIncoming({ id })
    callback(null, true)
  }).catch((err: unknown) => {
    conn.log.error({ err }, 'looking up the session failed')
    callback(Object.assign(new Error((err as Error).message), { returnCode: 3 }) as never, false)
  })
}
