/**
 * A single node does not load the cluster's modules or ioredis: lib/server.ts
 * imports lib/cluster/index.ts only under `cluster`, and the Redis store
 * imports ioredis only when it connects by URL. Checked in a child process on
 * the built modules (dist/), by the CommonJS modules it loaded (ioredis is
 * one; ESM modules are not listed there, so the cluster's own modules are
 * seen through ioredis, which lib/cluster/redis.ts imports).
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../..', import.meta.url))
const dist = (path: string): string => fileURLToPath(new URL(`../../../dist/${path}`, import.meta.url))

/** Runs `body` (ESM, top-level await) in a fresh process; what it prints, parsed */
function inChild (body: string): { ioredis: boolean } {
  const script = `import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
${body}
console.log(JSON.stringify({ ioredis: Object.keys(require.cache).some((m) => m.includes('/node_modules/ioredis/')) }))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: root, timeout: 30_000 })
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ioredis: boolean }
}

t.test('a single node, started and stopped, never loads ioredis', async (t) => {
  const seen = inChild(`const { startServer } = await import(${JSON.stringify(dist('lib/server.js'))})
const server = await startServer({ host: '127.0.0.1', port: 'auto', wsPort: 'auto', tlsPort: 0, wssPort: 0, persistence: 'memory', logLevel: 'silent', sysInterval: 1 })
await server.close()`)
  t.equal(seen.ioredis, false)
})

t.test('the check sees ioredis when the cluster\'s modules are loaded', async (t) => {
  t.equal(inChild(`await import(${JSON.stringify(dist('lib/cluster/index.js'))})`).ioredis, true, 'lib/cluster/index.js')
  t.equal(inChild(`await import(${JSON.stringify(dist('lib/persistence/redis.js'))})`).ioredis, false, 'the Redis store alone does not')
})
