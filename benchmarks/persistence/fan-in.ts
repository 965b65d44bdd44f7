// QoS 1 fan-in through each store: PUBLISHERS publishers → 1 persistent
// (clean: false) subscriber on bench/#, so every message goes through
// subscriptionsByTopic, outgoingEnqueueCombi, outgoingUpdate and
// outgoingClearMessageId. The broker runs in its own process; rounds
// alternate the stores so machine noise hits them alike. Figures are ratios
// within one run.
//
//   npm run build && node dist/benchmarks/persistence/fan-in.js [--messages N] [--rounds R] [--fsync]
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'

const PUBLISHERS = 10
const INFLIGHT = 50
const args = process.argv.slice(2)
const argValue = (name: string, fallback: number): number => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const perPublisher = argValue('--messages', 2000)
const rounds = argValue('--rounds', 3)
const fsync = args.includes('--fsync')
const KINDS = ['aedes-memory', 'memory', 'level'] as const
type Kind = typeof KINDS[number]
const brokerScript = fileURLToPath(new URL('./broker-process.js', import.meta.url))

async function startBroker (kind: Kind, dataDir: string): Promise<{ proc: ChildProcess, url: string }> {
  const proc = spawn(process.execPath, [brokerScript, kind, dataDir, ...(fsync ? ['--fsync'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /ready (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    proc.once('exit', () => reject(new Error('broker exited')))
  })
  return { proc, url: `mqtt://127.0.0.1:${port}` }
}

async function client (url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, ...opts })
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve())
    c.once('error', reject)
  })
  return c
}

async function round (kind: Kind): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'culex-bench-'))
  const broker = await startBroker(kind, dir)
  try {
    const total = PUBLISHERS * perPublisher
    const sub = await client(broker.url, { clientId: 'bench-sub', clean: false, properties: { sessionExpiryInterval: 300 } })
    await sub.subscribeAsync('bench/#', { qos: 1 })
    let received = 0
    const done = new Promise<void>((resolve) => {
      sub.on('message', () => { if (++received === total) resolve() })
    })
    const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => client(broker.url, { clientId: `bench-pub-${i}` })))
    const payload = Buffer.alloc(64, 1)
    const started = process.hrtime.bigint()
    await Promise.all(pubs.map((pub, i) => new Promise<void>((resolve) => {
      let sent = 0
      let acked = 0
      const send = (): void => {
        if (sent >= perPublisher) return
        sent++
        pub.publish(`bench/${i}`, payload, { qos: 1, properties: { userProperties: { i: String(i) } } }, () => {
          if (++acked === perPublisher) resolve()
          else send()
        })
      }
      for (let k = 0; k < INFLIGHT; k++) send()
    })))
    await done
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    for (const c of [sub, ...pubs]) c.end(true)
    return total / seconds
  } finally {
    broker.proc.kill('SIGTERM')
    await once(broker.proc, 'exit')
    rmSync(dir, { recursive: true, force: true })
  }
}

const results = new Map<Kind, number[]>(KINDS.map((k) => [k, []]))
for (let r = 0; r < rounds; r++) {
  for (const kind of KINDS) results.get(kind)?.push(await round(kind))
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
const base = median(results.get('memory') ?? [])
console.log(`QoS 1 fan-in, ${PUBLISHERS} publishers x ${perPublisher} messages, 1 persistent subscriber, ${rounds} rounds${fsync ? ', level fsync on' : ''}`)
for (const kind of KINDS) {
  const m = median(results.get(kind) ?? [])
  console.log(`${kind.padEnd(13)} median ${m.toFixed(0).padStart(7)} msg/s   ${(m / base).toFixed(2)}x culex memory   rounds: ${(results.get(kind) ?? []).map((x) => x.toFixed(0)).join(', ')}`)
}
