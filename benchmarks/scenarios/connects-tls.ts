// TLS connects: the idle-connections load over MQTT over TLS. Every broker
// gets the run's certificate, and the load generator offers exactly one
// version, cipher suite and key exchange group (lib/tls-setup.ts), so each
// connect costs every broker the same handshake; the figure is connects
// (TLS handshake, CONNECT, CONNACK) per broker CPU-second.
import { runIdleJob } from '../lib/loadgen-client.js'
import { clientSettings, TLS_PIN } from '../lib/tls-setup.js'
import type { IdleResult, NegotiatedTls } from '../loadgen/jobs.js'
import { cpuNote, endingNotes, perCpuSecond, perWallSecond, sized } from './common.js'
import { targetFor, type Outcome, type Scenario } from './types.js'

const describe = (n: NegotiatedTls): string => `${n.protocol} ${n.cipher} ${n.group ?? 'no group'}`

export function holdsPin (n: NegotiatedTls): boolean {
  return n.protocol === TLS_PIN.version && n.cipher === TLS_PIN.cipher && n.group === TLS_PIN.group
}

/** Figures of one run; none at all when a handshake negotiated something other than the pin. */
export function tlsOutcome (result: IdleResult): Outcome {
  const negotiated = result.negotiated ?? []
  const pinned = negotiated.length > 0 && negotiated.every(holdsPin)
  const grownKiB = result.rssIdleKiB - result.window.rssStartKiB
  const notes = [
    ...(pinned ? [`every handshake: ${negotiated.map(describe).join(', ')}`] : []),
    ...(negotiated.length === 0 ? ['no TLS handshake completed'] : []),
    ...(pinned ? [] : negotiated.filter((n) => !holdsPin(n)).map((n) => `negotiated ${describe(n)}, not the pinned suite: no figures`)),
    ...(result.failed > 0 ? [`${result.failed} of ${result.requested} measured connections failed`] : []),
    ...endingNotes(result),
    ...cpuNote(result.window)
  ]
  return {
    values: {
      connectsPerCpu: pinned ? perCpuSecond(result.opened, result.window) : null,
      connectsPerWall: pinned ? perWallSecond(result.opened, result.window) : null,
      wallMs: pinned && result.failed === 0 ? result.window.wallMs : null,
      kibPerConn: pinned && result.opened > 0 ? grownKiB / result.opened : null
    },
    integrity: null,
    notes,
    raw: [result]
  }
}

export const connectsTls: Scenario = {
  id: 'connects-tls',
  title: `TLS connects: ${TLS_PIN.version} ${TLS_PIN.cipher} over ${TLS_PIN.group}, RSA 2048 certificate, no session resumption`,
  metrics: [
    { key: 'connectsPerCpu', label: 'TLS connects per broker CPU-s', unit: 'conn/cpu-s', better: 'higher' },
    { key: 'connectsPerWall', label: 'TLS connects per wall s', unit: 'conn/s', better: 'higher' },
    { key: 'wallMs', label: 'time to open the measured set', unit: 'ms', better: 'lower' },
    { key: 'kibPerConn', label: 'RSS per idle TLS connection', unit: 'KiB', better: 'lower' }
  ],
  needsWebsocket: false,
  needsTls: true,
  applicable: (runner) => runner.features.tls === true ? null : 'no TLS listener in this broker runner',
  run: async (context) => {
    const { settings } = context
    if (settings.tls === undefined) throw new Error('the harness made no certificate for this run')
    const result = await runIdleJob({
      kind: 'idle',
      target: targetFor(context),
      connections: sized(settings, 10_000, 2_000),
      concurrency: 100,
      timeoutMs: sized(settings, 180_000, 60_000),
      tls: clientSettings(settings.tls)
    }, settings.loadgen)
    return tlsOutcome(result)
  }
}
