// The dashboard: a login form, then pages chosen by the URL hash, refreshed from the API every 1.5 s.
import { h, replace } from './dom.js'
import { api, ApiError } from './api.js'
import { overviewPage } from './overview.js'
import { clientsPage, clientPage } from './clients.js'
import { topicsPage } from './topics.js'
import { groupsPage } from './groups.js'

const POLL_MS = 1500
const app = document.getElementById('app')
let session
let current
let timer

function loginView (message) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true })
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const error = h('p', { class: 'login-error', role: 'alert' }, message ?? '')
  const button = h('button', { type: 'submit' }, 'Log in')
  const form = h('form', {
    class: 'card login',
    onsubmit: async (e) => {
      e.preventDefault()
      button.disabled = true
      error.textContent = ''
      try {
        session = await api.login(user.value, pass.value)
        shell()
      } catch (err) {
        error.textContent = err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : `Login failed: ${err.message}`
        button.disabled = false
      }
    }
  },
  h('div', { class: 'brand big' }, h('span', { class: 'logo' }, '◆'), ' culex'),
  h('p', { class: 'sub' }, 'Sign in with a user of the broker\'s password file.'),
  h('label', {}, 'User name', user),
  h('label', {}, 'Password', pass),
  button, error)
  replace(app, h('div', { class: 'login-wrap' }, form))
  user.focus()
}

const NAV = [['overview', 'Overview'], ['clients', 'Clients'], ['topics', 'Topics'], ['groups', 'Shared groups']]

function shell () {
  const nav = h('nav', { class: 'nav' }, NAV.map(([id, label]) => h('a', { href: '#/' + id, dataset: { page: id } }, label)))
  const who = h('span', { class: 'who' }, session.username, h('span', { class: 'badge role' }, session.role))
  const logout = h('button', {
    class: 'secondary small',
    id: 'logout',
    onclick: async () => {
      try { await api.logout() } catch {}
      stop()
      session = undefined
      loginView('You are logged out.')
    }
  }, 'Log out')
  const main = h('main', { id: 'view' })
  replace(app,
    h('header', { class: 'top' }, h('div', { class: 'brand' }, h('span', { class: 'logo' }, '◆'), ' culex'), nav, h('div', { class: 'user' }, who, logout)),
    h('div', { id: 'error-bar', role: 'status' }),
    main)
  window.onhashchange = () => route(main, nav)
  route(main, nav)
}

function parseHash () {
  const [, page = 'overview', ...rest] = location.hash.split('/')
  return { page, arg: rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined }
}

function route (main, nav) {
  stop()
  current?.destroy?.()
  const { page, arg } = parseHash()
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === page)
  if (page === 'clients' && arg !== undefined) current = clientPage(arg, session)
  else if (page === 'clients') current = clientsPage()
  else if (page === 'topics') current = topicsPage(arg ?? '', session)
  else if (page === 'groups') current = groupsPage()
  else current = overviewPage()
  replace(main, current.el)
  poll()
}

function stop () {
  clearTimeout(timer)
  timer = undefined
}

async function poll () {
  const page = current
  const started = Date.now()
  const bar = document.getElementById('error-bar')
  try {
    await page.refresh()
    if (bar) bar.textContent = ''
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      stop()
      session = undefined
      loginView('Your session ended. Please log in again.')
      return
    }
    if (bar) bar.textContent = `Could not refresh: ${err.message}`
  }
  if (page === current && session !== undefined) timer = setTimeout(poll, Math.max(200, POLL_MS - (Date.now() - started)))
}

async function boot () {
  try {
    session = await api.session()
    shell()
  } catch (err) {
    loginView(err instanceof ApiError && err.status === 401 ? '' : `The broker did not answer: ${err.message}`)
  }
}

boot()
