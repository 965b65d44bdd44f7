/**
 * The other nodes' `$SYS/brokers/{node}/...` values on this node. Each node
 * routes its whole `$SYS` tree every `sysInterval` to the nodes with a
 * matching subscriber (metrics/sys.ts), so a value that has not changed for
 * long still reaches a node whose first `$SYS` subscriber came late. This
 * node keeps the last of each as a retained message of its own store (not
 * Redis: the values are a node's, and go with it), passes a value on to its
 * subscribers only when it changed, as the node itself does, and clears a
 * node's values when that node leaves the cluster [MQTT-3.3.1-6].
 */
import type { Aedes } from 'aedes'
import { sysTopicNode } from '../protocol/topic.js'

export class RemoteSysValues {
  /** per node, each topic's last payload */
  private readonly byNode = new Map<string, Map<string, Buffer>>()

  /** True when `topic` is another node's value that changed (or came first) and is to be published here. */
  changed (topic: string, payload: Buffer | string): boolean {
    const node = sysTopicNode(topic)
    if (node === undefined) return false
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
    let values = this.byNode.get(node)
    if (bytes.length === 0) return values?.delete(topic) === true
    if (values === undefined) this.byNode.set(node, values = new Map())
    if (values.get(topic)?.equals(bytes) === true) return false
    values.set(topic, bytes)
    return true
  }

  /** The topics of a node that left, forgotten here: each is to be cleared. */
  nodeLeft (node: string): string[] {
    const values = this.byNode.get(node)
    this.byNode.delete(node)
    return values === undefined ? [] : [...values.keys()]
  }
}

/** Keeps and clears the other nodes' `$SYS` values here; returns the filter the routed ones pass (false: not published). */
export function mirrorRemoteSys (aedes: Aedes, cluster: { onNodeLeft: (listener: (nodeId: string) => void) => void }, onError: (err: Error, topic: string) => void): (topic: string, payload: Buffer | string) => boolean {
  const values = new RemoteSysValues()
  cluster.onNodeLeft((node) => {
    // an empty retained message removes the value here and tells the live subscribers
    for (const topic of values.nodeLeft(node)) {
      aedes.publish({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }, (err) => { if (err) onError(err, topic) })
    }
  })
  return (topic, payload) => sysTopicNode(topic) === undefined || values.changed(topic, payload)
}
