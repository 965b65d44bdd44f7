// In-memory index of retained topic names: a tree with one node per topic
// level. Why a tree and not prefix scans over `r:<topic>` keys: a SUBSCRIBE
// filter is matched against stored topics (the reverse of what qlobber does),
// and a prefix scan only narrows on the literal levels before the first
// wildcard — `+/status` would still scan every retained key. Walking the tree
// follows a literal level in O(1), fans out only at `+`, and collects a
// subtree at `#`, so a lookup costs in proportion to the branches the filter
// can actually match. The level store loads the tree from the keys at open;
// values are then read by key.
//
// Every retained message keeps its nodes alive for as long as it is stored,
// and the garbage collector walks them on every full collection, so a node
// is as small as it can be (three fields):
// - most levels have a single child (`ret/<n>/y`: every `<n>` node has one),
//   so a node keeps its first child inline (`name` + `kids`) and only makes a
//   Map when a second one arrives: storing a new topic allocates no Map per
//   level;
// - a node holds no topic string and no "has a value" flag: the values carry
//   their topic (the store's values are packets), and `undefined` is never a
//   value.

class TopicNode<T> {
  /** name of the only child while `kids` is that child; undefined while `kids` is a Map (or nothing) */
  name: string | undefined = undefined
  kids: TopicNode<T> | Map<string, TopicNode<T>> | undefined = undefined
  value: T | undefined = undefined
}

function isDollar (level: string): boolean {
  return level.charCodeAt(0) === 36 // '$'
}

function childOf<T> (node: TopicNode<T>, level: string): TopicNode<T> | undefined {
  const kids = node.kids
  if (kids === undefined) return undefined
  if (node.name !== undefined) return node.name === level ? kids as TopicNode<T> : undefined
  return (kids as Map<string, TopicNode<T>>).get(level)
}

function addChild<T> (node: TopicNode<T>, level: string, child: TopicNode<T>): void {
  const kids = node.kids
  if (kids === undefined) {
    node.name = level
    node.kids = child
  } else if (node.name !== undefined) {
    node.kids = new Map([[node.name, kids as TopicNode<T>], [level, child]])
    node.name = undefined
  } else {
    (kids as Map<string, TopicNode<T>>).set(level, child)
  }
}

function removeChild<T> (node: TopicNode<T>, level: string): void {
  const kids = node.kids
  if (kids === undefined) return
  if (node.name !== undefined) {
    if (node.name === level) {
      node.name = undefined
      node.kids = undefined
    }
  } else {
    (kids as Map<string, TopicNode<T>>).delete(level)
  }
}

function isEmpty<T> (node: TopicNode<T>): boolean {
  const kids = node.kids
  return node.value === undefined && (kids === undefined || (node.name === undefined && (kids as Map<string, TopicNode<T>>).size === 0))
}

const NO_CHILDREN: ReadonlyArray<[string, never]> = []

function childEntries<T> (node: TopicNode<T>): Iterable<[string, TopicNode<T>]> {
  const kids = node.kids
  if (kids === undefined) return NO_CHILDREN
  if (node.name !== undefined) return [[node.name, kids as TopicNode<T>]]
  return kids as Map<string, TopicNode<T>>
}

/** The node of `topic`, or undefined. Levels are cut with indexOf: no array per call. */
function find<T> (root: TopicNode<T>, topic: string): TopicNode<T> | undefined {
  let node: TopicNode<T> | undefined = root
  let start = 0
  for (;;) {
    const end = topic.indexOf('/', start)
    node = childOf(node, end === -1 ? topic.slice(start) : topic.slice(start, end))
    if (node === undefined || end === -1) return node
    start = end + 1
  }
}

/** Topic name → value; values are never `undefined`, and carry their own topic (`match` yields values only). */
export class TopicTree<T> {
  #root = new TopicNode<T>()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (topic: string): T | undefined {
    return find(this.#root, topic)?.value
  }

  has (topic: string): boolean {
    return find(this.#root, topic)?.value !== undefined
  }

  /** Stores `value` under `topic`; returns the value it replaced, so callers need no separate get. */
  set (topic: string, value: T): T | undefined {
    let node = this.#root
    let start = 0
    for (;;) {
      const end = topic.indexOf('/', start)
      const level = end === -1 ? topic.slice(start) : topic.slice(start, end)
      let child = childOf(node, level)
      if (child === undefined) {
        child = new TopicNode<T>()
        addChild(node, level, child)
      }
      node = child
      if (end === -1) break
      start = end + 1
    }
    const previous = node.value
    if (previous === undefined) this.#size++
    node.value = value
    return previous
  }

  delete (topic: string): boolean {
    const levels = topic.split('/')
    const path: Array<TopicNode<T>> = [this.#root]
    let node = this.#root
    for (const level of levels) {
      const child = childOf(node, level)
      if (child === undefined) return false
      path.push(child)
      node = child
    }
    if (node.value === undefined) return false
    node.value = undefined
    this.#size--
    // prune now-empty branches so the tree does not keep dead levels around
    for (let i = levels.length; i > 0; i--) {
      const n = path[i]
      const parent = path[i - 1]
      if (n === undefined || parent === undefined || !isEmpty(n)) break
      removeChild(parent, levels[i - 1] as string)
    }
    return true
  }

  /**
   * Values of the stored topics matching an MQTT topic filter.
   * [MQTT-4.7.1-2] `#` also matches the parent level; `+` matches one level,
   * including an empty one. [MQTT-4.7.2-1] a filter starting with a wildcard
   * does not match topics starting with `$`.
   */
  * match (filter: string): Generator<T> {
    yield * this.#walk(this.#root, filter.split('/'), 0)
  }

  * values (): Generator<T> {
    yield * this.#collect(this.#root, false)
  }

  * #walk (node: TopicNode<T>, levels: string[], i: number): Generator<T> {
    if (i === levels.length) {
      if (node.value !== undefined) yield node.value
      return
    }
    const level = levels[i] as string
    if (level === '#') {
      yield * this.#collect(node, i === 0)
      return
    }
    if (level === '+') {
      for (const [name, child] of childEntries(node)) {
        if (i === 0 && isDollar(name)) continue
        yield * this.#walk(child, levels, i + 1)
      }
      return
    }
    const child = childOf(node, level)
    if (child === undefined) return
    yield * this.#walk(child, levels, i + 1)
  }

  * #collect (node: TopicNode<T>, atRoot: boolean): Generator<T> {
    if (node.value !== undefined && !atRoot) yield node.value
    const kids = node.kids
    if (kids === undefined) return
    if (node.name !== undefined) {
      // the common single-child case, without an entries array per node
      if (!atRoot || !isDollar(node.name)) yield * this.#collect(kids as TopicNode<T>, false)
      return
    }
    for (const [name, child] of kids as Map<string, TopicNode<T>>) {
      if (atRoot && isDollar(name)) continue
      yield * this.#collect(child, false)
    }
  }
}
