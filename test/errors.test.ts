/**
 * The one error table (lib/errors.ts): every code is prefixed, unique, raised
 * somewhere in lib/ or bin/ (`new CulexError('CODE'`) and documented in the
 * README's "Error codes" section, and nothing names a code the table lacks.
 */
import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CulexError, ErrorCodes, isCulexError } from '../lib/errors.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TABLE = 'lib/errors.ts'
const CODE = /'(CULEX_ERR_[A-Z0-9_]+)'/g
const RAISE = /new CulexError\('(CULEX_ERR_[A-Z0-9_]+)'/g

function sources (dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap(name => {
    const path = `${dir}/${name}`
    if (statSync(join(root, path)).isDirectory()) return sources(path)
    return path.endsWith('.ts') && path !== TABLE ? [path] : []
  })
}

/** Code -> the files outside the table that match `pattern` with it. */
function codesIn (files: readonly string[], pattern: RegExp): Map<string, string[]> {
  const found = new Map<string, string[]>()
  for (const file of files) {
    for (const m of readFileSync(join(root, file), 'utf8').matchAll(pattern)) {
      const code = m[1] as string
      found.set(code, [...(found.get(code) ?? []), file])
    }
  }
  return found
}

/** The codes in the first column of the README's "Error codes" table, in order. */
export function documentedCodes (readme: string): string[] {
  const start = readme.indexOf('\n## Error codes\n')
  if (start < 0) return []
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/^\| `(CULEX_[A-Z0-9_]+)` \|/gm)].map(m => m[1] as string)
}

/** Every way the table, the sources and the README disagree, as readable lines. */
export function problems (codes: readonly string[], raised: ReadonlyMap<string, string[]>, documented: readonly string[], named: ReadonlyMap<string, string[]> = raised): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const code of codes) {
    if (seen.has(code)) out.push(`${code} is in the table twice`)
    seen.add(code)
    if (!/^CULEX_ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/.test(code)) out.push(`${code} lacks the CULEX_ERR_ prefix`)
    if (!raised.has(code)) out.push(`${code} is raised nowhere in lib/ or bin/`)
    if (!documented.includes(code)) out.push(`${code} is not listed in the README's "Error codes"`)
  }
  for (const [code, files] of named) if (!seen.has(code)) out.push(`${code} (in ${files.join(', ')}) is not in the table`)
  const listed = new Set<string>()
  for (const code of documented) {
    if (listed.has(code)) out.push(`${code} is listed twice in the README`)
    listed.add(code)
    if (!seen.has(code)) out.push(`${code} is listed in the README but not in the table`)
  }
  return out
}

const readme = readFileSync(join(root, 'README.md'), 'utf8')
const files = [...sources('lib'), ...sources('bin')]
const raised = codesIn(files, RAISE)
const named = codesIn(files, CODE)
const documented = documentedCodes(readme)

t.test('every code is prefixed, unique, raised in lib/ or bin/ and listed in the README', async (t) => {
  t.ok(ErrorCodes.length > 0, 'the table is not empty')
  t.same(problems(ErrorCodes, raised, documented, named), [])
})

t.test('the checker catches an unraised, undocumented, unprefixed, repeated or unknown code', async (t) => {
  const has = (lines: string[], pattern: RegExp): boolean => lines.some(l => pattern.test(l))
  t.ok(has(problems([...ErrorCodes, 'CULEX_ERR_NEVER_RAISED'], raised, documented), /^CULEX_ERR_NEVER_RAISED is raised nowhere/), 'a code raised nowhere')
  t.ok(has(problems(ErrorCodes, raised, documented.slice(1)), /is not listed in the README/), 'a code missing from the README')
  t.ok(has(problems([...ErrorCodes, 'CULEX_OTHER'], new Map([...raised, ['CULEX_OTHER', ['lib/x.ts']]]), [...documented, 'CULEX_OTHER']), /^CULEX_OTHER lacks the CULEX_ERR_ prefix$/), 'a code without the prefix')
  t.ok(has(problems([...ErrorCodes, ErrorCodes[0] as string], raised, documented), /is in the table twice$/), 'a repeated code')
  t.ok(has(problems(ErrorCodes, raised, documented, new Map([...named, ['CULEX_ERR_GONE', ['lib/x.ts']]])), /^CULEX_ERR_GONE \(in lib\/x\.ts\) is not in the table$/), 'a code named in lib/ that the table lacks')
  t.ok(has(problems(ErrorCodes, raised, [...documented, 'CULEX_ERR_OLD']), /^CULEX_ERR_OLD is listed in the README but not in the table$/), 'a documented code the table lacks')
})

t.test('one class: the code, a message from typed arguments, the cause and the line', async (t) => {
  const cause = new Error('EACCES')
  const err = new CulexError('CULEX_ERR_DATA_DIR_OPEN', ['/d', 'EACCES'], { cause })
  t.ok(err instanceof Error)
  t.equal(err.name, 'CulexError')
  t.equal(err.code, 'CULEX_ERR_DATA_DIR_OPEN')
  t.equal(err.message, 'cannot open data directory /d: EACCES')
  t.equal(err.cause, cause)
  t.equal(err.line, undefined)
  t.notOk('cause' in new CulexError('CULEX_ERR_PERSISTENCE_CLOSED'), 'no cause unless given')
  t.equal(new CulexError('CULEX_ERR_PERSISTENCE_CLOSED').message, 'the persistence store is closed', 'a code without arguments')
  t.equal(new CulexError('CULEX_ERR_ACL_SYNTAX', ['f: line 3: x'], { line: 3 }).line, 3)
  t.equal(new CulexError('CULEX_ERR_CONFIG_INVALID', ['port: too big']).message, 'invalid configuration: port: too big')
  t.ok(isCulexError(err))
  t.ok(isCulexError(err, 'CULEX_ERR_DATA_DIR_OPEN'))
  t.notOk(isCulexError(err, 'CULEX_ERR_STORE_DAMAGED'))
  t.notOk(isCulexError(Object.assign(new Error('x'), { code: 'CULEX_ERR_DATA_DIR_OPEN' })), 'only the class counts')
})
