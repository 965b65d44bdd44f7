// In-memory index of retained topic names: a tree with one node per topic
// level. Why a tree and not prefix scans over `r:<topic>` keys: a SUBSCRIBE
// filter is matched against stored topics (the reverse of what qlobber does),
// and a prefix scan only narrows on the literal levels before the first
// wildcard — `+/status` would still scan every retained key. Walking the tree
// follows a literal level in O(1), fans out only at `+`, and collects a
// subtree at `#`, so a lookup costs in proportion to the branches the filter
// can actually match. The level store loads the tree from the keys at open;
// values are then read by key.

interface TopicNode<T> {
  children: Map<string, TopicNode<T>> | undefined
  value: T | undefined
  has: boolean
}

function newNode<T> (): TopicNode<T> {
  return { children: undefined, value: undefined, has: false }
}

function isDollar (level: string): boolean {
  return level.charCodeAt(0) === 36 // '$'
}

export class TopicTree<T> {
  #root: TopicNode<T> = newNode()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (topic: string): T | undefined {
    let node: TopicNode<T> | undefined = this.#root
    for (const level of topic.split('/')) {
      node = node.children?.get(level)
      if (node === undefined) return undefined
    }
    return node.has ? node.value : undefined
  }

  set (topic: string, value: T): void {
    let node = this.#root
    for (const level of topic.split('/')) {
      if (node.children === undefined) node.children = new Map()
      let child = node.children.get(level)
      if (child === undefined) {
        child = newNode()
        node.children.set(level, child)
      }
      node = child
    }
    if (!node.has) this.#size++
    node.has = true
    node.value = value
  }

  delete (topic: string): boolean {
    const levels = topic.split('/')
    const path: Array<TopicNode<T>> = [this.#root]
    let node = this.#root
    for (const level of levels) {
      const child = node.children?.get(level)
      if (child === undefined) return false
      path.push(child)
      node = child
    }
    if (!node.has) return false
    node.has = false
    node.value = undefined
    this.#size--
    // prune now-empty branches so the tree does not keep dead levels around
    for (let i = levels.length; i > 0; i--) {
      const n = path[i]
      const parent = path[i - 1]
      if (n === undefined || parent === undefined) break
      if (n.has || (n.children !== undefined && n.children.size > 0)) break
      parent.children?.delete(levels[i - 1] as string)
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
    yield * this.#walk(this.#root, filter.split('/'), 0, [])
  }

  * entries (): Generator<[string, T]> {
    yield * this.#collect(this.#root, [], false)
  }

  * #walk (node: TopicNode<T>, levels: string[], i: number, path: string[]): Generator<[string, T]> {
    if (i === levels.length) {
      if (node.has) yield [path.join('/'), node.value as T]
      return
    }
    const level = levels[i] as string
    if (level === '#') {
      yield * this.#collect(node, path, i === 0)
      return
    }
    const children = node.children
    if (children === undefined) return
    if (level === '+') {
      for (const [name, child] of children) {
        if (i === 0 && isDollar(name)) continue
        path.push(name)
        yield * this.#walk(child, levels, i + 1, path)
        path.pop()
      }
      return
    }
    const child = children.get(level)
    if (child === undefined) return
    path.push(level)
    yield * this.#walk(child, levels, i + 1, path)
    path.pop()
  }

  * #collect (node: TopicNode<T>, path: string[], atRoot: boolean): Generator<[string, T]> {
    if (node.has && !atRoot) yield [path.join('/'), node.value as T]
    if (node.children === undefined) return
    for (const [name, child] of node.children) {
      if (atRoot && isDollar(name)) continue
      path.push(name)
      yield * this.#collect(child, path, false)
      path.pop()
    }
  }
}
