/**
 * The dashboard and admin API (issue 18), as server.ts starts it: the
 * broker adapter, the dashboard's logins against the password file, and the
 * admin listener. Off unless `dashboard` is set.
 */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { CulexBroker } from '../broker.js'
import type { SecurityPolicy } from '../auth/policy.js'
import type { TlsFiles } from '../transports/tcp.js'
import type { Observability } from '../metrics/index.js'
import { createBrokerSource } from './broker-source.js'
import { startAdminServer, type AdminServer } from './server.js'
import type { Authenticate } from './api.js'
import type { Role } from './sessions.js'

export type { AdminServer } from './server.js'
export type { AdminSource } from './source.js'

/**
 * Dashboard logins: users of the password file, checked by the same policy
 * as MQTT logins (so failures from one address are slowed down across both);
 * `admins` get the admin role, everyone else is a viewer. Without a password
 * file nobody can log in.
 */
export function dashboardAuthenticator (security: SecurityPolicy, admins: readonly string[]): Authenticate {
  const adminSet = new Set(admins)
  return async (username, password, remoteAddress) => {
    if (!security.hasPasswords) return undefined
    const result = await security.login({ username, password: Buffer.from(password, 'utf8'), remoteAddress, certificateCN: undefined })
    if (!result.ok) return undefined
    const role: Role = adminSet.has(username) ? 'admin' : 'viewer'
    return role
  }
}

export interface DashboardTargets {
  broker: CulexBroker
  observability: Observability
  security: SecurityPolicy
  tls: TlsFiles | undefined
  logger: Logger
}

export async function startDashboard (config: Config, t: DashboardTargets): Promise<AdminServer> {
  const log = t.logger.child({ module: 'admin' })
  const server = await startAdminServer({
    host: config.adminHost,
    port: config.adminPort,
    tls: t.tls,
    source: createBrokerSource({ broker: t.broker, counters: t.observability.counters, readiness: () => t.observability.readiness() }),
    authenticate: dashboardAuthenticator(t.security, config.dashboardAdmins),
    readiness: () => t.observability.readiness(),
    scrape: () => t.observability.scrape(),
    maxTopicLength: config.maxTopicLength,
    logger: log
  })
  if (!t.security.hasPasswords) log.warn('the dashboard is on but no passwordFile is set: nobody can log in')
  return server
}
