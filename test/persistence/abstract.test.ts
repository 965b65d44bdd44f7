// aedes-persistence's own abstract suite (node:test based) against every
// store (the redis one against a redis-server of this test's own). It runs in a child `node --test` process on the compiled store in
// dist/ (`npm test` builds first).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { testRedis } from '../helpers/store.js'

const runner = fileURLToPath(new URL('./fixtures/abstract-runner.mjs', import.meta.url))
const require = createRequire(import.meta.url)
// every top-level test() of the suite; the run must pass all of them
const suiteSize = (readFileSync(require.resolve('aedes-persistence/abstract.js'), 'utf8').match(/^ {2}test\('/gm) ?? []).length

async function runSuite (kind: string): Promise<{ code: number | null, out: string }> {
  const redisUrl = kind === 'redis' ? (await testRedis()).url : ''
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', runner], {
      env: { ...process.env, CULEX_STORE_KIND: kind, CULEX_REDIS_URL: redisUrl, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, out }))
  })
}

t.ok(suiteSize >= 45, `found the abstract suite (${suiteSize} tests)`)

for (const kind of ['memory', 'level', 'redis']) {
  t.test(`aedes-persistence abstract suite passes on the ${kind} store`, async (t) => {
    const { code, out } = await runSuite(kind)
    const pass = Number(/^# pass (\d+)$/m.exec(out)?.[1] ?? -1)
    const fail = Number(/^# fail (\d+)$/m.exec(out)?.[1] ?? -1)
    const failures = out.split('\n').filter((l) => l.startsWith('not ok'))
    t.equal(code, 0, 'node --test exits 0')
    t.equal(fail, 0, `no failures${failures.length > 0 ? ': ' + failures.join('; ') : ''}`)
    t.equal(pass, suiteSize, `all ${suiteSize} tests pass`)
  })
}
