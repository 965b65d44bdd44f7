/**
 * A damaged LevelDB data directory: culex refuses it with one line saying
 * what is damaged and what to do (exit 2), and `culex repair` keeps what can
 * be kept, after which culex starts and serves it (retained messages, and
 * sessions with their queues). The directory is written by real culex
 * processes over MQTT, in two runs, so that it holds two tables.
 */
import t, { type Test } from 'tap'
import { cpSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type mqtt from 'mqtt-packet'
import { Level } from 'level'
import { runCulex, startCulex, within } from '../../helpers/cli.js'
import { RawClient } from '../../helpers/raw.js'
import { rawPublish, rawSubscribe, text } from '../../helpers/raw5.js'
import { tempDir } from '../../helpers/store.js'

const RETAINED_PER_RUN = 20
const SESSION = { sessionExpiryInterval: 3600 }

function culexArgs (dir: string): string[] {
  return ['--port', 'auto', '--ws-port', '0', '--sys-interval', '0', '--data-dir', dir]
}

async function withCulex (dir: string, fn: (port: number) => Promise<void>): Promise<void> {
  const culex = await startCulex(culexArgs(dir))
  try {
    await fn(culex.port)
  } finally {
    culex.child.kill('SIGTERM')
    await within(culex.exit, 10000, 'culex exited after SIGTERM').catch(() => culex.child.kill('SIGKILL'))
  }
}

async function disconnect (c: RawClient): Promise<void> {
  c.send({ cmd: 'disconnect', reasonCode: 0 } as mqtt.IDisconnectPacket)
  await c.waitClose(5000).finally(() => c.destroy())
}

/** A persistent session `keeper-{group}` on `{group}/#`, offline, then retained QoS 1 messages that it queues. */
async function populate (port: number, group: string): Promise<void> {
  const keeper = await RawClient.connect(port, 5, { clientId: `keeper-${group}`, clean: false, properties: SESSION })
  await rawSubscribe(keeper, [{ topic: `${group}/#`, qos: 1 }])
  await disconnect(keeper)
  const pub = await RawClient.connect(port, 5, { clientId: `pub-${group}` })
  try {
    for (let i = 0; i < RETAINED_PER_RUN; i++) {
      rawPublish(pub, `${group}/r/${i}`, `${group}-${i}-${'x'.repeat(200)}`, { qos: 1, retain: true })
      await pub.next('puback', 5000)
    }
  } finally {
    await disconnect(pub)
  }
}

const tables = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.ldb')).sort()
const tableSizes = (dir: string): Record<string, number> => Object.fromEntries(tables(dir).map((f) => [f, statSync(join(dir, f)).size]))
const manifest = (dir: string): string => readFileSync(join(dir, 'CURRENT'), 'utf8').trim()

/** Two culex runs, each leaving its messages in a table of its own. */
async function buildStore (dir: string): Promise<void> {
  await withCulex(dir, (port) => populate(port, 'a'))
  // LevelDB turns the write-ahead log into a table when the store is next opened
  await withCulex(dir, (port) => populate(port, 'b'))
  const db = new Level(dir)
  await db.open()
  await db.close()
}

interface Held { sessions: number, retained: number, queued: number }

function heldFrom (line: string): Held {
  const n = (what: string): number => Number(new RegExp(`(\\d+) ${what}`).exec(line)?.[1] ?? NaN)
  return { sessions: n('sessions?'), retained: n('retained messages?'), queued: n('queued messages?') }
}

/** What a culex on `dir` serves: `retained` retained messages, and the sessions' queues. */
async function served (t: Test, dir: string, keepers: string[], retained: number): Promise<{ retained: string[], queued: Record<string, string[]>, present: Record<string, boolean> }> {
  const out = { retained: [] as string[], queued: {} as Record<string, string[]>, present: {} as Record<string, boolean> }
  await withCulex(dir, async (port) => {
    for (const group of keepers) {
      const keeper = await RawClient.open(port, 5)
      try {
        keeper.send({ cmd: 'connect', protocolVersion: 5, protocolId: 'MQTT', clientId: `keeper-${group}`, clean: false, keepalive: 60, properties: SESSION } as mqtt.IConnectPacket)
        const connack = await keeper.next('connack', 5000) as mqtt.IConnackPacket
        out.present[group] = connack.sessionPresent
        const topics: string[] = []
        for (let i = 0; i < RETAINED_PER_RUN; i++) {
          const p = await keeper.next('publish', 5000) as mqtt.IPublishPacket
          topics.push(p.topic)
          keeper.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 } as mqtt.IPubackPacket)
        }
        out.queued[group] = topics
      } finally {
        await disconnect(keeper)
      }
    }
    const reader = await RawClient.connect(port, 5, { clientId: 'reader' })
    try {
      await rawSubscribe(reader, [{ topic: '#', qos: 0 }])
      for (let i = 0; i < retained; i++) {
        const p = await reader.next('publish', 5000) as mqtt.IPublishPacket
        t.ok(p.retain, `${p.topic} comes as a retained message`)
        t.match(text(p), new RegExp(`^${p.topic.split('/')[0] ?? ''}-${p.topic.split('/')[2] ?? ''}-`), `${p.topic}: its payload`)
        out.retained.push(p.topic)
      }
    } finally {
      await disconnect(reader)
    }
  })
  return out
}

const all = (group: string): string[] => Array.from({ length: RETAINED_PER_RUN }, (_, i) => `${group}/r/${i}`)

const pristine = tempDir(t, 'culex-damage-')
t.before(async () => { await buildStore(pristine) })

interface Damage {
  name: string
  damage: (dir: string) => void
  says: (dir: string) => RegExp
  /** the groups whose retained messages and session must all survive the repair */
  kept: string[]
  /** the damaged table held the store's format record, which the repair writes again */
  formatRestored?: boolean
}

const newestTable = (dir: string): string => join(dir, tables(dir).at(-1) ?? 'none.ldb')
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const damages: Damage[] = [
  {
    name: 'a truncated table file',
    damage: (dir) => { const f = newestTable(dir); truncateSync(f, Math.floor(statSync(f).size / 2)) },
    says: () => /table file \d+\.ldb cannot be read \(truncated, emptied or missing\) \(LevelDB: IO error: /,
    kept: ['a']
  },
  {
    name: 'a truncated table file holding the format record',
    damage: (dir) => { const f = join(dir, tables(dir)[0] ?? 'none.ldb'); truncateSync(f, Math.floor(statSync(f).size / 2)) },
    says: () => /table file \d+\.ldb cannot be read/,
    kept: ['b'],
    formatRestored: true
  },
  {
    name: 'an empty table file',
    damage: (dir) => { truncateSync(newestTable(dir), 0) },
    says: () => /table file \d+\.ldb cannot be read/,
    kept: ['a']
  },
  {
    name: 'a truncated MANIFEST',
    damage: (dir) => { const f = join(dir, manifest(dir)); truncateSync(f, Math.floor(statSync(f).size / 2)) },
    says: (dir) => new RegExp(`${manifest(dir)} is damaged \\(LevelDB: Corruption: `),
    kept: ['a', 'b']
  },
  {
    name: 'an empty MANIFEST',
    damage: (dir) => { truncateSync(join(dir, manifest(dir)), 0) },
    says: (dir) => new RegExp(`${manifest(dir)} is damaged \\(LevelDB: Corruption: `),
    kept: ['a', 'b']
  },
  {
    name: 'a deleted CURRENT',
    damage: (dir) => { unlinkSync(join(dir, 'CURRENT')) },
    says: () => /the CURRENT file is missing, so LevelDB cannot tell which MANIFEST describes the store/,
    kept: ['a', 'b']
  }
]

t.test('the pristine store has two tables and serves both runs', async (t) => {
  t.ok(tables(pristine).length >= 2, `tables: ${tables(pristine).join(', ')}`)
  const dir = tempDir(t, 'culex-damage-')
  cpSync(pristine, dir, { recursive: true })
  const got = await served(t, dir, ['a', 'b'], 2 * RETAINED_PER_RUN)
  t.same(got.retained.sort(), [...all('a'), ...all('b')].sort())
  t.same(got.present, { a: true, b: true })
  t.same(got.queued, { a: all('a'), b: all('b') })
})

for (const d of damages) {
  t.test(`${d.name}: culex exits 2 with one line saying what is damaged and what to do; culex repair keeps what can be kept`, async (t) => {
    const dir = tempDir(t, 'culex-damage-')
    cpSync(pristine, dir, { recursive: true })
    const says = d.says(dir)
    d.damage(dir)
    const before = tableSizes(dir)

    const refused = await runCulex(culexArgs(dir))
    t.equal(refused.code, 2, 'exit 2')
    const lines = refused.stderr.trim().split('\n')
    t.equal(lines.length, 1, `one line: ${refused.stderr}`)
    t.match(lines[0], new RegExp(`^culex: data directory ${escape(dir)} is damaged: `))
    t.match(lines[0], says, 'says what is damaged')
    t.match(lines[0], `; run \`culex repair --data-dir ${dir}\` to keep what can be kept, or restore a backup`, 'says what to do')
    t.same(tableSizes(dir), before, 'no table file of the refused directory was removed or changed')

    const repair = await runCulex(['repair', '--data-dir', dir])
    t.equal(repair.code, 0, `repair exits 0: ${repair.stderr}`)
    t.match(repair.stdout, new RegExp(`^culex repair: repaired data directory ${escape(dir)}: culex's store opens and holds `))
    t.match(repair.stdout, `${dir}/lost`, 'says where the replaced files are')
    const held = heldFrom(repair.stdout)
    if (d.formatRestored === true) t.match(repair.stdout, 'the format record was written again', 'the store is recognised as culex\'s again')
    else t.notMatch(repair.stdout, 'format record')

    const got = await served(t, dir, d.kept, held.retained)
    t.equal(new Set(got.retained).size, held.retained, 'culex serves every retained message the repair reported')
    for (const group of d.kept) {
      t.same(got.retained.filter((topic) => topic.startsWith(`${group}/`)).sort(), all(group).sort(), `every retained message of run ${group}`)
      t.equal(got.present[group], true, `keeper-${group}: Session Present 1`)
      t.same(got.queued[group], all(group), `keeper-${group}: its queue, in order`)
    }
    if (d.kept.length === 2) t.same(held, { sessions: 2, retained: 2 * RETAINED_PER_RUN, queued: 2 * RETAINED_PER_RUN }, 'nothing lost')
  })
}

t.test('repair refuses a directory with no store, and one a running culex holds', async (t) => {
  const empty = tempDir(t, 'culex-damage-')
  const none = await runCulex(['repair', '--data-dir', empty])
  t.equal(none.code, 2)
  t.equal(none.stderr, `culex repair: data directory ${empty} holds no LevelDB store to repair\n`)
  const dir = tempDir(t, 'culex-damage-')
  cpSync(pristine, dir, { recursive: true })
  const culex = await startCulex(culexArgs(dir))
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const busy = await runCulex(['repair', '--data-dir', dir])
  t.equal(busy.code, 2)
  t.equal(busy.stderr, `culex repair: data directory ${dir} is in use by another culex process\n`)
  culex.child.kill('SIGTERM')
  t.equal((await within(culex.exit, 10000, 'culex exited')).code, 0)
})
