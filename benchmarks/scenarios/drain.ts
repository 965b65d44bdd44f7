// Persistent-session drain: 1000 offline sessions (MQTT 3.1.1, clean=false,
// so aedes 1.x can take part) each with 10 queued QoS 1 messages; everyone
// reconnects and the figure is messages delivered per broker CPU-second over
// the reconnect-and-drain window only.
import { runDrainJob } from '../lib/loadgen-client.js'
import { cpuNote, endingNotes, integrityCounts, perCpuSecond, perWallSecond, sized } from './common.js'
import { targetFor, type Scenario } from './types.js'

const MESSAGES_PER_SESSION = 10

export const drain: Scenario = {
  id: 'session-drain',
  title: `persistent-session drain: offline sessions × ${MESSAGES_PER_SESSION} queued QoS 1 messages, then reconnect`,
  metrics: [
    { key: 'perCpu', label: 'drained msgs per broker CPU-s', unit: 'msg/cpu-s', better: 'higher' },
    { key: 'perWall', label: 'drained msgs per wall s', unit: 'msg/s', better: 'higher' },
    { key: 'wallMs', label: 'drain time', unit: 'ms', better: 'lower' }
  ],
  needsWebsocket: false,
  applicable: () => null,
  run: async (context) => {
    const { settings } = context
    const sessions = sized(settings, 1000, 500)
    const result = await runDrainJob({
      kind: 'drain',
      // 3.1.1 for every broker: the comparison point (aedes 1.2.0) has no MQTT 5.
      target: targetFor(context, 4),
      sessions,
      messagesPerSession: MESSAGES_PER_SESSION,
      payloadBytes: 64,
      concurrency: 100,
      timeoutMs: sized(settings, 60_000, 30_000),
      stallMs: 3_000
    }, settings.loadgen)
    const notes = [...endingNotes(result), ...cpuNote(result.window)]
    if (result.sessionsPresent < sessions) notes.push(`${sessions - result.sessionsPresent} reconnects had no session`)
    return {
      values: {
        perCpu: perCpuSecond(result.integrity.unique, result.window),
        perWall: perWallSecond(result.integrity.unique, result.window),
        wallMs: result.integrity.lost === 0 ? result.window.wallMs : null
      },
      integrity: integrityCounts(result.integrity),
      notes,
      raw: [result]
    }
  }
}
