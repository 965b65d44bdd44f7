import { h, replace, bytes, confirmAction, showError } from './dom.js'
import { api, q } from './api.js'
import { pager } from './table.js'

const LIMIT = 100

/** The retained topic tree, one level at a time; `parent` is the level shown ('' = the root). */
export function topicsPage (parent, session) {
  let page = 1
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'topic path' })
  const list = h('div', { class: 'tree' })
  const pages = pager((d) => { page += d; refresh() })
  const note = h('p', { class: 'note' })
  const el = h('div', { class: 'page topics' },
    h('div', { class: 'page-head' }, h('h2', {}, 'Topics'), h('span', { class: 'sub' }, 'retained messages, level by level')),
    h('section', { class: 'card' }, crumbs, list, note, pages.el))

  const levelHref = (topic) => '#/topics/' + encodeURIComponent(topic)
  const levels = parent === '' ? [] : parent.split('/')
  replace(crumbs, h('a', { href: '#/topics' }, 'root'),
    levels.map((name, i) => [h('span', { class: 'sep' }, '/'), h('a', { href: levelHref(levels.slice(0, i + 1).join('/')) }, name === '' ? '(empty)' : name)]))

  async function remove (topic) {
    if (!await confirmAction('Delete retained message?', `The message retained on ${topic} will be deleted. New subscribers will no longer receive it.`, 'Delete')) return
    await api.del('retained' + q({ topic }))
    await refresh()
  }

  function node (n) {
    const name = n.name === '' ? '(empty)' : n.name
    const title = n.descendants > 0 ? h('a', { href: levelHref(n.topic), class: 'node-name' }, name, h('span', { class: 'chev' }, ' ›')) : h('span', { class: 'node-name' }, name)
    const meta = h('span', { class: 'node-meta' }, n.descendants > 0 ? `${n.descendants} below` : '')
    const value = n.message === null
      ? null
      : h('div', { class: 'retained' },
        h('div', { class: 'retained-head' },
          h('span', { class: 'badge format' }, n.message.payload.format),
          h('span', {}, `QoS ${n.message.qos} · ${bytes(n.message.payload.bytes)}${n.message.payload.truncated ? ' · preview truncated' : ''}`),
          session.role === 'admin' ? h('button', { class: 'danger small', dataset: { topic: n.topic }, onclick: () => { remove(n.topic).catch(showError) } }, 'Delete') : null),
        h('pre', { class: 'payload' }, n.message.payload.preview))
    return h('div', { class: 'node', dataset: { topic: n.topic } }, h('div', { class: 'node-line' }, title, h('span', { class: 'mono topic' }, n.topic), meta), value)
  }

  async function refresh () {
    const res = await api.get('retained' + q({ parent, page, limit: LIMIT }))
    if (res.data.length === 0) replace(list, h('p', { class: 'empty' }, 'No retained messages here'))
    else replace(list, res.data.map(node))
    note.textContent = res.meta.truncated ? 'Only the first 100,000 retained messages were looked at: counts are lower bounds.' : ''
    pages.set(res.meta, res.data.length)
  }
  return { el, refresh }
}
