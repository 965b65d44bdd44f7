/**
 * The gateway fuzzer. A culex child process (so that a crash is a crash, not
 * an exception a handler swallows) gets connections whose scripts come from
 * test/helpers/fuzz/arbitraries.ts: MQTT 5, 3.1.1 and 3.1 packets of every type with
 * repeated and omitted properties, omitted fields, zero and extreme values,
 * ill-formed UTF-8, wrong flags, lying Remaining Lengths and cuts; sent
 * before or after the CONNACK, split at random bytes, the connection closed
 * at a random point, often right after a bad packet and before its answer.
 * Batches of connections run at once; around each batch, two well-behaved
 * clients (MQTT.js 5 and 3.1.1) must get their own QoS 1 messages back
 * within a bound. A batch that kills the broker, stalls those clients or
 * gets any packet but CONNACK (or AUTH) first fails the property; the connection that fails alone is then found,
 * shrunk (test/helpers/fuzz/shrink.ts) and printed in hex. After the campaign: no
 * leaked connection, no retained message on a topic that is not a valid
 * Topic Name.
 *
 * A second campaign runs the same way against culex with a password file
 * and an ACL (test/helpers/fuzz/arbitraries.ts credentialScript): CONNECTs with the
 * right password most of the time, a wrong one or none sometimes, SCRAM-SHA-256
 * over AUTH on MQTT 5, each connection from its own loopback source address
 * (the login slow-down is per address). A refused CONNECT must be answered by
 * its CONNACK alone, and nothing a refused connection published may reach
 * the subscriber on `#` [MQTT-3.1.4-6].
 *
 * CULEX_FUZZ_RUNS inputs over both campaigns, three in ten with credentials (default 1000; `npm run fuzz` uses 100000),
 * CULEX_FUZZ_BATCH connections at once (default 100),
 * CULEX_FUZZ_SEED replays, CULEX_FUZZ_SHRINK_MS bounds the shrinking.
 * The inputs found earlier stay below as plain regression cases.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { join } from 'node:path'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient } from '../../helpers/mqtt.js'
import { RawClient } from '../../helpers/raw.js'
import { startCulex, within, type CulexProcess } from '../../helpers/cli.js'
import { tempDir, uniqueId, writeFile } from '../../helpers/security.js'
import { FUZZ_PASSWORD, FUZZ_USER, REFUSED_PREFIX, credentialScript, describeScript, refusedLogin, script, scriptBytes, type Script } from '../../helpers/fuzz/arbitraries.js'
import { clientFinal, clientFirst } from '../../helpers/scram-client.js'
import { hashPassword, writePasswordFile } from '../../../lib/auth/password-file.js'
import { shrink } from '../../helpers/fuzz/shrink.js'
import { sleep, waitFor } from '../../helpers/wait.js'

const RUNS = Math.max(1, Number(process.env.CULEX_FUZZ_RUNS ?? 1000))
const BATCH = Math.max(1, Number(process.env.CULEX_FUZZ_BATCH ?? 100))
const SEED = process.env.CULEX_FUZZ_SEED !== undefined ? Number(process.env.CULEX_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31)
/** a well-behaved client's QoS 1 round trip must take less than this */
const ROUND_TRIP_MS = 5000
/** time given to fast-check to shrink a failure */
const SHRINK_MS = Number(process.env.CULEX_FUZZ_SHRINK_MS ?? 60_000)

t.setTimeout(Math.max(120_000, RUNS * 20 + SHRINK_MS * 2))

let uncaught = 0
let unhandled = 0
const onUncaught = (err: Error): void => { if (uncaught++ < 2) t.comment(`uncaughtException: ${err.stack ?? err.message}`) }
const onUnhandled = (reason: unknown): void => { if (unhandled++ < 2) t.comment(`unhandledRejection: ${String((reason as Error)?.stack ?? reason)}`) }
process.on('uncaughtException', onUncaught)
process.on('unhandledRejection', onUnhandled)
t.teardown(() => {
  process.off('uncaughtException', onUncaught)
  process.off('unhandledRejection', onUnhandled)
})

/**
 * Inputs the fuzzer found, kept as plain regression cases: a few bytes after
 * a CONNECT, answered by closing that one connection (v5: DISCONNECT
 * 0x81 / 0x82 first), never by an exception.
 */
const FOUND: Array<{ name: string, hex: string, codes: number[] }> = [
  ...(['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'] as const).flatMap((name, i) => {
    const first = [0x40, 0x50, 0x62, 0x70][i] as number
    return [
      { name: `${name} with Remaining Length 0`, hex: Buffer.from([first, 0]).toString('hex'), codes: [0x81] },
      { name: `${name} with Remaining Length 1`, hex: Buffer.from([first, 1, 0]).toString('hex'), codes: [0x81] }
    ]
  }),
  // [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0): a SUBSCRIBE without a Topic Filter is a Protocol Error
  { name: 'SUBSCRIBE without any Topic Filter', hex: '82020001', codes: [0x81, 0x82] }
]

t.test('inputs found by fuzzing close their connection and nothing else', async (t) => {
  const server = await startTestServer(t, {})
  const port = tcpPort(server)
  const good: MqttClient = await connectClient(t, tcpUrl(server), { protocolVersion: 5, clientId: uniqueId('good') })
  for (const c of FOUND) {
    for (const version of [4, 5] as const) {
      await t.test(`v${version}: ${c.name} (${c.hex})`, async (t) => {
        const before = uncaught + unhandled
        const raw = await RawClient.connect(port, version, { clientId: uniqueId('found') })
        t.teardown(() => raw.destroy())
        // a v5 SUBSCRIBE has a Property Length byte after the packet id
        const hex = version === 5 && c.hex === '82020001' ? '8203000100' : c.hex
        raw.sendRaw(Buffer.from(hex, 'hex'))
        if (version === 5) {
          const d = await raw.next('disconnect', 800).catch(() => undefined) as { reasonCode?: number } | undefined
          t.ok(d !== undefined && c.codes.includes(d.reasonCode ?? 0), `DISCONNECT ${c.codes.map(x => '0x' + x.toString(16)).join(' or ')} (got ${d === undefined ? 'none' : '0x' + (d.reasonCode ?? 0).toString(16)})`)
        }
        await raw.waitClose(800).catch(() => {})
        t.ok(raw.closed, 'the connection is closed')
        await sleep(20)
        t.equal(uncaught + unhandled, before, 'no exception escaped the gateway')
      })
    }
  }
  await t.test('before authentication: CONNECT with a bad password and a short PUBACK in one write', async (t) => {
    const before = uncaught + unhandled
    const raw = await RawClient.open(port, 4)
    t.teardown(() => raw.destroy())
    raw.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId('pre'), clean: true, keepalive: 30, username: 'x', password: Buffer.from('y') }, { protocolVersion: 4 }),
      Buffer.from('4000', 'hex')
    ]))
    await raw.waitClose(800).catch(() => {})
    await sleep(20)
    t.equal(uncaught + unhandled, before, 'no exception escaped the gateway')
    t.ok(raw.closed, 'the connection is closed')
  })
  t.ok(good.connected, 'the well-behaved client stayed connected')
})

t.test('the culex process survives a PUBACK with Remaining Length 0', async (t) => {
  const culex = await startCulex(['--port', 'auto', '--ws-port', '0', '--persistence', 'memory'])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const raw = await RawClient.connect(culex.port, 4, { clientId: uniqueId('kill') })
  t.teardown(() => raw.destroy())
  raw.sendRaw(Buffer.from('4000', 'hex'))
  const exited = await Promise.race([culex.exit.then(e => e), new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), 1000))])
  t.equal(exited, undefined, `the broker process is still running (${exited === undefined ? 'alive' : `exited with ${exited.code ?? exited.signal}: ${culex.stderr().split('\n').find(l => l.includes('Error')) ?? ''}`})`)
  if (exited === undefined) {
    const c = await connectClient(t, culex.url, { protocolVersion: 5 })
    t.ok(c.connected, 'and serves new clients')
  }
})


/** Figures of the campaign, printed at the end. */
const stats = { inputs: 0, connections: 0, bytes: 0, batches: 0, restarts: 0, accepted: 0, refused: 0, scramAccepted: 0 }

/** Writes `bytes` split at `splits`, a turn of the event loop between pieces so that they travel apart. */
async function writeSplit (socket: net.Socket, bytes: Buffer, splits: readonly number[]): Promise<void> {
  let from = 0
  for (const at of [...new Set(splits.filter(x => x > 0 && x < bytes.length))].sort((x, y) => x - y)) {
    socket.write(bytes.subarray(from, at))
    from = at
    await new Promise(resolve => setImmediate(resolve))
    if (socket.destroyed) return
  }
  socket.write(bytes.subarray(from))
}

/** What the broker did on one connection: when it closed, and every byte it sent. */
interface Outcome { closedAt: number, received: Buffer }

/**
 * A SCRAM-SHA-256 CONNECT (MQTT 5, client-first in Authentication Data),
 * the client-final to answer the server's AUTH with, right or wrong.
 */
function scramConnect (s: Script): { connect: Buffer, answer: (received: Buffer) => Buffer | undefined } {
  const first = clientFirst(FUZZ_USER)
  const clientId = uniqueId('fz-scram')
  const connect = mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 30,
    properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: first.message }
  }, { protocolVersion: 5 })
  const answer = (received: Buffer): Buffer | undefined => {
    let auth: mqttPacket.IAuthPacket | undefined
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: mqttPacket.Packet) => { if (p.cmd === 'auth' && auth === undefined) auth = p })
    parser.on('error', () => {})
    parser.parse(received)
    const serverFirst = auth?.properties?.authenticationData
    if (serverFirst === undefined) return undefined
    const final = clientFinal(first, serverFirst, s.login === 'scram' ? FUZZ_PASSWORD : 'not the password')
    return mqttPacket.generate({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: final.message } }, { protocolVersion: 5 })
  }
  return { connect, answer }
}

/** Runs one connection's script (from `localAddress`, a loopback address); resolves once its socket is closed (at most about 2 s later). */
function runScript (port: number, s: Script, localAddress = '127.0.0.1'): Promise<Outcome> {
  const scram = s.login === 'scram' || s.login === 'scram-wrong' ? scramConnect(s) : undefined
  const { rest } = scriptBytes(s)
  const connect = scram?.connect ?? scriptBytes(s).connect
  stats.connections++
  stats.bytes += connect.length + rest.length
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress })
    const hard = setTimeout(() => socket.destroy(), 2000)
    socket.on('error', () => {})
    const received: Buffer[] = []
    let answered = (): void => {}
    socket.on('data', (d: Buffer) => { received.push(d); answered() })
    socket.on('close', () => { clearTimeout(hard); resolve({ closedAt: Date.now(), received: Buffer.concat(received) }) })
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    /** the next data from the broker, or its close: taken before the write it answers */
    const answer = (): Promise<void> => Promise.race([closed, new Promise<void>((resolve) => { answered = resolve })])
    const upTo = (ms: number, what: Promise<void>): Promise<unknown> => Promise.race([what, sleep(ms)])
    socket.once('connect', () => {
      void (async () => {
        if (s.sameWrite || s.connect === undefined) {
          await writeSplit(socket, Buffer.concat([connect, rest]), s.splits)
        } else {
          const connack = answer()
          await writeSplit(socket, connect, s.splits)
          await upTo(200, connack)
          if (scram !== undefined) {
            const final = scram.answer(Buffer.concat(received))
            if (final !== undefined && !socket.destroyed) {
              const next = answer()
              socket.write(final)
              await upTo(200, next)
            }
          }
          if (socket.destroyed) return
          await writeSplit(socket, rest, s.splits.map(x => x - connect.length))
        }
        if (s.delay > 0) await sleep(s.delay)
        if (s.close === 'destroy') { socket.destroy(); return }
        if (s.close === 'end') socket.end()
        // the broker answers, and closes on our FIN or after a bad packet; a connection it keeps open is closed here
        await upTo(150, closed)
        socket.destroy()
      })()
    })
  })
}

/**
 * What a connection got, checked against [MQTT-3.2.0-1] (CONNACK first,
 * AUTH allowed before it, spec 4.12) and, when the CONNACK refused the
 * connection, spec 3.1.4 [MQTT-3.1.4-6]: nothing the client sent after it is
 * processed, so nothing but the CONNACK is answered. Returns the violation.
 */
function answerProblem (received: Buffer): string | undefined {
  let at = 0
  while (at < received.length) {
    const type = (received[at] as number) >> 4
    let length = 0
    let mul = 1
    let i = at + 1
    for (; i < received.length && i < at + 5; i++) {
      const byte = received[i] as number
      length += (byte & 0x7f) * mul
      mul *= 128
      if ((byte & 0x80) === 0) break
    }
    const end = i + 1 + length
    if (type === 15) { at = end; continue }
    if (type !== 2) return `the first packet the broker sent was of type ${type}, not CONNACK [MQTT-3.2.0-1]`
    const code = received[i + 2]
    if (code === 0) stats.accepted++
    else if (code !== undefined) stats.refused++
    if (code === undefined || code === 0) return undefined
    if (received.length > end) {
      return `after a CONNACK refusing the connection (0x${code.toString(16)}) the broker sent ${received.length - end} more bytes (type ${(received[end] as number) >> 4}) [MQTT-3.1.4-6]`
    }
    return undefined
  }
  return undefined
}

/** The loopback source addresses of the credentials campaign: one per connection, so that the login slow-down (per address, lib/auth/rate-limit.ts) never delays the run. */
let sources = 0
function nextLoopback (): string {
  const n = sources++
  return `127.${1 + Math.floor(n / (254 * 254)) % 250}.${1 + Math.floor(n / 254) % 254}.${1 + n % 254}`
}

/** A well-behaved client that sends itself QoS 1 messages and times each round trip. */
class WellBehaved {
  trips = 0
  worst = 0
  private sent = 0
  private readonly waiting = new Map<string, () => void>()

  constructor (readonly client: MqttClient, readonly topic: string, readonly label: string) {
    client.on('message', (_topic, payload) => {
      const arrived = this.waiting.get(payload.toString())
      this.waiting.delete(payload.toString())
      arrived?.()
    })
  }

  static async connect (t: Test, url: string, version: 4 | 5, creds: { username?: string, password?: string } = {}): Promise<WellBehaved> {
    const client = await connectClient(t, url, { protocolVersion: version, clientId: uniqueId(`well-behaved-v${version}`), keepalive: 10, ...creds })
    const topic = `good/${client.options.clientId ?? version}`
    await client.subscribeAsync(topic, { qos: 1 })
    return new WellBehaved(client, topic, `MQTT.js ${version === 5 ? '5' : '3.1.1'}`)
  }

  async roundTrip (): Promise<void> {
    const payload = String(++this.sent)
    const started = Date.now()
    const arrived = new Promise<void>((resolve) => this.waiting.set(payload, resolve))
    await within(Promise.all([this.client.publishAsync(this.topic, payload, { qos: 1 }), arrived]), ROUND_TRIP_MS, `${this.label}: QoS 1 round trip #${payload}`)
    this.trips++
    this.worst = Math.max(this.worst, Date.now() - started)
  }
}

/** The error line of a crashed Node.js process and its first frames. */
function crashOf (stderr: string): string {
  const lines = stderr.split('\n')
  const i = lines.findIndex(l => /^\w*Error\b/.test(l))
  return i < 0 ? stderr.slice(-300) : lines.slice(i, i + 4).map(l => l.trim()).join(' ')
}

/** A well-behaved subscriber on `#` that counts what arrives on the refused connections' topics. */
class Watcher {
  leaks: string[] = []
  constructor (readonly client: MqttClient) {
    client.on('message', (topic) => { if (topic.startsWith(REFUSED_PREFIX) && this.leaks.length < 10) this.leaks.push(topic) })
  }

  static async connect (t: Test, url: string, creds: { username: string, password: string }): Promise<Watcher> {
    const client = await connectClient(t, url, { protocolVersion: 5, clientId: uniqueId('watcher'), keepalive: 10, ...creds })
    await client.subscribeAsync('#', { qos: 1 })
    return new Watcher(client)
  }
}

/** A campaign: its share of the inputs, its broker's extra arguments and clients, its scripts. */
interface Campaign {
  name: string
  runs: number
  scripts: fc.Arbitrary<Script>
  /** arguments added to culex's (password and ACL files) */
  args: (t: Test) => Promise<string[]>
  /** the well-behaved clients' credentials */
  creds?: { username: string, password: string }
  /** a source address per connection */
  source: () => string
}

interface Broker {
  culex: CulexProcess
  /** the subscriber on `#` of the credentials campaign */
  watcher: Watcher | undefined
  port: number
  httpPort: number
  good: WellBehaved[]
  /** why the process ended, once it has */
  exit: () => string | undefined
  /** rejects with that reason when the process ends */
  died: Promise<never>
}

/** A culex child on a fresh store (a restarted broker must not trip over what killed the last one). */
async function startBroker (t: Test, c: Campaign): Promise<Broker> {
  const culex = await startCulex(['--port', 'auto', '--ws-port', 'auto', '--data-dir', tempDir(t, 'culex-fuzz-'),
    '--connect-timeout', '2', '--maximum-packet-size', '65536', '--sys-interval', '0', ...await c.args(t)])
  t.teardown(() => { culex.child.kill('SIGKILL') })
  const http = culex.logs.find(l => l.listener === 'ws')?.url
  if (typeof http !== 'string') throw new Error('culex logged no WebSocket listener')
  // the start-up lines are read: from here on the log is only drained (a campaign writes hundreds of thousands of lines)
  culex.child.stdout?.removeAllListeners('data')
  culex.child.stdout?.resume()
  let exit: string | undefined
  const died = culex.exit.then(e => {
    exit = `culex exited with ${e.code ?? e.signal}: ${crashOf(culex.stderr())}`
    throw new Error(exit)
  })
  died.catch(() => {})
  const good = [await WellBehaved.connect(t, culex.url, 5, c.creds), await WellBehaved.connect(t, culex.url, 4, c.creds)]
  const watcher = c.creds !== undefined ? await Watcher.connect(t, culex.url, c.creds) : undefined
  return { culex, watcher, port: culex.port, httpPort: Number(new URL(http).port), good, exit: () => exit, died }
}

/** Sum of a Prometheus gauge's samples. */
async function gauge (httpPort: number, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  let sum = 0
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line)
    if (m !== null && m[1] === name) sum += Number(m[3])
  }
  return sum
}

/** Retained messages, read by subscribing to `#` until none has come for 500 ms. */
async function retainedTopics (t: Test, url: string, creds: { username?: string, password?: string } = {}): Promise<string[]> {
  const client = await connectClient(t, url, { protocolVersion: 5, clientId: uniqueId('retained-reader'), ...creds })
  const topics: string[] = []
  let last = Date.now()
  client.on('message', (topic, _payload, packet) => { if (packet.retain) { topics.push(topic); last = Date.now() } })
  await client.subscribeAsync('#', { qos: 0 })
  await waitFor(() => Date.now() - last > 500, { timeout: 15000 }).catch(() => {})
  client.end(true)
  return topics
}

/** A Topic Name culex may store (spec 4.7.1, 1.5.4): not empty, no wildcard, no U+0000, nothing decoded from ill-formed UTF-8. */
const validTopicName = (topic: string): boolean => topic.length > 0 && !/[+#\u0000\ufffd]/.test(topic)

/** The campaigns' shares of the inputs: the credentials campaign gets three in ten. */
const CREDENTIAL_RUNS = Math.max(1, Math.round(RUNS * 0.3))

const ANONYMOUS: Campaign = { name: 'anonymous', runs: Math.max(1, RUNS - CREDENTIAL_RUNS), scripts: script, args: async () => [], source: () => '127.0.0.1' }

const GOOD = { username: 'good', password: 'good-pw' }
/**
 * With a password file and an ACL. The hashes are cheap (scrypt N=16, 16
 * SCRAM iterations): the campaign is about what is processed around a
 * login, not about the cost of one. The ACL lets every client, anonymous
 * ones included, write REFUSED_PREFIX topics: a PUBLISH processed behind a
 * refused CONNECT would reach the watcher.
 */
const CREDENTIALS: Campaign = {
  name: 'credentials',
  runs: CREDENTIAL_RUNS,
  scripts: credentialScript,
  creds: GOOD,
  source: nextLoopback,
  args: async (t) => {
    const dir = tempDir(t, 'culex-fuzz-auth-')
    const cheap = { scrypt: { N: 16, r: 1, p: 1 }, scramIterations: 16 }
    const passwords = join(dir, 'passwords')
    await writePasswordFile(passwords, new Map([
      [FUZZ_USER, await hashPassword(FUZZ_PASSWORD, cheap)],
      [GOOD.username, await hashPassword(GOOD.password, cheap)]
    ]))
    const acl = writeFile(dir, 'acl', `pattern write ${REFUSED_PREFIX}#\nuser ${FUZZ_USER}\ntopic readwrite fz/#\nuser ${GOOD.username}\ntopic readwrite #\n`)
    return ['--password-file', passwords, '--acl-file', acl, '--allow-anonymous', 'false']
  }
}

t.test('gateway fuzzer: the broker process survives and serves its well-behaved clients throughout', async (t) => {
  await campaign(t, ANONYMOUS)
})

t.test('gateway fuzzer with a password file and an ACL: nothing behind a refused CONNECT is processed [MQTT-3.1.4-6], CONNACK first [MQTT-3.2.0-1]', async (t) => {
  await campaign(t, CREDENTIALS)
})

async function campaign (t: Test, c: Campaign): Promise<void> {
  const runs = c.runs
  Object.assign(stats, { inputs: 0, connections: 0, bytes: 0, batches: 0, restarts: 0, accepted: 0, refused: 0, scramAccepted: 0 })
  let broker: Broker | undefined
  /** per kind of login: connections, CONNACK 0, CONNACK refusing (the rest closed before any CONNACK) */
  const logins = new Map<string, { tried: number, accepted: number, refused: number }>()
  const crashes = new Map<string, number>()
  let campaignMs = 0

  /**
   * Runs connections at once with the well-behaved clients' round trips
   * during and after them; returns why the broker failed, if it did, and
   * the scripts ordered by how close before the failure their connection closed.
   */
  async function trial (batch: Script[]): Promise<{ failure: string | undefined, suspects: Script[] }> {
    if (broker === undefined || broker.exit() !== undefined) {
      if (broker !== undefined) stats.restarts++
      broker = await startBroker(t, c)
    }
    const b = broker
    const closedAt: number[] = []
    try {
      await Promise.race([b.died, (async () => {
        const during = Promise.all(b.good.map(g => g.roundTrip()))
        await Promise.all(batch.map(async (s, i) => {
          const outcome = await runScript(b.port, s, c.source())
          closedAt[i] = outcome.closedAt
          const [accepted, refused] = [stats.accepted, stats.refused]
          const problem = answerProblem(outcome.received)
          if (s.login === 'scram' && stats.accepted > accepted) stats.scramAccepted++
          if (s.login !== undefined) {
            const row = logins.get(s.login) ?? { tried: 0, accepted: 0, refused: 0 }
            logins.set(s.login, { tried: row.tried + 1, accepted: row.accepted + stats.accepted - accepted, refused: row.refused + stats.refused - refused })
          }
          if (problem !== undefined) throw Object.assign(new Error(problem), { culprit: s })
        }))
        await during
        // the round trips go through the watcher's subscription too: what a refused connection published before them has arrived by now
        await Promise.all(b.good.map(g => g.roundTrip()))
        if (b.watcher !== undefined && b.watcher.leaks.length > 0) {
          throw new Error(`a message published behind a refused CONNECT reached the subscriber on # (topics ${b.watcher.leaks.map(x => JSON.stringify(x)).join(', ')}) [MQTT-3.1.4-6]`)
        }
      })()])
      return { failure: undefined, suspects: [] }
    } catch (err) {
      const culprit = (err as { culprit?: Script }).culprit
      if (culprit !== undefined) return { failure: (err as Error).message, suspects: [culprit] }
      const when = Date.now()
      // a dying process closes its sockets first: give its exit a moment to be seen
      await waitFor(() => b.exit() !== undefined, { timeout: 500 }).catch(() => {})
      const distance = (i: number): number => { const at = closedAt[i] ?? when; return at <= when ? when - at : 1e9 + at }
      const order = batch.map((_s, i) => i).sort((x, y) => distance(x) - distance(y))
      // a leak comes from a connection that had to be refused
      const suspects = order.map(i => batch[i] as Script).filter(s => b.watcher?.leaks.length === 0 || refusedLogin(s.login))
      if (b.watcher !== undefined) b.watcher.leaks = []
      return { failure: b.exit() ?? (err as Error).message, suspects }
    }
  }

  let failing: { batch: Script[], failure: string, suspects: Script[] } | undefined
  // Batches of exactly `size` (the last one cut), so that numRuns is exact: runs beyond it would
  // only generate batches and return, and fast-check chains those in microtasks without a turn of
  // the event loop, long enough at 100,000 inputs for the well-behaved clients' keep-alive to expire.
  const size = Math.min(runs, BATCH)
  const property = fc.asyncProperty(fc.array(c.scripts, { minLength: size, maxLength: size }), async (whole) => {
    const batch = whole.slice(0, runs - stats.inputs)
    if (batch.length === 0) return
    if (Math.floor((stats.inputs + batch.length) / 10_000) > Math.floor(stats.inputs / 10_000)) t.comment(`fuzz: ${stats.inputs + batch.length} inputs`)
    stats.inputs += batch.length
    stats.batches++
    const { failure, suspects } = await trial(batch)
    if (failure === undefined) return
    failing = { batch, failure, suspects }
    throw new Error(failure)
  })

  const numRuns = Math.ceil(runs / size)
  t.comment(`fuzz (${c.name}): ${runs} inputs in batches of ${size} connections, seed ${SEED} (replay with CULEX_FUZZ_SEED=${SEED} CULEX_FUZZ_RUNS=${RUNS} CULEX_FUZZ_BATCH=${BATCH})`)
  const started = Date.now()
  const result = await fc.check(property, { numRuns, seed: SEED, endOnFailure: true })
  campaignMs = Date.now() - started

  t.comment(`fuzz (${c.name}): ${stats.inputs} inputs on ${stats.connections} connections, ${stats.bytes} bytes, ` +
    `${Math.round(stats.inputs / (campaignMs / 1000))} inputs/s over ${Math.round(campaignMs / 1000)} s; ` +
    `CONNACK accepted ${stats.accepted} (SCRAM ${stats.scramAccepted}), refused ${stats.refused}, broker restarts ${stats.restarts}`)
  if (logins.size > 0) t.comment(`fuzz (${c.name}): logins ${[...logins].map(([k, v]) => `${k} ${v.tried} (CONNACK accepted ${v.accepted}, refused ${v.refused})`).join(', ')}`)
  for (const g of broker?.good ?? []) t.comment(`fuzz (${c.name}): ${g.label} well-behaved client: ${g.trips} QoS 1 round trips, worst ${g.worst} ms`)
  if (failing !== undefined) {
    const { failure, suspects } = failing
    if (failure.startsWith('culex exited')) crashes.set(failure, 1)
    t.fail(`batch ${stats.batches} of ${failing.batch.length} connections failed the broker: ${failure}`)
    // the connection that fails alone, then as little of it as still fails the same way
    const until = Date.now() + SHRINK_MS
    const failsAlone = async (s: Script): Promise<boolean> => (await trial([s])).failure === failure
    let culprit: Script | undefined
    for (const s of suspects) {
      if (Date.now() > until) break
      if (await failsAlone(s)) { culprit = s; break }
    }
    if (culprit === undefined) {
      for (const s of failing.batch) t.comment(`input of the failing batch: ${describeScript(s)}`)
    } else {
      t.comment(`failing input: ${describeScript(culprit)}`)
      const shrunk = await shrink(culprit, failsAlone, until)
      t.comment(`shrunk (${shrunk.steps} steps): ${describeScript(shrunk.script)}`)
    }
    t.comment(`replay: CULEX_FUZZ_SEED=${SEED} CULEX_FUZZ_RUNS=${RUNS} CULEX_FUZZ_BATCH=${BATCH} (fast-check path ${result.counterexamplePath ?? ''})`)
  } else {
    t.ok(!result.failed, `${stats.inputs} inputs: no crash, the well-behaved clients served throughout${result.failed ? `: ${String(result.errorInstance)}` : ''}`)
    t.ok(stats.inputs >= runs, `${stats.inputs} inputs tried (at least ${runs})`)
  }
  t.equal(crashes.size, 0, 'crashes: 0 (the broker process never exited)')

  const b = broker
  if (b === undefined || b.exit() !== undefined) return
  // after the run, only the well-behaved clients are connected
  const expected = b.good.length + (b.watcher !== undefined ? 1 : 0)
  const connected = await connectionsSettle(b, expected)
  t.equal(connected, expected, `no leaked connection: culex_connections back to the ${expected} well-behaved clients (${connected})`)
  const bad = (await retainedTopics(t, b.culex.url, c.creds)).filter(topic => !validTopicName(topic))
  t.same(bad.map(topic => JSON.stringify(topic)), [], 'every retained message is on a valid Topic Name')
  t.ok(b.good.every(g => g.client.connected), 'the well-behaved clients are still connected')
  if (b.watcher !== undefined) t.ok(b.watcher.client.connected, 'the subscriber on # is still connected, and got nothing a refused connection published')
}

/** culex_connections once only the well-behaved clients remain, or after 10 s. */
async function connectionsSettle (b: Broker, expected: number): Promise<number> {
  let n = -1
  await waitFor(async () => (n = await gauge(b.httpPort, 'culex_connections')) === expected, { timeout: 10_000, step: 200 }).catch(() => {})
  return n
}
