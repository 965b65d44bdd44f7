import t from 'tap'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadAclFile, parseAcl, type AclClient } from '../../lib/auth/acl.js'
import { CulexError } from '../../lib/errors.js'

const anon: AclClient = { clientId: 'anon-1' }
const alice: AclClient = { clientId: 'alice-phone', username: 'alice' }
const bob: AclClient = { clientId: 'bob-1', username: 'bob' }
const carol: AclClient = { clientId: 'carol-1', username: 'carol' }

const ACL = `
# anonymous clients
topic read public/#
topic write inbox/anon

user alice
topic readwrite sensors/#
topic deny sensors/secret
topic read $SYS/broker/#
topic write cmd/+/set

user bob
topic sensors/+/temp
topic deny sensors/bad/#

  # indented comment
pattern read devices/%c/#
pattern write users/%u/out
pattern deny users/%u/out/blocked
`

t.test('parses rules with line numbers and sections', async (t) => {
  const acl = parseAcl(ACL)
  t.equal(acl.rules.length, 11)
  t.same(acl.rules[0], { kind: 'topic', access: 'read', filter: 'public/#', line: 3 })
  t.same(acl.rules[2], { kind: 'topic', access: 'readwrite', filter: 'sensors/#', user: 'alice', line: 7 })
  t.same(acl.rules[6], { kind: 'topic', access: 'readwrite', filter: 'sensors/+/temp', user: 'bob', line: 13 }, 'no keyword means readwrite')
  t.same(acl.rules[8], { kind: 'pattern', access: 'read', filter: 'devices/%c/#', line: 17 }, 'patterns have no user')
})

t.test('anonymous rules apply only to clients without a username', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(anon, 'public/news', 'read'))
  t.ok(acl.check(anon, 'public/news', 'subscribe'))
  t.notOk(acl.check(anon, 'public/news', 'write'), 'read rule does not grant write')
  t.ok(acl.check(anon, 'inbox/anon', 'write'))
  t.notOk(acl.check(anon, 'inbox/anon', 'read'), 'write rule does not grant read')
  t.notOk(acl.check(alice, 'public/news', 'read'), 'alice has a username: anonymous rules do not apply')
  t.notOk(acl.check(carol, 'public/news', 'read'), 'a user without a section gets patterns only')
})

t.test('write: publish allowed by a matching rule, default deny', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, 'sensors/kitchen/temp', 'write'))
  t.ok(acl.check(alice, 'cmd/lamp/set', 'write'))
  t.notOk(acl.check(alice, 'cmd/lamp/get', 'write'))
  t.notOk(acl.check(alice, 'other', 'write'))
  t.ok(acl.check(bob, 'sensors/x/temp', 'write'))
  t.notOk(acl.check(bob, 'sensors/x/humidity', 'write'))
  t.notOk(acl.check(alice, 'sensors/+/temp', 'write'), 'a topic name with wildcards is refused [MQTT-3.3.2-2]')
  t.notOk(acl.check(alice, '', 'write'), 'empty topic [MQTT-4.7.3-1]')
})

t.test('deny takes precedence over allow whatever the order', async (t) => {
  const acl = parseAcl(ACL)
  t.notOk(acl.check(alice, 'sensors/secret', 'write'))
  t.notOk(acl.check(alice, 'sensors/secret', 'read'))
  t.ok(acl.check(alice, 'sensors/secret/more', 'read'), 'deny filter is exact')
  t.notOk(acl.check(bob, 'sensors/bad/temp', 'write'), 'deny written after the allow')
  const before = parseAcl('topic deny a/b\ntopic a/#')
  const after = parseAcl('topic a/#\ntopic deny a/b')
  for (const acl of [before, after]) {
    t.notOk(acl.check(anon, 'a/b', 'write'))
    t.ok(acl.check(anon, 'a/c', 'write'))
  }
  const patternDeny = parseAcl('topic readwrite users/#\npattern deny users/%c/private')
  t.notOk(patternDeny.check({ clientId: 'x' }, 'users/x/private', 'read'), 'a deny pattern overrides a topic allow')
  t.ok(patternDeny.check({ clientId: 'x' }, 'users/y/private', 'read'))
})

t.test('read: delivery check on topic names', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, 'sensors/a/b', 'read'))
  t.notOk(acl.check(alice, 'cmd/lamp/set', 'read'), 'write-only rule')
  t.notOk(acl.check(alice, 'sensors/#', 'read'), 'a filter is not a topic name')
})

t.test('subscribe: the filter must be covered by a read rule', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, 'sensors/#', 'subscribe'))
  t.ok(acl.check(alice, 'sensors/+/temp', 'subscribe'))
  t.ok(acl.check(alice, 'sensors/kitchen', 'subscribe'))
  t.notOk(acl.check(alice, '#', 'subscribe'), '# is wider than sensors/#')
  t.notOk(acl.check(alice, 'cmd/+/set', 'subscribe'), 'write-only rule does not grant subscribe')
  t.ok(acl.check(bob, 'sensors/+/temp', 'subscribe'))
  t.ok(acl.check(bob, 'sensors/x/temp', 'subscribe'))
  t.notOk(acl.check(bob, 'sensors/#', 'subscribe'), 'sensors/+/temp does not cover sensors/#')
  t.notOk(acl.check(bob, 'sensors/+', 'subscribe'))
  const exact = parseAcl('topic read a/b')
  t.ok(exact.check(anon, 'a/b', 'subscribe'))
  t.notOk(exact.check(anon, 'a/+', 'subscribe'), 'a/b does not cover a/+')
  t.notOk(exact.check(anon, 'a/#', 'subscribe'))
  t.notOk(exact.check(anon, 'a/b#', 'subscribe'), 'invalid filter [MQTT-4.7.1-1]')
  t.notOk(exact.check(anon, 'a+/b', 'subscribe'), 'invalid filter [MQTT-4.7.1-2]')
})

t.test('subscribe: deny covering the whole filter refuses it; a partial deny is left to delivery', async (t) => {
  const acl = parseAcl(ACL)
  t.notOk(acl.check(alice, 'sensors/secret', 'subscribe'))
  t.ok(acl.check(alice, 'sensors/+', 'subscribe'), 'partially denied filter may be subscribed...')
  t.notOk(acl.check(alice, 'sensors/secret', 'read'), '...but the denied topic is not delivered')
  t.ok(acl.check(alice, 'sensors/open', 'read'))
  t.notOk(acl.check(bob, 'sensors/bad/temp', 'subscribe'), 'sensors/bad/# covers it')
})

t.test('subscribe: $share/<group>/<filter> is checked against <filter> [MQTT-4.8.2-1] [MQTT-4.8.2-2]', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, '$share/workers/sensors/+/temp', 'subscribe'))
  t.ok(acl.check(alice, '$share/g/sensors/#', 'subscribe'))
  t.notOk(acl.check(alice, '$share/g/#', 'subscribe'))
  t.notOk(acl.check(alice, '$share/g/sensors/secret', 'subscribe'), 'deny applies through $share')
  t.notOk(acl.check(alice, '$share/g', 'subscribe'), 'no filter')
  t.notOk(acl.check(alice, '$share//sensors/#', 'subscribe'), 'empty share name')
  t.notOk(acl.check(alice, '$share/g+/sensors/#', 'subscribe'), 'wildcard in share name')
  const shareRule = parseAcl('topic read $share/g/#')
  t.notOk(shareRule.check(anon, '$share/g/x', 'subscribe'), 'a rule naming $share literally does not grant the inner filter')
})

t.test('$SYS and other $ topics need a rule starting with $ [MQTT-4.7.2-1]', async (t) => {
  const everything = parseAcl('topic readwrite #\ntopic read +/broker/uptime')
  t.ok(everything.check(anon, 'a/b', 'read'))
  t.notOk(everything.check(anon, '$SYS/broker/uptime', 'read'))
  t.notOk(everything.check(anon, '$SYS/broker/uptime', 'write'))
  t.notOk(everything.check(anon, '$SYS/#', 'subscribe'))
  t.notOk(everything.check(anon, '$SYS/broker/uptime', 'subscribe'))
  t.ok(everything.check(anon, '#', 'subscribe'), '# subscribes to non-$ topics only, which # covers')

  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, '$SYS/broker/uptime', 'read'))
  t.ok(acl.check(alice, '$SYS/broker/#', 'subscribe'))
  t.notOk(acl.check(alice, '$SYS/#', 'subscribe'))
  t.notOk(acl.check(alice, '$SYS/broker/uptime', 'write'))
  t.notOk(acl.check(bob, '$SYS/broker/uptime', 'read'))
  const denyAll = parseAcl('topic readwrite $SYS/#\ntopic deny #')
  t.ok(denyAll.check(anon, '$SYS/x', 'read'), 'a deny # does not reach $ topics either')
})

t.test('%c and %u are substituted in patterns', async (t) => {
  const acl = parseAcl(ACL)
  t.ok(acl.check(alice, 'devices/alice-phone/state', 'read'))
  t.ok(acl.check(alice, 'devices/alice-phone/#', 'subscribe'))
  t.notOk(acl.check(alice, 'devices/bob-1/state', 'read'))
  t.ok(acl.check(anon, 'devices/anon-1/x', 'read'), '%c patterns apply to anonymous clients')
  t.ok(acl.check(carol, 'users/carol/out', 'write'))
  t.notOk(acl.check(carol, 'users/alice/out', 'write'))
  t.notOk(acl.check(carol, 'users/carol/out/blocked', 'write'), 'deny pattern')
  t.notOk(acl.check(anon, 'users/undefined/out', 'write'), '%u patterns do not apply to anonymous clients')
  const mid = parseAcl('pattern read pre-%c-post/x')
  t.ok(mid.check({ clientId: 'id' }, 'pre-id-post/x', 'read'), 'substitution inside a level, as mosquitto')
  const literal = parseAcl('topic read devices/%c')
  t.notOk(literal.check({ clientId: 'x' }, 'devices/x', 'read'), '`topic` lines are not patterns')
  t.ok(literal.check({ clientId: 'x' }, 'devices/%c', 'read'))
})

t.test('%c/%u values with +, #, / (or empty, or $-making) are never substituted', async (t) => {
  const acl = parseAcl('pattern readwrite devices/%c/#\npattern read users/%u\npattern read %c/data')
  for (const clientId of ['+', '#', 'a/b', '../x', 'x/+', '']) {
    const client = { clientId }
    t.notOk(acl.check(client, `devices/${clientId}/x`, 'read'), `client id ${JSON.stringify(clientId)}: read`)
    t.notOk(acl.check(client, 'devices/other/x', 'read'), `client id ${JSON.stringify(clientId)}: no widening`)
    t.notOk(acl.check(client, 'devices/#', 'subscribe'), `client id ${JSON.stringify(clientId)}: subscribe`)
  }
  t.notOk(acl.check({ clientId: 'a/b' }, 'devices/a/b/c', 'write'), "'/' would reach into client a's tree")
  t.notOk(acl.check({ clientId: 'c', username: 'u/#' }, 'users/u/x', 'read'))
  t.notOk(acl.check({ clientId: 'c', username: '+' }, 'users/x', 'read'))
  t.ok(acl.check({ clientId: 'ok', username: 'u' }, 'users/u', 'read'), 'safe values still work')
  t.notOk(acl.check({ clientId: '$SYS' }, '$SYS/data', 'read'), 'a client id must not turn a pattern into a $ filter')
  t.ok(acl.check({ clientId: 'x$' }, 'x$/data', 'read'), "'$' elsewhere is harmless")
  const both = parseAcl('pattern read a/%c/%u')
  t.ok(both.check({ clientId: 'c', username: 'u' }, 'a/c/u', 'read'))
  t.notOk(both.check({ clientId: '%u', username: 'bob' }, 'a/bob/bob', 'read'), 'substituted text is not substituted again')
  t.ok(both.check({ clientId: '%u', username: 'bob' }, 'a/%u/bob', 'read'))
})

t.test('a deny pattern that cannot be expanded safely denies everything (fail closed)', async (t) => {
  const acl = parseAcl('topic readwrite #\npattern deny private/%c/#')
  t.ok(acl.check({ clientId: 'good' }, 'anything', 'write'))
  t.notOk(acl.check({ clientId: 'good' }, 'private/good/x', 'write'))
  t.notOk(acl.check({ clientId: 'bad/id' }, 'anything', 'write'))
  t.notOk(acl.check({ clientId: 'bad#' }, 'anything', 'read'))
  const userDeny = parseAcl('topic readwrite #\npattern deny private/%u/#')
  t.ok(userDeny.check({ clientId: 'a' }, 'anything', 'write'), 'a %u deny pattern does not apply to anonymous clients')
  t.notOk(userDeny.check({ clientId: 'a', username: 'x+' }, 'anything', 'write'))
})

t.test('empty ACL denies everything', async (t) => {
  const acl = parseAcl('# nothing\n\n')
  t.equal(acl.rules.length, 0)
  t.notOk(acl.check(anon, 'a', 'read'))
  t.notOk(acl.check(alice, 'a', 'write'))
  t.notOk(acl.check(alice, 'a', 'subscribe'))
})

t.test('user sections: names with spaces, repeated sections merge, CRLF and tabs', async (t) => {
  const acl = parseAcl('user John Smith\r\ntopic read a\r\nuser bob\r\ntopic read b\r\nuser John Smith\r\ntopic\twrite\tc\r\n')
  const john = { clientId: 'j', username: 'John Smith' }
  t.ok(acl.check(john, 'a', 'read'))
  t.ok(acl.check(john, 'c', 'write'))
  t.notOk(acl.check(john, 'b', 'read'))
  t.ok(parseAcl('topic read a b/c d').check(anon, 'a b/c d', 'read'), 'a filter may contain spaces')
})

t.test('syntax errors name the line', async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ['topic read a\nbogus line', 2, /unknown keyword "bogus"/],
    ['\n\nuser', 3, /needs a username/],
    ['topic', 1, /needs a topic filter/],
    ['topic read', 1, /`topic read` needs a topic filter/],
    ['pattern deny  ', 1, /needs a topic filter/],
    ['topic read a/#/b', 1, /invalid topic filter "a\/#\/b"/],
    ['user x\ntopic write a+', 2, /invalid topic filter/],
    ['pattern read %c#', 1, /invalid topic filter/],
    ['Topic read a', 1, /unknown keyword "Topic"/]
  ]
  for (const [text, line, re] of cases) {
    const err = t.throws(() => parseAcl(text, 'acl.conf')) as unknown
    t.ok(err instanceof CulexError, JSON.stringify(text))
    if (!(err instanceof CulexError)) continue
    t.equal(err.code, 'CULEX_ERR_ACL_SYNTAX')
    t.equal(err.line, line, `${JSON.stringify(text)} -> line ${line}`)
    t.match(err.message, re)
    t.match(err.message, new RegExp(`^acl\\.conf: line ${line}: `))
  }
})

t.test('loadAclFile reads a file and reports its path', async (t) => {
  const dir = t.testdir({ 'good.acl': 'user a\ntopic read x/#\n', 'bad.acl': 'topic read ok\ntopic read #/x\n', 'latin1.acl': Buffer.from([0x74, 0x6f, 0x70, 0x69, 0x63, 0x20, 0xe9]) })
  const acl = await loadAclFile(join(dir, 'good.acl'))
  t.ok(acl.check({ clientId: 'c', username: 'a' }, 'x/y', 'read'))
  await t.rejects(loadAclFile(join(dir, 'bad.acl')), { code: 'CULEX_ERR_ACL_SYNTAX', line: 2, message: /bad\.acl: line 2:/ })
  await t.rejects(loadAclFile(join(dir, 'latin1.acl')), { message: /not valid UTF-8/ })
  await t.rejects(loadAclFile(join(dir, 'missing.acl')), { code: 'ENOENT' })
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.acl')
    await writeFile(locked, 'topic read a\n')
    await chmod(locked, 0o000)
    await t.rejects(loadAclFile(locked), { code: 'EACCES' })
  }
})
