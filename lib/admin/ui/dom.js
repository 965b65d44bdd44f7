// Elements built from data: strings only ever become text nodes, never HTML.

export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value)
    else if (key === 'class') el.className = value
    else if (key === 'dataset') Object.assign(el.dataset, value)
    else if (key === 'value') el.value = value
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else if (child instanceof Node) el.appendChild(child)
    else el.appendChild(document.createTextNode(String(child)))
  }
}

export function clear (el) {
  while (el.firstChild) el.removeChild(el.firstChild)
  return el
}

export function replace (el, ...children) {
  clear(el)
  append(el, children)
  return el
}

const units = ['', 'k', 'M', 'G', 'T']
export function count (n) {
  if (n === null || n === undefined) return '—'
  if (Math.abs(n) < 1000) return String(Math.round(n * 10) / 10)
  let i = 0
  let v = n
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++ }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[i]}`
}

export function bytes (n) {
  if (n === null || n === undefined) return '—'
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++ }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`
}

export function duration (s) {
  const d = Math.floor(s / 86400); const hh = Math.floor(s % 86400 / 3600); const m = Math.floor(s % 3600 / 60)
  if (d > 0) return `${d}d ${hh}h`
  if (hh > 0) return `${hh}h ${m}m`
  return `${m}m ${s % 60}s`
}

/** a deadline (ms since the epoch) as "in 4m 59s" and the local time; null: never */
export function until (ms, withDate = true) {
  if (ms === null || ms === undefined) return 'never'
  const left = Math.max(0, Math.round((ms - Date.now()) / 1000))
  return withDate ? `in ${duration(left)} (${new Date(ms).toLocaleString()})` : `in ${duration(left)}`
}

/** an action that failed, in the error bar under the header */
export function showError (err) {
  const bar = document.getElementById('error-bar')
  if (bar) bar.textContent = err instanceof Error ? err.message : String(err)
}

/** Asks in a modal dialog; resolves true when confirmed. */
export function confirmAction (title, text, okLabel) {
  const dialog = document.getElementById('confirm')
  document.getElementById('confirm-title').textContent = title
  document.getElementById('confirm-text').textContent = text
  document.getElementById('confirm-ok').textContent = okLabel
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true })
    dialog.showModal()
  })
}
