/** The API's steps against a fake AdminSource: session, origin and token, role, input, handler. */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { createApi, paged, type ApiRequest } from '../../lib/admin/api.js'
import { RateHistory } from '../../lib/admin/history.js'
import { SessionStore } from '../../lib/admin/sessions.js'
import type { AdminSource, ClientSummary } from '../../lib/admin/source.js'

const client = (clientId: string, username: string | null = null): ClientSummary => ({
  clientId, username, state: 'connected', transport: 'tcp', protocol: '5', remoteAddress: '127.0.0.1', cleanStart: true, subscriptions: 0, inflight: 0, queued: 0, sessionExpiresAt: null, sessionExpiryInterval: null
})

function setup (): { handle: (r: Partial<ApiRequest>) => ReturnType<ReturnType<typeof createApi>>, sessions: SessionStore, calls: string[], history: RateHistory } {
  const calls: string[] = []
  const source: AdminSource = {
    totals: () => ({ messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, connects: 0, connections: 0 }),
    overview: async () => { throw new Error('not used') },
    clients: () => [client('b', 'bob'), client('a', 'ann'), client('c')],
    client: async (id) => id === 'a' ? { ...client('a'), subscriptionList: [], will: null, willDelayUntil: null, outboundWindow: 10 } : undefined,
    disconnect: (id) => { calls.push(`disconnect ${id}`); return id === 'a' },
    retainedLevel: async (parent) => { calls.push(`level ${parent}`); return { nodes: [], truncated: false } },
    deleteRetained: async (topic) => { calls.push(`delete ${topic}`); return topic === 'x/y' },
    sharedGroups: () => [],
    replayDeadLetters: async (from, limit) => { calls.push(`replay ${from} ${String(limit)}`); return from === '$share/dlq/$dlq/#' ? { replayed: 2, skipped: 1 } : undefined }
  }
  const sessions = new SessionStore()
  const history = new RateHistory({ totals: source.totals, groups: source.sharedGroups })
  const api = createApi({
    source,
    history,
    sessions,
    authenticate: async (u, p) => p === 'pw' ? (u === 'root' ? 'admin' : 'viewer') : undefined,
    secure: false,
    maxTopicLength: 10,
    cookie: (id) => `c=${id}`,
    clearCookie: () => 'c='
  })
  const handle = (r: Partial<ApiRequest>): ReturnType<typeof api> => api({
    req: { headers: { host: 'h:1' }, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage,
    method: 'GET',
    segments: [],
    query: new URLSearchParams(),
    session: undefined,
    body: async () => ({}),
    ...r
  })
  return { handle, sessions, calls, history }
}

const withToken = (token: string): IncomingMessage => ({ headers: { host: 'h:1', 'x-csrf-token': token }, socket: {} }) as unknown as IncomingMessage

t.test('login', async (t) => {
  const { handle, sessions } = setup()
  const bad = await handle({ method: 'POST', segments: ['login'], body: async () => ({ username: 'u', password: 'no' }) })
  t.same(bad, { status: 401, body: { code: 'BAD_USERNAME_OR_PWD', message: 'bad user name or password' } })
  t.equal((await handle({ method: 'POST', segments: ['login'], body: async () => [] })).status, 400)
  t.equal((await handle({ method: 'GET', segments: ['login'] })).status, 404)
  const ok = await handle({ method: 'POST', segments: ['login'], body: async () => ({ username: 'root', password: 'pw' }) })
  t.equal(ok.status, 200)
  t.match(ok.body, { username: 'root', role: 'admin' })
  t.equal(sessions.size, 1)
  t.match(ok.headers?.['set-cookie'], /^c=/)
})

t.test('no session 401; token and role for changes; paging and filters', async (t) => {
  const { handle, sessions, calls } = setup()
  t.equal((await handle({ segments: ['clients'] })).status, 401)
  const viewer = sessions.create('v', 'viewer')
  const admin = sessions.create('root', 'admin')
  const list = await handle({ segments: ['clients'], session: viewer, query: new URLSearchParams('limit=2') })
  t.same(list.body, paged([client('a', 'ann'), client('b', 'bob'), client('c')], { page: 1, limit: 2 }), 'sorted by id, paged')
  t.same((list.body as { meta: unknown }).meta, { page: 1, limit: 2, count: 3, hasnext: true })
  const byUser = await handle({ segments: ['clients'], session: viewer, query: new URLSearchParams('username=BO') })
  t.same((byUser.body as { data: ClientSummary[] }).data.map(c => c.clientId), ['b'])
  t.equal((await handle({ segments: ['clients', 'a'], session: viewer })).status, 200)
  t.equal((await handle({ segments: ['clients', 'z'], session: viewer })).status, 404)
  t.equal((await handle({ segments: ['clients', 'a', 'more'], session: viewer })).status, 404)
  t.equal((await handle({ method: 'DELETE', segments: ['clients', 'a'], session: admin })).status, 403, 'no token')
  t.equal((await handle({ method: 'DELETE', segments: ['clients', 'a'], session: viewer, req: withToken(viewer.csrfToken) })).status, 403, 'viewer')
  t.same(calls, [], 'nothing done')
  t.equal((await handle({ method: 'DELETE', segments: ['clients', 'a'], session: admin, req: withToken(admin.csrfToken) })).status, 204)
  t.equal((await handle({ method: 'DELETE', segments: ['clients', 'z'], session: admin, req: withToken(admin.csrfToken) })).status, 404)
  t.equal((await handle({ method: 'DELETE', segments: ['retained'], session: admin, req: withToken(admin.csrfToken), query: new URLSearchParams('topic=x/y') })).status, 204)
  t.equal((await handle({ method: 'DELETE', segments: ['retained'], session: admin, req: withToken(admin.csrfToken), query: new URLSearchParams('topic=x/z') })).status, 404)
  t.equal((await handle({ method: 'DELETE', segments: ['retained'], session: admin, req: withToken(admin.csrfToken), query: new URLSearchParams('topic=12345678901') })).status, 400, 'longer than maxTopicLength')
  t.equal((await handle({ segments: ['retained'], session: viewer, query: new URLSearchParams('parent=a/%2B') })).status, 400)
  t.equal((await handle({ segments: ['retained'], session: viewer, query: new URLSearchParams('parent=a/b') })).status, 200)
  t.same(calls, ['disconnect a', 'disconnect z', 'delete x/y', 'delete x/z', 'level a/b'])
  t.equal((await handle({ method: 'PUT', segments: ['overview'], session: admin, req: withToken(admin.csrfToken) })).status, 404)
})

t.test('only a logged-in request counts as the dashboard being used (group depths sampled)', async (t) => {
  const { handle, sessions, history } = setup()
  t.equal((await handle({ segments: ['overview'] })).status, 401)
  t.equal((await handle({ method: 'POST', segments: ['login'], body: async () => ({ username: 'u', password: 'no' }) })).status, 401)
  history.sample()
  t.equal(history.groupDepths().length, 0, 'requests without a session do not turn group sampling on')
  t.equal((await handle({ segments: ['clients'], session: sessions.create('v', 'viewer') })).status, 200)
  history.sample()
  t.equal(history.groupDepths().length, 1, 'a logged-in request does')
})

t.test('dead-letter replay: POST shared-groups/replay?from=...&limit=..., admin only', async (t) => {
  const { handle, sessions, calls } = setup()
  const viewer = sessions.create('v', 'viewer')
  const admin = sessions.create('root', 'admin')
  const q = (s: string): URLSearchParams => new URLSearchParams(s)
  t.equal((await handle({ method: 'POST', segments: ['shared-groups', 'replay'], session: viewer, req: withToken(viewer.csrfToken), query: q('from=$share/dlq/$dlq/%23') })).status, 403, 'viewer')
  t.equal((await handle({ method: 'POST', segments: ['shared-groups', 'replay'], session: admin, req: withToken(admin.csrfToken) })).status, 400, 'from is required')
  t.equal((await handle({ method: 'POST', segments: ['shared-groups', 'replay'], session: admin, req: withToken(admin.csrfToken), query: q('from=x&limit=-1') })).status, 400, 'a bad limit')
  const ok = await handle({ method: 'POST', segments: ['shared-groups', 'replay'], session: admin, req: withToken(admin.csrfToken), query: q('from=$share/dlq/$dlq/%23&limit=5') })
  t.same(ok, { status: 200, body: { replayed: 2, skipped: 1 } })
  t.equal((await handle({ method: 'POST', segments: ['shared-groups', 'replay'], session: admin, req: withToken(admin.csrfToken), query: q('from=nope') })).status, 404)
  t.same(calls, ['replay $share/dlq/$dlq/# 5', 'replay nope undefined'])
})
