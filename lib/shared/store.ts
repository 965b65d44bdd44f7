/**
 * Where shared subscriptions keep what must survive a restart: group
 * memberships of persistent sessions, and the group log of QoS 1/2 messages
 * not yet acknowledged by a member. The interface is the store's group-log
 * part (lib/persistence/parts/group-log.ts); culex's stores provide it
 * (`sharedStore()`), `MemoryShareStore` serves when the store does not.
 */
export type { GroupLog as ShareStore, StoredMember, StoredMessage } from '../persistence/parts/group-log.js'
export { MemoryGroupLog as MemoryShareStore } from '../persistence/parts/group-log.js'
