// The retained index against the delivery matcher: whatever sequence of
// stores and deletes, match(filter) returns exactly the values of the stored
// topics that topicMatches accepts (spec 4.7), each once, the current one.
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

interface Entry { topic: string, value: number }

function byTopic (x: Entry, y: Entry): number {
  return x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : 0
}

t.test('match, get, has and size agree with a Map and topicMatches', async (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 40 }), fc.array(filter, { minLength: 1, maxLength: 5 }), (ops, filters) => {
    const tree = new TopicTree<Entry>()
    const model = new Map<string, Entry>()
    for (const o of ops) {
      if (o.kind === 'set') {
        const entry = { topic: o.topic, value: o.value }
        const previous = tree.set(o.topic, entry)
        if (previous !== model.get(o.topic)) return false
        model.set(o.topic, entry)
      } else if (tree.delete(o.topic) !== model.delete(o.topic)) {
        return false
      }
    }
    if (tree.size !== model.size) return false
    for (const [name, value] of model) if (tree.get(name) !== value || !tree.has(name)) return false
    for (const f of filters) {
      const got = [...tree.match(f)].sort(byTopic)
      const want = [...model.values()].filter((e) => topicMatches(f, e.topic)).sort(byTopic)
      if (got.length !== want.length || got.some((e, i) => e !== want[i])) return false
    }
    const all = [...tree.values()].sort(byTopic)
    const want = [...model.values()].sort(byTopic)
    return all.length === want.length && all.every((e, i) => e === want[i])
  }), { numRuns: 500 })
  t.pass('500 random sequences')
})

t.test('deleting the last topic under a level prunes it, so an emptied branch matches nothing', async (t) => {
  const tree = new TopicTree<number>()
  tree.set('a/b/c', 1)
  tree.set('a/d', 2)
  t.equal(tree.delete('a/b/c'), true)
  t.same([...tree.match('a/+/#')], [2])
  t.equal(tree.delete('a/d'), true)
  t.same([...tree.match('#')], [])
  t.equal(tree.size, 0)
  tree.set('a/b/c', 3)
  t.same([...tree.match('a/b/c')], [3], 'the pruned path is rebuilt')
})
