/** Configuration: one schema for flags, CULEX_* variables and the JSON file; flags > env > file > defaults. */
import t from 'tap'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, envName, flagName, unknownEnvVariables } from '../../lib/config/load.js'
import { isCulexError } from '../../lib/errors.js'
import { version } from '../../lib/version.js'
import { readFileSync } from 'node:fs'

const dir = mkdtempSync(join(tmpdir(), 'culex-config-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const file = join(dir, 'culex.json')
writeFileSync(file, JSON.stringify({ port: 1111, wsPort: 2222, tlsPort: 3333, logLevel: 'debug' }))

t.test('defaults: loopback, standard ports, LevelDB in ./data', async (t) => {
  const c = await loadConfig({})
  t.equal(c.host, '127.0.0.1')
  t.same([c.port, c.wsPort, c.tlsPort, c.wssPort], [1883, 8083, 8883, 8084])
  t.equal(c.wsPath, '/mqtt')
  t.equal(c.persistence, 'level')
  t.equal(c.dataDir, './data')
})

t.test('precedence: flags > env > file > defaults', async (t) => {
  const c = await loadConfig({
    file,
    env: { CULEX_WS_PORT: '4444', CULEX_PORT: '5555' },
    flags: { port: '6666' }
  })
  t.equal(c.port, 6666, 'flag beats env and file')
  t.equal(c.wsPort, 4444, 'env beats file')
  t.equal(c.tlsPort, 3333, 'file beats default')
  t.equal(c.wssPort, 8084, 'default')
  t.equal(c.logLevel, 'debug')
})

t.test('CULEX_CONFIG names the file', async (t) => {
  const c = await loadConfig({ env: { CULEX_CONFIG: file } })
  t.equal(c.port, 1111)
})

t.test('errors name the field and the source', async (t) => {
  const cases: Array<[Parameters<typeof loadConfig>[0], RegExp]> = [
    [{ flags: { port: '70000' } }, /port \(--port\)/],
    [{ env: { CULEX_DATA_DIR: '' , CULEX_PERSISTENCE: 'postgres' } }, /persistence \(CULEX_PERSISTENCE\)/],
    [{ flags: { fsync: 'maybe' } }, /fsync \(--fsync\)/]
  ]
  for (const [sources, pattern] of cases) {
    await t.rejects(loadConfig(sources), pattern)
  }
  const badFile = join(dir, 'bad.json')
  writeFileSync(badFile, JSON.stringify({ port: 'x', unknownKey: 1 }))
  const err = await loadConfig({ file: badFile }).catch((e: unknown) => e)
  t.ok(isCulexError(err, 'CULEX_ERR_CONFIG_INVALID'))
  t.match((err as Error).message, /in .*bad\.json/)
  writeFileSync(badFile, '{ not json')
  await t.rejects(loadConfig({ file: badFile }), /not valid JSON/)
  await t.rejects(loadConfig({ file: join(dir, 'missing.json') }), /ENOENT/)
})

t.test('names of flags and variables', async (t) => {
  t.equal(envName('wsPort'), 'CULEX_WS_PORT')
  t.equal(flagName('dataDir'), '--data-dir')
  t.equal(flagName('maximumQoS'), '--maximum-qos', 'QoS is one word, not qo-s')
  t.equal(envName('maximumQoS'), 'CULEX_MAXIMUM_QOS')
})

t.test('structured settings given as text that is not JSON: one error naming the field and its source, from every source', async (t) => {
  const notJson = /^invalid configuration: sharedStrategies \((--shared-strategies|CULEX_SHARED_STRATEGIES|in .*strategies\.json)\): not valid JSON \([^\n]*\)$/
  const fromFlag = await loadConfig({ flags: { sharedStrategies: 'notjson' } }).catch((e: unknown) => e)
  t.ok(isCulexError(fromFlag, 'CULEX_ERR_CONFIG_INVALID'), 'a flag: a configuration error, not a SyntaxError')
  t.match((fromFlag as Error).message, notJson)
  t.match((fromFlag as Error).message, /--shared-strategies/)
  const fromEnv = await loadConfig({ env: { CULEX_SHARED_STRATEGIES: '[{' } }).catch((e: unknown) => e)
  t.ok(isCulexError(fromEnv, 'CULEX_ERR_CONFIG_INVALID'), 'a variable')
  t.match((fromEnv as Error).message, /CULEX_SHARED_STRATEGIES/)
  const strategiesFile = join(dir, 'strategies.json')
  writeFileSync(strategiesFile, JSON.stringify({ sharedStrategies: 'notjson' }))
  const fromFile = await loadConfig({ file: strategiesFile }).catch((e: unknown) => e)
  t.ok(isCulexError(fromFile, 'CULEX_ERR_CONFIG_INVALID'), 'a string in the file')
  t.match((fromFile as Error).message, notJson)
  writeFileSync(strategiesFile, JSON.stringify({ sharedStrategies: [{ pattern: 'jobs-*', strategy: 'fastest' }] }))
  await t.rejects(loadConfig({ file: strategiesFile }), /sharedStrategies\[0\]\.strategy \(in .*strategies\.json\)/, 'JSON of the wrong shape names the element')
  const ok = await loadConfig({ env: { CULEX_SHARED_STRATEGIES: '[{"pattern":"jobs-*","strategy":"least-inflight"}]' } })
  t.same(ok.sharedStrategies, [{ pattern: 'jobs-*', strategy: 'least-inflight' }])
})

t.test('a key in the file that names no setting is refused with the nearest setting', async (t) => {
  const typo = join(dir, 'typo.json')
  writeFileSync(typo, JSON.stringify({ maximumQos: 1 }))
  await t.rejects(loadConfig({ file: typo }), /maximumQos \(in .*typo\.json\): not a culex setting; did you mean maximumQoS\?/)
})

t.test('CULEX_* variables that name no setting are found, with the nearest valid name', async (t) => {
  t.same(unknownEnvVariables({
    CULEX_PORT: '1', CULEX_CONFIG: 'x', CULEX_MAXIMUM_QO: '1', CULEX_LOGLEVEL: 'debug', CULEX_NOTHING_LIKE_IT: '1', HOME: '/root'
  }), [
    { name: 'CULEX_LOGLEVEL', suggestion: 'CULEX_LOG_LEVEL' },
    { name: 'CULEX_MAXIMUM_QO', suggestion: 'CULEX_MAXIMUM_QOS' },
    { name: 'CULEX_NOTHING_LIKE_IT' }
  ])
})

t.test('the version constant matches package.json', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(version, pkg.version)
})

t.test('sharedGroups: one list of strategy and queue policy per group pattern, validated field by field', async (t) => {
  const ok = await loadConfig({ env: { CULEX_SHARED_GROUPS: '[{"pattern":"jobs","strategy":"least-inflight","maxDeliveries":3,"retryBackoff":{"initial":100},"ackTimeout":500,"deadLetterTopic":"$dlq/{group}"}]' } })
  t.same(ok.sharedGroups, [{ pattern: 'jobs', strategy: 'least-inflight', maxDeliveries: 3, retryBackoff: { initial: 100, factor: 2, max: 60000 }, ackTimeout: 500, deadLetterTopic: '$dlq/{group}' }], 'backoff fields default')
  t.same((await loadConfig({})).sharedGroups, [], 'none by default')
  const file = join(dir, 'groups.json')
  const bad: Array<[unknown, RegExp]> = [
    [{ pattern: 'jobs', maxDeliveries: 0 }, /^invalid configuration: sharedGroups\[0\]\.maxDeliveries \(in .*groups\.json\): .*>=1/],
    [{ pattern: 'jobs', ackTimeout: -1 }, /sharedGroups\[0\]\.ackTimeout/],
    [{ pattern: 'jobs', retryBackoff: { initial: 10, max: 5 } }, /sharedGroups\[0\]\.retryBackoff.*max must be at least initial/],
    [{ pattern: 'jobs', retryBackoff: { factor: 0.5 } }, /sharedGroups\[0\]\.retryBackoff\.factor/],
    [{ pattern: 'jobs', maxDelivery: 3 }, /sharedGroups\[0\]/]
  ]
  for (const [rule, error] of bad) {
    writeFileSync(file, JSON.stringify({ sharedGroups: [rule] }))
    const err = await loadConfig({ file }).catch((e: unknown) => e)
    t.ok(isCulexError(err, 'CULEX_ERR_CONFIG_INVALID'), JSON.stringify(rule))
    t.match((err as Error).message, error)
    t.notMatch((err as Error).message, /\n/, 'one line')
  }
})
