import { h, count } from './dom.js'
import { api } from './api.js'
import { dataTable } from './table.js'
import { LiveChart, COLORS } from './charts.js'

export function groupsPage () {
  const table = dataTable([
    { label: 'Group', cell: g => g.shareName, class: 'mono' },
    { label: 'Filter', cell: g => g.filter, class: 'mono' },
    { label: 'Online', cell: g => count(g.membersOnline), class: 'num' },
    { label: 'Offline', cell: g => count(g.membersOffline), class: 'num' },
    { label: 'Queued', cell: g => count(g.queued), class: 'num' },
    { label: 'In flight', cell: g => count(g.inflight), class: 'num' },
    { label: 'Delivered', cell: g => count(g.delivered), class: 'num' },
    { label: 'Redelivered', cell: g => count(g.redelivered), class: 'num' },
    { label: 'Abandoned', cell: g => count(g.abandoned ?? 0), class: 'num' },
    { label: 'Timed out', cell: g => count(g.timedOut ?? 0), class: 'num' },
    { label: 'Poison', cell: g => count(g.poison ?? 0), class: 'num' },
    { label: 'Dead-lettered', cell: g => count(g.deadLettered), class: 'num' },
    { label: 'Dropped', cell: g => count(g.dropped), class: 'num' }
  ], 'No shared subscription groups')
  const chartBox = h('div', { class: 'charts one' })
  let chart
  let chartKey = ''
  const el = h('div', { class: 'page groups' },
    h('div', { class: 'page-head' }, h('h2', {}, 'Shared groups'), h('span', { class: 'sub' }, '$share/{group}/{filter}: work queues')),
    h('section', { class: 'card' }, table.el),
    chartBox)

  async function refresh () {
    const [groups, hist] = await Promise.all([api.get('shared-groups?limit=1000'), api.get('stats/history?seconds=600')])
    table.set(groups.data, (g) => ({ dataset: { group: g.group } }))
    const names = groups.data.slice(0, COLORS.length).map(g => g.group)
    const key = names.join('\n')
    if (key !== chartKey) {
      chart?.destroy()
      chartBox.textContent = ''
      chartKey = key
      chart = names.length === 0 ? undefined : new LiveChart('Queue depth', names.map((n, i) => ({ label: n, color: COLORS[i] })))
      if (chart) chartBox.appendChild(chart.el)
    }
    if (chart) {
      const samples = hist.groups
      chart.set([samples.map(s => s.t / 1000), ...names.map(n => samples.map(s => s.queued[n] ?? null))])
    }
  }
  return { el, refresh, destroy () { chart?.destroy() } }
}
