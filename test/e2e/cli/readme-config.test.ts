/**
 * The README's configuration table against the schema: every documented
 * flag and environment variable is accepted and changes its setting, every
 * setting is documented under the names culex derives from its key, and the
 * documented defaults are the schema's. `culex --help` gives every option a
 * sentence and its default, and lists the passwd and repair commands.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { loadConfig, envName, flagName } from '../../../lib/config/load.js'
import { buildProgram, defaultText } from '../../../lib/config/cli-options.js'
import { ConfigSchema, configKeys, type Config } from '../../../lib/config/schema.js'
import { version } from '../../../lib/version.js'
import { runCulex, startCulex, within } from '../../helpers/cli.js'
import { rawConnect } from '../../helpers/raw5.js'

interface Row { key: string, flag: string, env: string, default: string, meaning: string }

/** The rows of the table under "## Configuration" whose first column is a setting key. */
function readmeRows (): Row[] {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1))
  const rows: Row[] = []
  for (const line of section.split('\n')) {
    if (!line.startsWith('| ')) continue
    const cells = line.slice(1, -1).split(' | ').map((c) => c.trim())
    const [key, flag, env, def, meaning] = cells
    if (key === undefined || key === 'key' || key.startsWith('---')) continue
    rows.push({ key, flag: flag ?? '', env: env ?? '', default: def ?? '', meaning: meaning ?? '' })
  }
  return rows
}

const rows = readmeRows()
const defaults = ConfigSchema.parse({}) as Record<string, unknown>
const backticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string)

/** Values to try for a setting: the README's own examples first, then common ones. */
function candidates (row: Row): string[] {
  return [...backticked(row.meaning), ...backticked(row.default),
    'on', 'off', '0', '1', '2', '3', '1024', '65536', '131072', '/x', 'x', '127.0.0.2']
}

/** The settings a command line gives, parsed by culex's own program. */
function parseFlags (argv: string[]): Record<string, unknown> {
  const { program, flags } = buildProgram(version)
  program.parse(argv, { from: 'user' })
  return flags()
}

t.test('the README documents every setting once, and only settings', async (t) => {
  t.ok(rows.length > 40, `the table was found (${rows.length} rows)`)
  const documented = rows.map((r) => r.key)
  t.same(documented.filter((k, i) => documented.indexOf(k) !== i), [], 'no setting twice')
  t.same(configKeys.filter((k) => !documented.includes(k)), [], 'every schema key has a row')
  t.same(documented.filter((k) => !(configKeys as string[]).includes(k)), [], 'every row is a schema key')
})

t.test('each row states the flag and the variable culex accepts, and the schema default', async (t) => {
  for (const row of rows) {
    t.equal(row.flag, '`' + flagName(row.key) + '`', `${row.key}: flag`)
    t.equal(row.env, '`' + envName(row.key) + '`', `${row.key}: environment variable`)
    const literal = row.default.startsWith('`') ? backticked(row.default)[0] : undefined
    if (literal !== undefined) t.equal(literal, defaultText(row.key as keyof Config), `${row.key}: default`)
    else t.equal(defaults[row.key], undefined, `${row.key}: "${row.default}" stands for no default in the schema`)
  }
})

t.test('[maximum-qos] the README names of Maximum QoS are accepted', async (t) => {
  t.equal(flagName('maximumQoS'), '--maximum-qos')
  t.equal(envName('maximumQoS'), 'CULEX_MAXIMUM_QOS')
  t.equal((await loadConfig({ flags: parseFlags(['--maximum-qos', '1']) })).maximumQoS, 1)
  t.equal((await loadConfig({ env: { CULEX_MAXIMUM_QOS: '0' } })).maximumQoS, 0)
  t.throws(() => parseFlags(['--maximum-qo-s', '1']), { code: 'commander.unknownOption' }, 'the old derived name is gone')
})

t.test('every documented flag and variable is accepted and changes its setting', async (t) => {
  for (const row of rows) {
    const flag = flagName(row.key)
    const env = envName(row.key)
    let effect: string | undefined
    for (const value of candidates(row)) {
      let viaFlag: Config
      try {
        viaFlag = await loadConfig({ flags: parseFlags([flag, value]) })
      } catch {
        continue // not a valid value for this setting
      }
      const key = row.key as keyof Config
      if (isDeepStrictEqual(viaFlag[key], defaults[key])) continue
      const viaEnv = await loadConfig({ env: { [env]: value } })
      t.same(viaEnv[key], viaFlag[key], `${env}=${value} sets ${row.key} as ${flag} does`)
      effect = value
      break
    }
    t.ok(effect !== undefined, `${flag} and ${env} change ${row.key} (with ${effect ?? 'no value tried'})`)
  }
})

t.test('boolean settings are switches: the flag alone turns them on', async (t) => {
  for (const key of configKeys) {
    const schema = ConfigSchema.shape[key]
    if (schema.safeParse('on').data !== true) continue
    const config = await loadConfig({ flags: parseFlags([flagName(key)]) })
    t.equal(config[key], true, `${flagName(key)} alone`)
  }
})

t.test('--help gives every option a sentence, its default and its variable, and lists passwd and repair', async (t) => {
  const help = await runCulex(['--help'], {}, 30000)
  t.equal(help.code, 0)
  const text = help.stdout.replace(/\s+/g, ' ')
  for (const key of configKeys) {
    const description = ConfigSchema.shape[key].description
    t.ok(description !== undefined && description.length > 15, `${key} has a description in the schema`)
    t.ok(text.includes(`${flagName(key)} `), `help lists ${flagName(key)}`)
    t.ok(text.includes(`${description ?? ''} (default: ${defaultText(key)}; env ${envName(key)})`), `help shows ${key}'s sentence, default and variable`)
  }
  t.match(help.stdout, /culex passwd /, 'help lists culex passwd')
  t.match(help.stdout, /culex repair /, 'help lists culex repair')
})

t.test('real runs: --maximum-qos and CULEX_MAXIMUM_QOS reach the CONNACK', async (t) => {
  const base = ['--port', 'auto', '--ws-port', '0', '--persistence', 'memory', '--sys-interval', '0']
  const byFlag = await startCulex([...base, '--maximum-qos', '1'])
  t.teardown(() => { byFlag.child.kill('SIGKILL') })
  const viaFlag = await rawConnect(t, byFlag.port, 5)
  t.equal(viaFlag.connack.properties?.maximumQoS, 1, '[MQTT-3.2.2-9] --maximum-qos 1: CONNACK Maximum QoS 1')
  const byEnv = await startCulex(base, { CULEX_MAXIMUM_QOS: '0', CULEX_MAXIMUM_QO: '1' })
  t.teardown(() => { byEnv.child.kill('SIGKILL') })
  const viaEnv = await rawConnect(t, byEnv.port, 5)
  t.equal(viaEnv.connack.properties?.maximumQoS, 0, '[MQTT-3.2.2-9] CULEX_MAXIMUM_QOS=0: CONNACK Maximum QoS 0')
  const warning = byEnv.logs.find((l) => l.variable === 'CULEX_MAXIMUM_QO')
  t.match(warning, { level: 40, suggestion: 'CULEX_MAXIMUM_QOS', msg: 'CULEX_MAXIMUM_QO is not a culex setting and is ignored; did you mean CULEX_MAXIMUM_QOS?' }, 'a misspelt variable is warned about, with the name it meant')
  t.notOk(byEnv.logs.some((l) => l.variable === 'CULEX_MAXIMUM_QOS'), 'a valid variable is not')
  for (const c of [byFlag, byEnv]) {
    c.child.kill('SIGTERM')
    t.equal((await within(c.exit, 10000, 'culex exited')).code, 0)
  }
})
