/**
 * lib/cluster/ioredis.ts: loading ioredis 6 leaves String.prototype in V8's
 * dictionary mode (its `class VerbatimString extends String`), which slows
 * every string method call in optimized code; culex's one importer of
 * ioredis sets it up as a fast prototype again. Checked in child processes
 * with V8's own predicate (--allow-natives-syntax), on the built modules as
 * `culex` loads them. If the first test fails, ioredis or Node no longer do
 * this and the workaround can go.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const dist = (path: string): string => fileURLToPath(new URL(`../../dist/${path}`, import.meta.url))

/** `%HasFastProperties(String.prototype)` in a fresh process after importing `specifier` */
function stringPrototypeFastAfter (specifier: string): boolean {
  const script = `import(${JSON.stringify(specifier)}).then(() => { console.log(%HasFastProperties(String.prototype)) })`
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=commonjs', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) })
  return out.trim() === 'true'
}

t.test('ioredis alone leaves String.prototype in dictionary mode (the reason for the workaround)', async (t) => {
  t.equal(stringPrototypeFastAfter('node:os'), true, 'a fresh process has a fast String.prototype')
  t.equal(stringPrototypeFastAfter('ioredis'), false, 'ioredis 6 on this Node makes it a dictionary')
})

t.test('culex loading ioredis keeps String.prototype fast', async (t) => {
  t.equal(stringPrototypeFastAfter(dist('lib/cluster/ioredis.js')), true, 'lib/cluster/ioredis.ts')
  // a single node loads no ioredis (test/e2e/cli/lazy-cluster.test.ts): the server with the cluster's modules, as a cluster node loads them
  t.equal(stringPrototypeFastAfter(dist('lib/cluster/index.js')), true, 'the cluster\'s modules, with ioredis')
})
