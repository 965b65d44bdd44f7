// The admin API: the session lives in an HttpOnly cookie; the CSRF token only in memory.

let csrfToken = ''

export class ApiError extends Error {
  constructor (status, body) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code
  }
}

async function call (method, path, body) {
  const headers = { accept: 'application/json' }
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch('/api/v1/' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' })
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json') ? await res.json() : undefined
  if (!res.ok) throw new ApiError(res.status, json)
  return json
}

export const api = {
  get: (path) => call('GET', path),
  del: (path) => call('DELETE', path),
  async session () {
    const s = await call('GET', 'session')
    csrfToken = s.csrfToken
    return s
  },
  async login (username, password) {
    const s = await call('POST', 'login', { username, password })
    csrfToken = s.csrfToken
    return s
  },
  async logout () {
    await call('POST', 'logout')
    csrfToken = ''
  }
}

export const q = (params) => {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v))
  const s = p.toString()
  return s === '' ? '' : '?' + s
}
