/**
 * Redis' persistence settings read at start (lib/cluster/durability.ts):
 * the log line says what a Redis crash or power loss can lose with them, and
 * `--fsync` accepts only appendonly yes with appendfsync always.
 */
import t from 'tap'
import { describeDurability, losesNothing, readDurability, requireFsync, type RedisDurability } from '../../lib/cluster/durability.js'
import { isCulexError } from '../../lib/errors.js'

const known = (appendonly: string, appendfsync: string, save = ''): RedisDurability => ({ known: true, appendonly, appendfsync, save })

t.test('the line for each setting says what a Redis crash or power loss can lose', async (t) => {
  t.match(describeDurability(known('yes', 'always')), /appendonly yes, appendfsync always: .*loses nothing acknowledged/)
  t.match(describeDurability(known('yes', 'everysec')), /appendfsync everysec: a Redis crash or power loss can lose up to about a second of acknowledged writes/)
  t.match(describeDurability(known('yes', 'no')), /appendfsync no: a crash of redis-server alone loses nothing acknowledged, a power loss whatever the OS had not yet written/)
  t.match(describeDurability(known('no', 'everysec')), /appendonly no, appendfsync everysec: no RDB snapshots either \(save ""\): a Redis crash or restart loses everything culex acknowledged/)
  t.match(describeDurability(known('no', 'everysec', '3600 1 300 100')), /loses everything acknowledged since the last RDB snapshot \(save "3600 1 300 100"\)/)
  t.match(describeDurability({ known: false, why: 'ERR unknown command \'CONFIG\'' }), /^Redis durability unknown: CONFIG GET was refused \(ERR unknown command 'CONFIG'\); culex cannot tell/)
})

t.test('--fsync accepts only appendonly yes with appendfsync always', async (t) => {
  t.ok(losesNothing(known('yes', 'always')))
  t.doesNotThrow(() => { requireFsync(known('yes', 'always'), 'redis://h:1') })
  for (const d of [known('yes', 'everysec'), known('yes', 'no'), known('no', 'always'), { known: false as const, why: 'NOPERM' }]) {
    t.notOk(losesNothing(d))
    let thrown: unknown
    try { requireFsync(d, 'redis://h:1') } catch (err) { thrown = err }
    t.ok(isCulexError(thrown, 'CULEX_ERR_CLUSTER_NOT_DURABLE') && thrown.message.includes('redis://h:1'), `refused: ${JSON.stringify(d)}`)
  }
})

t.test('readDurability reports a refused CONFIG instead of throwing', async (t) => {
  const refused = { config: async () => { throw new Error('NOPERM this user has no permissions to run the \'config|get\' command') } }
  t.same(await readDurability(refused as never), { known: false, why: 'NOPERM this user has no permissions to run the \'config|get\' command' })
  const answers: Record<string, string> = { appendonly: 'yes', appendfsync: 'always', save: '' }
  const ok = { config: async (_get: string, name: string) => [name, answers[name]] }
  t.same(await readDurability(ok as never), known('yes', 'always'))
})
