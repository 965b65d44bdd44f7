/**
 * A restart: the groups' memberships and logs read back from the store.
 * Members start offline; each logged message waits for a member again, an
 * abandoned one until its backoff deadline (retries.ts); a message of a
 * group left with no member is deleted.
 */
import type { Logger } from 'pino'
import { newMember } from './group.js'
import type { Groups } from './groups.js'
import type { Retries } from './retries.js'
import type { ShareStore } from './store.js'

export async function restoreGroups (store: ShareStore, groups: Groups, retries: Pick<Retries, 'offerLater'>, log: Logger): Promise<void> {
  for await (const m of store.members()) {
    const group = groups.ensure(m.group)
    group.members.set(m.clientId, newMember(m.clientId, m.qos, m.subscriptionIdentifier, m.retainAsPublished === true, true, undefined, 0))
  }
  let restored = 0
  for await (const { group: key, seq, message } of store.messages()) {
    const group = groups.get(key)
    if (!group || group.members.size === 0) {
      await store.delMessage(key, seq)
      continue
    }
    retries.offerLater(group, group.add(seq, message))
    if (seq >= group.nextSeq) group.nextSeq = seq + 1
    restored++
  }
  if (groups.size > 0) log.info({ groups: groups.size, queued: restored }, 'shared subscriptions restored')
}
