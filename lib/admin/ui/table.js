import { h, replace } from './dom.js'

/** A table whose body is rebuilt from rows; columns: [{ label, cell(row) -> text | Node, class }] */
export function dataTable (columns, empty) {
  const body = h('tbody')
  const el = h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, columns.map(c => h('th', { class: c.class }, c.label)))), body))
  return {
    el,
    set (rows, rowAttrs = () => ({})) {
      if (rows.length === 0) replace(body, h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, empty)))
      else replace(body, rows.map(r => h('tr', rowAttrs(r), columns.map(c => h('td', { class: c.class }, c.cell(r))))))
    }
  }
}

/** Previous / next and "a–b of n" for a `{data, meta}` list. */
export function pager (onPage) {
  const info = h('span', { class: 'pager-info' })
  const prev = h('button', { class: 'secondary small', onclick: () => onPage(-1) }, '‹ Prev')
  const next = h('button', { class: 'secondary small', onclick: () => onPage(1) }, 'Next ›')
  const el = h('div', { class: 'pager' }, prev, info, next)
  return {
    el,
    set (meta, shown) {
      const from = meta.count === 0 ? 0 : (meta.page - 1) * meta.limit + 1
      info.textContent = `${from}–${from + shown - (shown > 0 ? 1 : 0)} of ${meta.count}`
      prev.disabled = meta.page <= 1
      next.disabled = !meta.hasnext
    }
  }
}
