// Idle connections: open many silent MQTT connections (CONNECT, wait for
// CONNACK) and report the broker's RSS growth per connection and the
// connects it completes per CPU-second. The first tenth is a warm-up held
// open outside the window; both figures cover the remaining nine tenths.
import { runIdleJob } from '../lib/loadgen-client.js'
import { fdLimits } from '../lib/processes.js'
import { cpuNote, endingNotes, mqtt5Broker, perCpuSecond, perWallSecond, sized } from './common.js'
import { targetFor, type Scenario } from './types.js'

/** Descriptors kept free for everything that is not an idle connection. */
const FD_HEADROOM = 256

export const idle: Scenario = {
  id: 'idle-connections',
  title: 'idle connections: broker memory and connect cost',
  metrics: [
    { key: 'kibPerConn', label: 'RSS per idle connection', unit: 'KiB', better: 'lower' },
    { key: 'connectsPerCpu', label: 'connects per broker CPU-s', unit: 'conn/cpu-s', better: 'higher' },
    { key: 'connectsPerWall', label: 'connects per wall s', unit: 'conn/s', better: 'higher' }
  ],
  needsWebsocket: false,
  applicable: mqtt5Broker,
  run: async (context) => {
    const { settings } = context
    const wanted = sized(settings, 10_000, 2_000)
    // Both the broker and the load generator hold one descriptor per
    // connection; both are started with this limit (see lib/processes.ts).
    const limit = Math.min(settings.loadgen.fdLimit, fdLimits().hard)
    const connections = Math.max(1, Math.min(wanted, limit - FD_HEADROOM))
    const notes = connections < wanted ? [`reduced to ${connections} connections: open-file limit is ${limit} (raise ulimit -n)`] : []
    const result = await runIdleJob({
      kind: 'idle',
      target: targetFor(context),
      connections,
      concurrency: 100,
      timeoutMs: sized(settings, 120_000, 60_000)
    }, settings.loadgen)
    const grownKiB = result.rssIdleKiB - result.window.rssStartKiB
    return {
      values: {
        kibPerConn: result.opened > 0 ? grownKiB / result.opened : null,
        connectsPerCpu: perCpuSecond(result.opened, result.window),
        connectsPerWall: perWallSecond(result.opened, result.window)
      },
      integrity: null,
      notes: [
        ...notes,
        ...(result.failed > 0 ? [`${result.failed} of ${result.requested} measured connections failed`] : []),
        ...endingNotes(result),
        ...cpuNote(result.window)
      ],
      raw: [result]
    }
  }
}
