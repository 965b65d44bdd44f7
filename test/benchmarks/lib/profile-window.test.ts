/**
 * Cutting a V8 CPU profile to a measured window: only samples inside it
 * count, self time is attributed by function and by where the code lives.
 */
import t from 'tap'
import { placeOf, profileWindow, type CpuProfile } from '../../../benchmarks/profile-window.js'

const frame = (functionName: string, url: string, lineNumber = 0): { functionName: string, url: string, lineNumber: number } => ({ functionName, url, lineNumber })

const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', '') },
    { id: 2, callFrame: frame('(idle)', '') },
    { id: 3, callFrame: frame('handle', 'file:///repo/node_modules/aedes/lib/handlers/connect.js', 9) },
    { id: 4, callFrame: frame('(garbage collector)', '') },
    { id: 5, callFrame: frame('onConnect', 'file:///repo/dist/lib/broker/sessions.js', 41) }
  ],
  startTime: 1000,
  // samples at 1100, 1200, ... 1800 µs
  samples: [3, 3, 2, 5, 4, 3, 2, 3],
  timeDeltas: [100, 100, 100, 100, 100, 100, 100, 100]
}

t.test('only samples inside the window count', async (t) => {
  const all = profileWindow(profile, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, 10)
  t.equal(all.samples, 8)
  t.equal(all.busy, 6 / 8)
  t.equal(all.spanMs, 0.7)
  const cut = profileWindow(profile, 1250, 1550, 10)
  t.equal(cut.samples, 3, '1300, 1400, 1500')
  t.same(cut.places.map((p) => [p.name, p.samples]).sort(), [['(garbage collector)', 1], ['(idle)', 1], ['culex lib/broker', 1]])
})

t.test('functions ranked by self time, as fractions of the window', async (t) => {
  const all = profileWindow(profile, 0, 1e9, 2)
  t.same(all.functions.map((f) => f.name), ['handle aedes/lib/handlers/connect.js:10', '(idle)'])
  t.equal(all.functions[0]?.fraction, 4 / 8)
  t.equal(all.places[0]?.name, 'aedes')
  t.same(profileWindow(profile, 5000, 6000, 5).functions, [], 'an empty window')
})

t.test('placeOf names packages, Node internals and culex modules', async (t) => {
  t.equal(placeOf(frame('x', 'file:///r/node_modules/@scope/pkg/a.js')), '@scope/pkg')
  t.equal(placeOf(frame('x', 'node:internal/tls/wrap')), 'node internals')
  t.equal(placeOf(frame('x', 'file:///r/dist/lib/transports/tcp.js')), 'culex lib/transports')
  t.equal(placeOf(frame('', '')), '(native)')
  t.equal(placeOf(frame('(program)', '')), '(program)')
})
