import t from 'tap'
import { loadStaticFiles, uiDirectory } from '../../lib/admin/static.js'

t.test('the page, its modules and uPlot; nothing else', async (t) => {
  const files = loadStaticFiles(uiDirectory())
  for (const name of ['index.html', 'app.js', 'style.css', 'vendor/uPlot.esm.js', 'vendor/uPlot.min.css']) t.ok(files.has(name), name)
  t.match(files.get('index.html')?.type, /^text\/html/)
  t.match(files.get('app.js')?.type, /^text\/javascript/)
  t.match(files.get('index.html')?.etag, /^"[A-Za-z0-9_-]{22}"$/)
  const html = files.get('index.html')?.body.toString() ?? ''
  t.notMatch(html, /<script>(?!<)|<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script')
  t.notMatch(html, /\sstyle=|<style/, 'no inline style')
  t.notMatch(html, /https?:\/\//, 'nothing from elsewhere')
  for (const [name, f] of files) {
    if (!name.endsWith('.js') || name.startsWith('vendor/')) continue
    t.notMatch(f.body.toString(), /innerHTML|outerHTML|insertAdjacentHTML|document\.write|localStorage|sessionStorage|eval\(/, `${name}: text only, nothing in web storage`)
  }
})
