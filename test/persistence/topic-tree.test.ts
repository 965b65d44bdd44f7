// The retained index against the delivery matcher: whatever sequence of
// stores and deletes, match(filter) returns exactly the stored topics that
// topicMatches accepts (spec 4.7), each once, with its current value.
import t from 'tap'
import fc from 'fast-check'
import { TopicTree } from '../../lib/persistence/topic-tree.js'
import { topicMatches } from '../../lib/protocol/topic.js'

const level = fc.constantFrom('a', 'b', '', '$s', 'x')
const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((levels) => levels.join('/'))
  .filter((name) => name.length > 0)
const filterLevel = fc.constantFrom('a', 'b', '', '$s', '+')
const filter = fc.tuple(fc.array(filterLevel, { minLength: 0, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0)
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), topic, value: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), topic })
)

t.test('match, get, has and size agree with a Map and topicMatches', async (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 40 }), fc.array(filter, { minLength: 1, maxLength: 5 }), (ops, filters) => {
    const tree = new TopicTree<number>()
    const model = new Map<string, number>()
    for (const o of ops) {
      if (o.kind === 'set') {
        const previous = tree.set(o.topic, o.value)
        if (previous !== model.get(o.topic)) return false
        model.set(o.topic, o.value)
      } else if (tree.delete(o.topic) !== model.delete(o.topic)) {
        return false
      }
    }
    if (tree.size !== model.size) return false
    for (const [name, value] of model) if (tree.get(name) !== value || !tree.has(name)) return false
    for (const f of filters) {
      const got = [...tree.match(f)].sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
      const want = [...model].filter(([name]) => topicMatches(f, name)).sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
      if (JSON.stringify(got) !== JSON.stringify(want)) return false
    }
    return JSON.stringify([...tree.entries()].sort()) === JSON.stringify([...model].sort())
  }), { numRuns: 500 })
  t.pass('500 random sequences')
})

t.test('deleting the last topic under a level prunes it, so an emptied branch matches nothing', async (t) => {
  const tree = new TopicTree<number>()
  tree.set('a/b/c', 1)
  tree.set('a/d', 2)
  t.equal(tree.delete('a/b/c'), true)
  t.same([...tree.match('a/+/#')], [['a/d', 2]])
  t.equal(tree.delete('a/d'), true)
  t.same([...tree.match('#')], [])
  t.equal(tree.size, 0)
  tree.set('a/b/c', 3)
  t.same([...tree.match('a/b/c')], [['a/b/c', 3]], 'the pruned path is rebuilt')
})
