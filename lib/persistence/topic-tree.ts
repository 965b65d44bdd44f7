// In-memory index of retained topic names: a tree of topic levels. Why a
// tree and not prefix scans over `r:<topic>` keys: a SUBSCRIBE filter is
// matched against stored topics (the reverse of what qlobber does), and a
// prefix scan only narrows on the literal levels before the first wildcard —
// `+/status` would still scan every retained key. Walking the tree follows a
// literal level in O(1), fans out only at `+`, and collects a subtree at `#`,
// so a lookup costs in proportion to the branches the filter can actually
// match. The level store loads the tree from the keys at open; values are
// then read by key.
//
// Every retained message keeps its nodes alive for as long as it is stored,
// and the garbage collector walks them on every full collection, so the tree
// is as small as it can be:
// - a topic's last level holds its value itself, not a node around it, until
//   a longer topic needs that level to have children (`ret/<n>/y`: one node
//   per `<n>`, none per `y`); `instanceof TopicNode` tells them apart, and
//   values are never TopicNodes;
// - most levels have a single child (every `<n>` node has one), so a node
//   keeps its first child inline (`name` + `kids`) and only makes a Map when
//   a second one arrives: storing a new topic allocates no Map per level;
// - a node holds no topic string and no "has a value" flag: the values carry
//   their topic (the store's values are packets), and `undefined` is never a
//   value.

/** What a level holds: a node (it has, or had, deeper levels), or the value of a topic ending there. */
type Slot<T> = TopicNode<T> | T

class TopicNode<T> {
  /** name of the only child while `kids` is that child; undefined while `kids` is a Map (or nothing) */
  name: string | undefined = undefined
  kids: Slot<T> | Map<string, Slot<T>> | undefined = undefined
  value: T | undefined = undefined
}

function isDollar (level: string): boolean {
  return level.charCodeAt(0) === 36 // '$'
}

function childOf<T> (node: TopicNode<T>, level: string): Slot<T> | undefined {
  const kids = node.kids
  if (kids === undefined) return undefined
  if (node.name !== undefined) return node.name === level ? kids as Slot<T> : undefined
  return (kids as Map<string, Slot<T>>).get(level)
}

function addChild<T> (node: TopicNode<T>, level: string, child: Slot<T>): void {
  const kids = node.kids
  if (kids === undefined) {
    node.name = level
    node.kids = child
  } else if (node.name !== undefined) {
    node.kids = new Map([[node.name, kids as Slot<T>], [level, child]])
    node.name = undefined
  } else {
    (kids as Map<string, Slot<T>>).set(level, child)
  }
}

/** `level` is a child of `node`: it now holds `child` */
function replaceChild<T> (node: TopicNode<T>, level: string, child: Slot<T>): void {
  if (node.name !== undefined) node.kids = child
  else (node.kids as Map<string, Slot<T>>).set(level, child)
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
    (kids as Map<string, Slot<T>>).delete(level)
  }
}

function isEmpty<T> (node: TopicNode<T>): boolean {
  const kids = node.kids
  return node.value === undefined && (kids === undefined || (node.name === undefined && (kids as Map<string, Slot<T>>).size === 0))
}

/** What `topic` holds, or undefined. Levels are cut with indexOf: no array per call. */
function find<T> (root: TopicNode<T>, topic: string): Slot<T> | undefined {
  let node: TopicNode<T> = root
  let start = 0
  for (;;) {
    const end = topic.indexOf('/', start)
    const slot = childOf(node, end === -1 ? topic.slice(start) : topic.slice(start, end))
    if (slot === undefined || end === -1) return slot
    // a value with no node has no deeper levels
    if (!(slot instanceof TopicNode)) return undefined
    node = slot
    start = end + 1
  }
}

function valueOf<T> (slot: Slot<T> | undefined): T | undefined {
  return slot instanceof TopicNode ? slot.value : slot
}

/** Topic name → value; values are never `undefined` nor TopicNodes, and carry their own topic (`match` yields values only). */
export class TopicTree<T> {
  #root = new TopicNode<T>()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (topic: string): T | undefined {
    return valueOf(find(this.#root, topic))
  }

  has (topic: string): boolean {
    return valueOf(find(this.#root, topic)) !== undefined
  }

  /** Stores `value` under `topic`; returns the value it replaced, so callers need no separate get. */
  set (topic: string, value: T): T | undefined {
    let node = this.#root
    let start = 0
    for (;;) {
      const end = topic.indexOf('/', start)
      const level = end === -1 ? topic.slice(start) : topic.slice(start, end)
      const slot = childOf(node, level)
      if (end === -1) {
        if (slot === undefined) {
          addChild(node, level, value)
          this.#size++
          return undefined
        }
        if (!(slot instanceof TopicNode)) {
          replaceChild(node, level, value)
          return slot
        }
        const previous = slot.value
        if (previous === undefined) this.#size++
        slot.value = value
        return previous
      }
      let next: TopicNode<T>
      if (slot === undefined) {
        next = new TopicNode<T>()
        addChild(node, level, next)
      } else if (slot instanceof TopicNode) {
        next = slot
      } else {
        // a topic ending here gets a deeper level: its value moves into a node
        next = new TopicNode<T>()
        next.value = slot
        replaceChild(node, level, next)
      }
      node = next
      start = end + 1
    }
  }

  delete (topic: string): boolean {
    const levels = topic.split('/')
    const path: Array<TopicNode<T>> = [this.#root]
    let node = this.#root
    const last = levels.length - 1
    for (let i = 0; i < last; i++) {
      const slot = childOf(node, levels[i] as string)
      if (!(slot instanceof TopicNode)) return false
      path.push(slot)
      node = slot
    }
    const slot = childOf(node, levels[last] as string)
    if (slot === undefined) return false
    if (slot instanceof TopicNode) {
      if (slot.value === undefined) return false
      slot.value = undefined
      if (isEmpty(slot)) removeChild(node, levels[last] as string)
    } else {
      removeChild(node, levels[last] as string)
    }
    this.#size--
    // prune now-empty branches so the tree does not keep dead levels around
    for (let i = last; i > 0; i--) {
      const n = path[i]
      const parent = path[i - 1]
      if (n === undefined || parent === undefined || !isEmpty(n)) break
      removeChild(parent, levels[i - 1] as string)
    }
    return true
  }

  /**
   * Values of the stored topics matching an MQTT topic filter, appended to
   * `out` (an array, not a generator: a lookup of many topics then costs no
   * generator object per level and per topic).
   * [MQTT-4.7.1-2] `#` also matches the parent level; `+` matches one level,
   * including an empty one. [MQTT-4.7.2-1] a filter starting with a wildcard
   * does not match topics starting with `$`.
   */
  match (filter: string, out: T[] = []): T[] {
    walk(this.#root, filter.split('/'), 0, out)
    return out
  }

  values (): T[] {
    const out: T[] = []
    collect(this.#root, false, out)
    return out
  }
}

function walk<T> (node: TopicNode<T>, levels: string[], i: number, out: T[]): void {
  if (i === levels.length) {
    if (node.value !== undefined) out.push(node.value)
    return
  }
  const level = levels[i] as string
  if (level === '#') {
    collect(node, i === 0, out)
    return
  }
  if (level === '+') {
    const kids = node.kids
    if (kids === undefined) return
    if (node.name !== undefined) {
      if (i !== 0 || !isDollar(node.name)) walkSlot(kids as Slot<T>, levels, i + 1, out)
      return
    }
    const map = kids as Map<string, Slot<T>>
    if (i === 0) {
      for (const [name, child] of map) if (!isDollar(name)) walkSlot(child, levels, 1, out)
    } else if (i + 2 === levels.length && !isWildcard(levels[i + 1] as string)) {
      // `a/+/b`, the common wide lookup: one level to look up under every child, without a call per level
      const last = levels[i + 1] as string
      for (const child of map.values()) {
        if (!(child instanceof TopicNode)) continue
        const value = valueOf(childOf(child, last))
        if (value !== undefined) out.push(value)
      }
    } else {
      // below the first level no name is looked at: values only, no [name, child] pair per child
      for (const child of map.values()) walkSlot(child, levels, i + 1, out)
    }
    return
  }
  const child = childOf(node, level)
  if (child !== undefined) walkSlot(child, levels, i + 1, out)
}

function isWildcard (level: string): boolean {
  return level === '+' || level === '#'
}

function walkSlot<T> (slot: Slot<T>, levels: string[], i: number, out: T[]): void {
  if (slot instanceof TopicNode) walk(slot, levels, i, out)
  // a topic ending here: the filter ends here too, or goes on with `#`, which matches the parent level
  else if (i === levels.length || levels[i] === '#') out.push(slot)
}

function collect<T> (node: TopicNode<T>, atRoot: boolean, out: T[]): void {
  if (node.value !== undefined && !atRoot) out.push(node.value)
  const kids = node.kids
  if (kids === undefined) return
  if (node.name !== undefined) {
    // the common single-child case
    if (atRoot && isDollar(node.name)) return
    if (kids instanceof TopicNode) collect(kids, false, out)
    else out.push(kids as T)
    return
  }
  const map = kids as Map<string, Slot<T>>
  if (atRoot) {
    for (const [name, child] of map) {
      if (isDollar(name)) continue
      if (child instanceof TopicNode) collect(child, false, out)
      else out.push(child)
    }
    return
  }
  for (const child of map.values()) {
    if (child instanceof TopicNode) collect(child, false, out)
    else out.push(child)
  }
}
