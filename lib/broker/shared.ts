/**
 * Shared subscriptions (spec 4.8.2, lib/shared) on a broker: their group
 * store (culex's store when it offers one), their options' defaults, and the
 * end of a member's memberships with its session.
 */
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { SharedSubscriptions, type SharedOptions } from '../shared/dispatcher.js'
import { MemoryShareStore, type ShareStore } from '../shared/store.js'
import { sharedStoreOf, type StoreExtras } from './store.js'

export type SharedSettings = Partial<SharedOptions> & { store?: ShareStore }

export async function setupShared (aedes: Aedes, o: SharedSettings, store: StoreExtras | undefined, logger: Logger): Promise<SharedSubscriptions> {
  const shared = new SharedSubscriptions(aedes, o.store ?? sharedStoreOf(store) ?? new MemoryShareStore(), {
    strategy: o.strategy ?? 'round-robin',
    rules: o.rules ?? [],
    redelivery: o.redelivery ?? 'immediate',
    deadLetterTopic: o.deadLetterTopic,
    maxQueued: o.maxQueued ?? 10000,
    overflow: o.overflow ?? 'drop-oldest',
    ...(o.selector ? { selector: o.selector } : {}),
    ...(o.queue ? { queue: o.queue } : {}),
    ...(o.sessionQoS2 ? { sessionQoS2: o.sessionQoS2 } : {})
  }, logger.child({ module: 'shared' }))
  await shared.setup()
  aedes.on('sessionExpired', (client) => { endMemberships(shared, client.id, logger) })
  return shared
}

/** A session ended (expired, live or in the store): its client is no member of any group any more. */
export function endMemberships (shared: Pick<SharedSubscriptions, 'sessionEnded'> | undefined, clientId: string, logger: Logger): void {
  shared?.sessionEnded(clientId).catch((err: unknown) => logger.error({ err }, 'ending shared memberships failed'))
}
