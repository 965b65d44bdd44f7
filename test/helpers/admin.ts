/** A culex with the dashboard on, a password file (alice: admin, victor: viewer) and an HTTP client for its API. */
import type { Test } from 'tap'
import { join } from 'node:path'
import { setUser, writePasswordFile, type PasswordDb } from '../../lib/auth/password-file.js'
import type { CulexServer } from '../../lib/server.js'
import type { ConfigInput } from '../../lib/config/schema.js'
import { startTestServer } from './server.js'
import { tempDir } from './security.js'

const FAST = { scrypt: { N: 1024 }, scramIterations: 4096 }

export interface AdminTest {
  server: CulexServer
  /** http://127.0.0.1:port */
  base: string
  login: (username: string, password: string) => Promise<Login>
  call: (method: string, path: string, opts?: CallOptions) => Promise<{ status: number, body: any, headers: Headers }>
}

export interface Login { cookie: string, csrf: string, role: string }

export interface CallOptions {
  login?: Login | undefined
  /** send the session's CSRF token (default true with a login) */
  csrf?: boolean
  body?: unknown
  headers?: Record<string, string>
}

export async function startAdminTest (t: Test, overrides: ConfigInput = {}): Promise<AdminTest> {
  const dir = tempDir(t, 'culex-admin-')
  const db: PasswordDb = new Map()
  await setUser(db, 'alice', 'alice-pw', FAST)
  await setUser(db, 'victor', 'victor-pw', FAST)
  const passwordFile = join(dir, 'passwd')
  await writePasswordFile(passwordFile, db)
  const server = await startTestServer(t, { dashboard: true, adminPort: 'auto', passwordFile, dashboardAdmins: ['alice'], allowAnonymous: true, ...overrides })
  if (!server.admin) throw new Error('no admin listener')
  const base = `http://127.0.0.1:${server.admin.address().port}`
  const call: AdminTest['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers }
    if (opts.login) {
      headers.cookie = opts.login.cookie
      if (opts.csrf !== false) headers['x-csrf-token'] ??= opts.login.csrf
    }
    if (opts.body !== undefined) headers['content-type'] ??= 'application/json'
    const res = await fetch(base + path, { method, headers, body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body), redirect: 'manual' })
    const text = await res.text()
    let body: unknown = text
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) body = JSON.parse(text)
    return { status: res.status, body, headers: res.headers }
  }
  const login: AdminTest['login'] = async (username, password) => {
    const res = await call('POST', '/api/v1/login', { body: { username, password } })
    if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${JSON.stringify(res.body)}`)
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] as string
    return { cookie, csrf: res.body.csrfToken, role: res.body.role }
  }
  return { server, base, login, call }
}
