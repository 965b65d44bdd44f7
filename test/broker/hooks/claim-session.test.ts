/**
 * claimSession (lib/broker/hooks/claim-session.ts) against stubs of the
 * store, aedes' clients and their gateways.
 */
import t from 'tap'
import type { Client } from 'aedes'
import { claimSession, type ClaimContext, type ClaimingGateway } from '../../../lib/broker/hooks/claim-session.js'
import type { SessionMeta } from '../../../lib/persistence/types.js'
import { silentLogger } from '../../../lib/logging.js'

interface Options {
  stored?: SessionMeta
  storeFails?: boolean
  live?: { identity: string | undefined, clean: boolean }
  ownership?: 'username' | 'any'
}

function setup (o: Options) {
  const calls: string[] = []
  const store = {
    putSession: async () => {},
    getSession: async () => { if (o.storeFails === true) throw new Error('store down'); return o.stored },
    cleanIncoming: async ({ id }: { id: string }) => { calls.push(`cleanIncoming ${id}`) }
  }
  const other = o.live === undefined ? undefined : { id: 'c1', conn: 'other', clean: o.live.clean } as unknown as Client
  const ctx: ClaimContext = {
    sessionOwnership: o.ownership ?? 'username',
    store: () => store,
    clientById: (id) => id === 'c1' ? other : undefined,
    gatewayOf: (client) => client.conn === 'other' ? { authenticatedAs: o.live?.identity } : undefined
  }
  return { ctx, calls }
}

function claimer (identity: string | undefined, resumes: boolean): ClaimingGateway {
  return { authenticatedAs: identity, resumesSession: resumes, sessionExisted: false, log: silentLogger() } as unknown as ClaimingGateway
}

function connecting (over: Record<string, unknown> = {}): Client {
  return { id: 'c1', conn: 'mine', clean: true, version: 5, sessionExpiryInterval: 0, connecting: true, ...over } as unknown as Client
}

function claim (ctx: ClaimContext, conn: ClaimingGateway, client: Client): Promise<[unknown, unknown]> {
  return new Promise((resolve) => claimSession(ctx, conn, client, (err, ok) => resolve([err, ok])))
}

t.test('a session stored for another user is refused with 0x87 (3.1.1: 5), and nothing is discarded', async (t) => {
  const { ctx, calls } = setup({ stored: { expiresAt: null, owner: 'alice' } })
  const [err, ok] = await claim(ctx, claimer('mallory', false), connecting())
  t.match(err, { returnCode: 5 })
  t.equal(ok, false)
  t.same(calls, [], 'the owner\'s inbound QoS 2 state is kept')
})

t.test('a session held by a connected client of another user is refused', async (t) => {
  const { ctx } = setup({ live: { identity: 'alice', clean: false } })
  t.match(await claim(ctx, claimer('mallory', true), connecting()), [{ returnCode: 5 }, false])
})

t.test('with sessionOwnership \'any\', anyone takes the session', async (t) => {
  const { ctx } = setup({ ownership: 'any', stored: { expiresAt: null, owner: 'alice' } })
  t.same(await claim(ctx, claimer('mallory', true), connecting()), [null, true])
})

t.test('[MQTT-3.2.2-3] a stored session exists (Session Present), with or without subscriptions', async (t) => {
  const { ctx } = setup({ stored: { expiresAt: null, owner: 'alice' } })
  const conn = claimer('alice', true)
  t.same(await claim(ctx, conn, connecting({ clean: false, sessionExpiryInterval: 60 })), [null, true])
  t.equal(conn.sessionExisted, true)
})

t.test('[MQTT-3.2.2-3] a connected client\'s persistent session exists; a clean one does not', async (t) => {
  const persistent = claimer('alice', true)
  await claim(setup({ live: { identity: 'alice', clean: false } }).ctx, persistent, connecting({ clean: false }))
  t.equal(persistent.sessionExisted, true)
  const clean = claimer('alice', true)
  await claim(setup({ live: { identity: 'alice', clean: true } }).ctx, clean, connecting({ clean: false }))
  t.equal(clean.sessionExisted, false)
})

t.test('[MQTT-3.1.2-4] a session resumed with Session Expiry 0 keeps its state while connected', async (t) => {
  const { ctx, calls } = setup({ stored: { expiresAt: null, owner: 'alice' } })
  const client = connecting()
  t.same(await claim(ctx, claimer('alice', true), client), [null, true])
  t.equal((client as unknown as { clean: boolean }).clean, false, 'aedes sends its queue instead of dropping it')
  t.same(calls, [], 'nothing discarded')
})

t.test('[MQTT-3.1.2-4] Clean Start discards the previous session\'s inbound QoS 2 state, once accepted', async (t) => {
  const { ctx, calls } = setup({ stored: { expiresAt: null, owner: 'alice' } })
  const client = connecting()
  t.same(await claim(ctx, claimer('alice', false), client), [null, true])
  t.same(calls, ['cleanIncoming c1'])
  t.equal((client as unknown as { clean: boolean }).clean, true, 'a new session stays clean')
})

t.test('a store that fails the lookup refuses the client with 3 (server unavailable)', async (t) => {
  const { ctx } = setup({ storeFails: true })
  t.match(await claim(ctx, claimer('alice', true), connecting()), [{ message: 'store down', returnCode: 3 }, false])
})

/** a cluster whose claims answer epoch 7, and a store whose sessions are the cluster's (the Redis store's interface) */
function clusterSetup (o: { stored?: SessionMeta, hydrateFails?: boolean }) {
  const calls: string[] = []
  const store = {
    putSession: async () => {},
    getSession: async () => { throw new Error('a cluster node reads the record from Redis') },
    sessionRecord: async (id: string) => { calls.push(`sessionRecord ${id}`); return o.stored },
    hydrate: async (id: string, epoch: number, opts: { clean: boolean }) => {
      calls.push(`hydrate ${id} ${epoch} clean=${String(opts.clean)}`)
      if (o.hydrateFails === true) throw new Error('redis down')
    },
    handOver: () => {},
    cleanIncoming: async ({ id }: { id: string }) => { calls.push(`cleanIncoming ${id}`) }
  }
  const cluster = {
    available: () => true,
    problem: () => undefined,
    claim: async (id: string) => { calls.push(`claim ${id}`); return 7 }
  } as unknown as NonNullable<ClaimContext['cluster']>
  const ctx: ClaimContext = {
    sessionOwnership: 'username',
    store: () => store,
    cluster,
    clientById: () => undefined,
    gatewayOf: () => undefined
  }
  return { ctx, calls }
}

t.test('in a cluster the record comes from Redis; the session is loaded at the claim\'s epoch, then Clean Start cleans it', async (t) => {
  const refused = clusterSetup({ stored: { expiresAt: null, owner: 'alice' } })
  t.match(await claim(refused.ctx, claimer('mallory', true), connecting()), [{ returnCode: 5 }, false], 'the owner stored in Redis is enforced')
  t.same(refused.calls, ['sessionRecord c1'], 'a refused client claims and loads nothing')

  const resumed = clusterSetup({ stored: { expiresAt: null, owner: 'alice' } })
  const conn = claimer('alice', true)
  // each claim of an id waits for the previous claimant's registration in aedes: one id per claim here
  t.same(await claim(resumed.ctx, conn, connecting({ id: 'c2', clean: false })), [null, true])
  t.equal(conn.sessionExisted, true, '[MQTT-3.2.2-3] Session Present from the record in Redis')
  t.same(resumed.calls, ['sessionRecord c2', 'claim c2', 'hydrate c2 7 clean=false'])

  const clean = clusterSetup({ stored: { expiresAt: null, owner: 'alice' } })
  t.same(await claim(clean.ctx, claimer('alice', false), connecting({ id: 'c3' })), [null, true])
  t.same(clean.calls, ['sessionRecord c3', 'claim c3', 'hydrate c3 7 clean=true', 'cleanIncoming c3'], '[MQTT-3.1.2-4] Clean Start wipes the session at the claim, then its inbound QoS 2 state')
})

t.test('in a cluster a session that cannot be loaded refuses the client with 3 (server unavailable)', async (t) => {
  const { ctx, calls } = clusterSetup({ hydrateFails: true })
  t.match(await claim(ctx, claimer(undefined, true), connecting({ id: 'c4' })), [{ returnCode: 3 }, false])
  t.same(calls, ['sessionRecord c4', 'claim c4', 'hydrate c4 7 clean=false'])
})
