/**
 * `culex repair [--data-dir DIR] [--config FILE]`: repairs a damaged LevelDB
 * data directory (lib/persistence/repair.ts) and says what the store holds
 * afterwards. The directory comes from --data-dir, else CULEX_DATA_DIR or
 * the config file, else ./data, as for the broker.
 *
 * Exit codes: 0 repaired and the store opens, 1 the repair failed, 2 usage
 * (bad arguments, no store there, or a culex running on it).
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import { isCulexError } from '../errors.js'
import { repairStore, type RepairReport } from './repair.js'

export const REPAIR_USAGE = `Usage: culex repair [--data-dir DIR] [--config FILE]

Repair a LevelDB data directory that culex refuses to open as damaged (a
truncated or empty table or MANIFEST, a missing CURRENT): LevelDB's repair
keeps every record it can still read, culex then opens the store and reports
the sessions, subscriptions, retained and queued messages it holds. Files
LevelDB replaced or could not read are kept in DIR/lost. Stop culex first;
keep a copy of the directory if you may want to try harder later.

  -d, --data-dir DIR  the data directory (default: CULEX_DATA_DIR, the
                      config file's dataDir, or ./data)
  -c, --config FILE   JSON configuration file (env CULEX_CONFIG)
  -h, --help          show this help
`

export interface RepairIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: Record<string, string | undefined>
}

function plural (n: number, one: string, many = one + 's'): string {
  return `${n} ${n === 1 ? one : many}`
}

export function reportLine (r: RepairReport): string {
  const h = r.holds
  let line = `repaired data directory ${r.dataDir}: culex's store opens and holds ${plural(h.sessions, 'session')}, ` +
    `${plural(h.subscriptions, 'subscription')}, ${plural(h.retained, 'retained message')}, ${plural(h.queued, 'queued message')} and ${plural(h.wills, 'will')}`
  if (r.undecodable > 0) line += `; ${plural(r.undecodable, 'value')} could not be decoded and will be skipped`
  if (r.formatRestored) line += '; the format record was written again'
  if (r.lost.length > 0) line += `; the files LevelDB replaced or could not read are in ${r.dataDir}/lost (${r.lost.join(', ')})`
  return line
}

export async function runRepairCommand (argv: string[], io: RepairIo): Promise<number> {
  let values: { 'data-dir'?: string, config?: string, help?: boolean }
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { 'data-dir': { type: 'string', short: 'd' }, config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false
    }))
  } catch (err) {
    io.stderr.write(`culex repair: ${(err as Error).message.split('\n')[0] ?? ''}\n${REPAIR_USAGE}`)
    return 2
  }
  if (values.help === true) {
    io.stdout.write(REPAIR_USAGE)
    return 0
  }
  let dataDir: string
  try {
    const flags = values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }
    dataDir = (await loadConfig({ flags, env: io.env, file: values.config })).dataDir
  } catch (err) {
    if (!isCulexError(err)) throw err
    io.stderr.write(`culex repair: ${err.message}\n`)
    return 2
  }
  try {
    io.stdout.write(`culex repair: ${reportLine(await repairStore(dataDir))}\n`)
    return 0
  } catch (err) {
    if (!isCulexError(err)) throw err
    io.stderr.write(`culex repair: ${err.message}\n`)
    return err.code === 'CULEX_ERR_REPAIR_FAILED' ? 1 : 2
  }
}
