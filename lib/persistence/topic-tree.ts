// In-memory index of retained topic names: a tree with one node per topic
// level. Why a tree and not prefix scans over `r:<topic>` keys: a SUBSCRIBE
// filter is matched against stored topics (the reverse of what qlobber does),
// and a prefix scan only narrows on the literal levels before the first
// wildcard — `+/status` would still scan every retained key. Walking the tree
// follows a literal level in O(1), fans out only at `+`, and collects a
// subtree at `#`, so a lookup costs in proportion to the branches the filter
// can actually match. The level store loads the tree from the keys at open;
// values are then read by key.

// Most levels have a single child (`ret/<n>/y`: every `<n>` node has one), so
// a node keeps its first child inline and only makes a Map when a second one
// arrives: storing a new topic then allocates no Map per level, which halves
// the cost of an insert (measured on Node 20 with 100k distinct topics).

interface TopicNode<T> {
  /** name of the inline child (meaningful while `only` is set) */
  onlyName: string
  /** the only child, while the node has had at most one */
  only: TopicNode<T> | undefined
  /** all children, once the node has had two or more (then `only` is undefined) */
  children: Map<string, TopicNode<T>> | undefined
  value: T | undefined
  /** the full topic of a node that holds a value: matches need not rebuild it */
  topic: string
  has: boolean
}

function newNode<T> (): TopicNode<T> {
  return { onlyName: '', only: undefined, children: undefined, value: undefined, topic: '', has: false }
}

function isDollar (level: string): boolean {
  return level.charCodeAt(0) === 36 // '$'
}

function childOf<T> (node: TopicNode<T>, level: string): TopicNode<T> | undefined {
  if (node.only !== undefined) return node.onlyName === level ? node.only : undefined
  return node.children?.get(level)
}

function addChild<T> (node: TopicNode<T>, level: string, child: TopicNode<T>): void {
  if (node.only !== undefined) {
    node.children = new Map([[node.onlyName, node.only], [level, child]])
    node.only = undefined
    node.onlyName = ''
  } else if (node.children !== undefined) {
    node.children.set(level, child)
  } else {
    node.only = child
    node.onlyName = level
  }
}

function removeChild<T> (node: TopicNode<T>, level: string): void {
  if (node.only !== undefined) {
    if (node.onlyName === level) {
      node.only = undefined
      node.onlyName = ''
    }
  } else {
    node.children?.delete(level)
  }
}

function isEmpty<T> (node: TopicNode<T>): boolean {
  return !node.has && node.only === undefined && (node.children === undefined || node.children.size === 0)
}

const NO_CHILDREN: ReadonlyArray<[string, never]> = []

function childEntries<T> (node: TopicNode<T>): Iterable<[string, TopicNode<T>]> {
  if (node.only !== undefined) return [[node.onlyName, node.only]]
  return node.children ?? NO_CHILDREN
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

export class TopicTree<T> {
  #root: TopicNode<T> = newNode()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (topic: string): T | undefined {
    const node = find(this.#root, topic)
    return node?.has === true ? node.value : undefined
  }

  has (topic: string): boolean {
    return find(this.#root, topic)?.has === true
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
        child = newNode()
        addChild(node, level, child)
      }
      node = child
      if (end === -1) break
      start = end + 1
    }
    const previous = node.has ? node.value : undefined
    if (!node.has) this.#size++
    node.has = true
    node.value = value
    node.topic = topic
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
    if (!node.has) return false
    node.has = false
    node.value = undefined
    node.topic = ''
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
   * Stored topics matching an MQTT topic filter, with their values.
   * [MQTT-4.7.1-2] `#` also matches the parent level; `+` matches one level,
   * including an empty one. [MQTT-4.7.2-1] a filter starting with a wildcard
   * does not match topics starting with `$`.
   */
  * match (filter: string): Generator<[string, T]> {
    yield * this.#walk(this.#root, filter.split('/'), 0)
  }

  * entries (): Generator<[string, T]> {
    yield * this.#collect(this.#root, false)
  }

  * #walk (node: TopicNode<T>, levels: string[], i: number): Generator<[string, T]> {
    if (i === levels.length) {
      if (node.has) yield [node.topic, node.value as T]
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

  * #collect (node: TopicNode<T>, atRoot: boolean): Generator<[string, T]> {
    if (node.has && !atRoot) yield [node.topic, node.value as T]
    if (node.only !== undefined) {
      // the common single-child case, without an entries array per node
      if (!atRoot || !isDollar(node.onlyName)) yield * this.#collect(node.only, false)
      return
    }
    if (node.children === undefined) return
    for (const [name, child] of node.children) {
      if (atRoot && isDollar(name)) continue
      yield * this.#collect(child, false)
    }
  }
}
