import { h, replace, count, bytes, duration } from './dom.js'
import { api } from './api.js'
import { LiveChart, COLORS } from './charts.js'

export function overviewPage () {
  const tiles = h('div', { class: 'tiles' })
  const charts = {
    messages: new LiveChart('Messages / s', [{ label: 'in', color: COLORS[0] }, { label: 'out', color: COLORS[1], dash: [6, 4] }]),
    bytes: new LiveChart('Bytes / s', [{ label: 'in', color: COLORS[0] }, { label: 'out', color: COLORS[1], dash: [6, 4] }], (v) => bytes(v)),
    drops: new LiveChart('Dropped / s', [{ label: 'dropped', color: COLORS[5] }]),
    connects: new LiveChart('Connects / s and connections', [{ label: 'connects/s', color: COLORS[2] }, { label: 'connected', color: COLORS[3] }])
  }
  const status = h('div', { class: 'status-line' })
  const el = h('div', { class: 'page overview' },
    h('div', { class: 'page-head' }, h('h2', {}, 'Overview'), status),
    tiles,
    h('div', { class: 'charts' }, Object.values(charts).map(c => c.el)))

  const tile = (label, value, sub) => h('div', { class: 'card tile' }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value), sub ? h('div', { class: 'tile-sub' }, sub) : null)

  async function refresh () {
    const [o, hist] = await Promise.all([api.get('overview'), api.get('stats/history?seconds=600')])
    const p = o.connections.byProtocol
    const tr = o.connections.byTransport
    replace(tiles,
      tile('Connections', count(o.connections.total), `max ${count(o.connections.max)} · tcp ${tr.tcp} · tls ${tr.tls} · ws ${tr.ws} · wss ${tr.wss}`),
      tile('Protocols', `${p['5']} / ${p['3.1.1']}`, `MQTT 5 / 3.1.1 · 3.1: ${p['3.1']}`),
      tile('Sessions', count(o.sessions.online), `online · ${count(o.sessions.offline)} offline`),
      tile('Subscriptions', count(o.subscriptions)),
      tile('Retained', count(o.retained)),
      tile('Queued', count(o.queued), `in session queues · ${count(o.queuedInGroups)} in shared groups`),
      tile('Shared groups', count(o.sharedGroups)),
      tile('Messages', `${count(o.messages.received)} in`, `${count(o.messages.sent)} out · ${count(o.messages.dropped)} dropped`),
      tile('Traffic', bytes(o.bytes.received), `in · ${bytes(o.bytes.sent)} out`))
    replace(status,
      h('span', { class: o.ready ? 'badge ok' : 'badge bad' }, o.ready ? 'ready' : 'not ready'),
      h('span', {}, `node ${o.node} · culex ${o.version} · up ${duration(o.uptimeSeconds)}`),
      o.readiness.length > 0 ? h('span', { class: 'warn' }, o.readiness.join('; ')) : null)
    const r = hist.rates
    const t = r.map(s => s.t / 1000)
    charts.messages.set([t, r.map(s => s.messagesIn), r.map(s => s.messagesOut)])
    charts.bytes.set([t, r.map(s => s.bytesIn), r.map(s => s.bytesOut)])
    charts.drops.set([t, r.map(s => s.dropped)])
    charts.connects.set([t, r.map(s => s.connects), r.map(s => s.connections)])
  }

  return { el, refresh, destroy () { for (const c of Object.values(charts)) c.destroy() } }
}
