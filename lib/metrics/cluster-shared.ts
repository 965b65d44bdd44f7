/**
 * Shared subscription groups' figures cluster-wide. Each node adds its own
 * groups' figures to what it writes to Redis with its lease (the cluster
 * totals, lib/cluster/figures.ts), one field per group and figure; the
 * holder of the shared groups' sweep lock adds the entries waiting in each
 * group's stream, and every node what the groups' queue limit dropped or
 * refused of the messages it added (lib/cluster/shared-stream.ts). The totals sum them over the
 * live nodes, so a dead node's share goes with its lease. Published as
 * `$SYS/cluster/shared/{group}/{figure}` and as Prometheus families
 * `culex_cluster_shared_group_*`.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { CulexBroker } from '../broker.js'
import { readSharedGroups, sharedGroupLevels } from './sources.js'
import { SHARE_FIGURE_PREFIX } from '../cluster/shared-stream.js'

const GROUP_FIELD = SHARE_FIGURE_PREFIX
/** the figures a node reports per group; `members` names the node too (`members\u0000{node}`) */
const SUMMED = ['queued', 'inflight', 'delivered', 'redelivered', 'deadlettered', 'dropped'] as const
type Figure = typeof SUMMED[number]

/** This node's groups as figure fields (what it writes to Redis with its lease). */
export function localGroupFigures (broker: CulexBroker, nodeId: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const g of readSharedGroups(broker) ?? []) {
    const at = GROUP_FIELD + g.group + '\u0000'
    out[at + 'queued'] = g.queued
    out[at + 'inflight'] = g.inflight
    out[at + 'delivered'] = g.delivered
    out[at + 'redelivered'] = g.redelivered
    out[at + 'deadlettered'] = g.deadLettered
    out[at + 'dropped'] = g.dropped ?? 0
    out[at + 'members\u0000' + nodeId] = g.membersOnline + g.membersOffline
  }
  return out
}

export interface ClusterGroupFigures {
  figures: Record<Figure, number>
  /** members by node */
  members: Map<string, number>
}

/** The cluster's groups from the summed totals; `waiting` (the streams' unread entries) counts as queued. */
export function clusterGroups (totals: Record<string, number>): Map<string, ClusterGroupFigures> {
  const groups = new Map<string, ClusterGroupFigures>()
  for (const [field, value] of Object.entries(totals)) {
    if (!field.startsWith(GROUP_FIELD)) continue
    const parts = field.slice(GROUP_FIELD.length).split('\u0000')
    const [group, figure, node] = parts
    if (group === undefined || figure === undefined) continue
    let g = groups.get(group)
    if (g === undefined) groups.set(group, g = { figures: { queued: 0, inflight: 0, delivered: 0, redelivered: 0, deadlettered: 0, dropped: 0 }, members: new Map() })
    if (figure === 'members' && node !== undefined) g.members.set(node, value)
    else if (figure === 'waiting') g.figures.queued += value
    else if (figure === 'overflow') g.figures.dropped += value
    else if ((SUMMED as readonly string[]).includes(figure)) g.figures[figure as Figure] += value
  }
  return groups
}

/** `$SYS/cluster/shared/...` values: topic (below the cluster prefix) → value. */
export function clusterGroupTopics (totals: Record<string, number>): Map<string, number> {
  const out = new Map<string, number>()
  for (const [group, g] of clusterGroups(totals)) {
    const level = `shared/${sharedGroupLevels(group)}/`
    for (const figure of SUMMED) out.set(level + figure, g.figures[figure])
    let members = 0
    for (const [node, n] of g.members) { out.set(`${level}members/${node}`, n); members += n }
    out.set(level + 'members', members)
  }
  return out
}

/** Prometheus families of the cluster's groups, read from Redis at scrape time. */
export function registerClusterGroupFamilies (registry: Registry, broker: CulexBroker): void {
  const cluster = broker.cluster
  if (cluster === undefined) return
  const registers = [registry]
  const read = async (): Promise<Map<string, ClusterGroupFigures>> => {
    try {
      return clusterGroups(await cluster.totals())
    } catch {
      // Redis unreachable: no samples rather than stale ones
      return new Map()
    }
  }
  const family = (name: string, help: string, figure: Figure, kind: 'gauge' | 'counter'): void => {
    const Family = kind === 'gauge' ? Gauge : Counter
    new Family({
      name,
      help,
      labelNames: ['group'],
      registers,
      async collect () {
        this.reset()
        for (const [group, g] of await read()) {
          if (this instanceof Gauge) this.set({ group }, g.figures[figure])
          else this.inc({ group }, g.figures[figure])
        }
      }
    })
  }
  family('culex_cluster_shared_group_queued', 'Messages of a cluster-wide shared group waiting for a member (in its stream or on a node)', 'queued', 'gauge')
  family('culex_cluster_shared_group_inflight', 'Messages of a cluster-wide shared group sent to a member and not yet acknowledged, all nodes', 'inflight', 'gauge')
  family('culex_cluster_shared_group_delivered_total', 'Messages a cluster-wide shared group delivered, summed over the live nodes (a node\'s count restarts with it)', 'delivered', 'counter')
  family('culex_cluster_shared_group_redelivered_total', 'Messages a cluster-wide shared group sent again, summed over the live nodes', 'redelivered', 'counter')
  family('culex_cluster_shared_group_dead_lettered_total', 'Messages a cluster-wide shared group gave up on, summed over the live nodes', 'deadlettered', 'counter')
  family('culex_cluster_shared_group_dropped_total', 'Messages a cluster-wide shared group discarded, summed over the live nodes', 'dropped', 'counter')
  new Gauge({
    name: 'culex_cluster_shared_group_members',
    help: 'Members of a cluster-wide shared group, by node',
    labelNames: ['group', 'node'],
    registers,
    async collect () {
      this.reset()
      for (const [group, g] of await read()) for (const [node, n] of g.members) this.set({ group, node }, n)
    }
  })
}
