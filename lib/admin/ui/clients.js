import { h, replace, count, confirmAction, until, showError } from './dom.js'
import { api, q } from './api.js'
import { dataTable, pager } from './table.js'

const LIMIT = 25
const STATE_BADGE = { connected: 'ok', connecting: 'pending', offline: 'offline' }
const stateBadge = (state) => h('span', { class: 'badge ' + (STATE_BADGE[state] ?? '') }, state)

export function clientsPage () {
  let page = 1
  const search = h('input', { type: 'search', placeholder: 'Filter by client id', 'aria-label': 'client id filter', oninput: () => { page = 1; refresh() } })
  const user = h('input', { type: 'search', placeholder: 'username', 'aria-label': 'username filter', oninput: () => { page = 1; refresh() } })
  const state = h('select', { 'aria-label': 'state', onchange: () => { page = 1; refresh() } }, h('option', { value: '' }, 'any state'), h('option', { value: 'connected' }, 'connected'), h('option', { value: 'connecting' }, 'connecting'), h('option', { value: 'offline' }, 'offline (stored session)'))
  const link = (c) => h('a', { href: '#/clients/' + encodeURIComponent(c.clientId), class: 'client-link' }, c.clientId)
  const table = dataTable([
    { label: 'Client id', cell: link, class: 'mono' },
    { label: 'Username', cell: c => c.username ?? '—' },
    { label: 'State', cell: c => stateBadge(c.state) },
    { label: 'Protocol', cell: c => c.protocol ? `MQTT ${c.protocol}` : '—' },
    { label: 'Transport', cell: c => c.transport ?? '—' },
    { label: 'Address', cell: c => c.remoteAddress ?? '—', class: 'mono' },
    { label: 'Subs', cell: c => count(c.subscriptions), class: 'num' },
    { label: 'In flight', cell: c => count(c.inflight), class: 'num' },
    { label: 'Queued', cell: c => count(c.queued), class: 'num' },
    { label: 'Session expires', cell: c => c.state === 'offline' ? until(c.sessionExpiresAt, false) : '—' }
  ], 'No clients and no stored sessions')
  const pages = pager((d) => { page += d; refresh() })
  const el = h('div', { class: 'page clients' },
    h('div', { class: 'page-head' }, h('h2', {}, 'Clients'), h('div', { class: 'filters' }, search, user, state)),
    h('section', { class: 'card' }, table.el, pages.el))

  async function refresh () {
    const res = await api.get('clients' + q({ page, limit: LIMIT, clientid: search.value, username: user.value, state: state.value }))
    table.set(res.data, (c) => ({ dataset: { clientId: c.clientId } }))
    pages.set(res.meta, res.data.length)
  }
  return { el, refresh }
}

export function clientPage (clientId, session) {
  const body = h('div')
  const el = h('div', { class: 'page client' },
    h('div', { class: 'page-head' }, h('div', {}, h('a', { href: '#/clients', class: 'back' }, '‹ Clients'), h('h2', { class: 'mono' }, clientId))),
    body)
  let gone = false

  const field = (label, value) => h('div', { class: 'field' }, h('dt', {}, label), h('dd', {}, value))

  async function disconnect () {
    if (!await confirmAction('Disconnect client?', `${clientId} will receive DISCONNECT 0x98 (Administrative action). It may connect again.`, 'Disconnect')) return
    await api.del('clients/' + encodeURIComponent(clientId))
    location.hash = '#/clients'
  }

  async function refresh () {
    if (gone) return
    let c
    try {
      c = await api.get('clients/' + encodeURIComponent(clientId))
    } catch (err) {
      if (err.status !== 404) throw err
      replace(body, h('section', { class: 'card' }, h('p', { class: 'empty' }, 'This client is not connected and has no stored session.')))
      return
    }
    const subs = c.subscriptionList.map(s => h('tr', {},
      h('td', { class: 'mono' }, s.filter),
      h('td', {}, s.shared ? h('span', { class: 'badge shared' }, 'shared') : ''),
      h('td', { class: 'num' }, String(s.qos)),
      h('td', {}, [s.noLocal ? 'no local' : null, s.retainAsPublished ? 'retain as published' : null, s.retainHandling ? `retain handling ${s.retainHandling}` : null, s.subscriptionIdentifier !== undefined ? `id ${s.subscriptionIdentifier}` : null].filter(Boolean).join(' · '))))
    replace(body,
      h('div', { class: 'detail-grid' },
        h('section', { class: 'card' }, h('h3', {}, 'Connection'), h('dl', { class: 'fields' },
          field('State', stateBadge(c.state)),
          field(c.state === 'offline' ? 'Owner' : 'Username', c.username ?? '—'),
          c.state === 'offline' ? null : field('Protocol', c.protocol ? `MQTT ${c.protocol}` : '—'),
          c.state === 'offline' ? null : field('Transport', c.transport ?? '—'),
          c.state === 'offline' ? null : field('Address', c.remoteAddress ?? '—'),
          c.state === 'offline' ? null : field('Clean start', c.cleanStart ? 'yes' : 'no (resumed session)'),
          c.state === 'offline' ? null : field('In flight', `${c.inflight} of ${c.outboundWindow}`),
          field('Queued', String(c.queued)),
          c.sessionExpiryInterval !== null ? field('Session expiry interval', c.sessionExpiryInterval === 0xFFFFFFFF ? 'never expires' : `${c.sessionExpiryInterval} s`) : null,
          c.state === 'offline' ? field('Session expires', until(c.sessionExpiresAt)) : null,
          c.willDelayUntil !== null ? field('Will published', until(c.willDelayUntil)) : null),
        session.role === 'admin' && c.state !== 'offline' ? h('div', { class: 'actions' }, h('button', { class: 'danger', id: 'disconnect', onclick: () => { disconnect().catch(showError) } }, 'Disconnect')) : null),
        h('section', { class: 'card' }, h('h3', {}, 'Will'), c.will === null
          ? h('p', { class: 'empty' }, 'No will message')
          : h('div', {}, h('dl', { class: 'fields' }, field('Topic', h('span', { class: 'mono' }, c.will.topic)), field('QoS', String(c.will.qos)), field('Retain', c.will.retain ? 'yes' : 'no'),
            c.will.delayInterval !== undefined ? field('Delay', `${c.will.delayInterval} s`) : null),
          h('pre', { class: 'payload' }, c.will.payload.preview)))),
      h('section', { class: 'card' }, h('h3', {}, `Subscriptions (${c.subscriptionList.length})`),
        h('div', { class: 'table-wrap' }, h('table', { class: 'subscriptions' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Filter'), h('th', {}, ''), h('th', { class: 'num' }, 'QoS'), h('th', {}, 'Options'))),
          h('tbody', {}, subs.length > 0 ? subs : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No subscriptions')))))))
  }
  return { el, refresh }
}
