// The scenario registry, in run order.
import { drain } from './drain.js'
import { fanIn } from './fan-in.js'
import { fanOut } from './fan-out.js'
import { idle } from './idle.js'
import { latency } from './latency.js'
import { retained } from './retained.js'
import { shared } from './shared.js'
import type { Scenario } from './types.js'
import { websocket } from './websocket.js'

export function scenarios (full: boolean): Scenario[] {
  return [
    fanIn(0),
    fanIn(1),
    fanIn(2),
    fanOut,
    latency,
    idle,
    drain,
    shared,
    retained(100_000, 20_000),
    // 1M retained messages takes minutes per broker: only on request.
    ...(full ? [retained(1_000_000, 1_000_000)] : []),
    websocket
  ]
}
